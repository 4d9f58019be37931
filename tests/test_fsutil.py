"""Atomic writes (durable or not) and small-file reads."""
import os
import threading

import pytest

from pulsar_lite import fsutil


@pytest.mark.parametrize("write", [
    lambda target, durable: fsutil.write_bytes(str(target), b"data", durable=durable),
    lambda target, durable: fsutil.write_stream(str(target), open(__file__, "rb"), None, durable=durable),
    lambda target, durable: fsutil.copy_file(__file__, str(target), durable=durable),
])
def test_durable_writes_reach_the_disk_before_the_name_appears(tmp_path, synced_paths, write):
    target = tmp_path / "out"
    write(target, True)
    assert len(synced_paths) == 1 and synced_paths[0] != str(target)  # the temporary file, before its rename
    assert target.stat().st_size > 0
    write(tmp_path / "plain", False)
    assert len(synced_paths) == 1  # not durable: no sync


def test_read_bytes_head_and_tail(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"a" * 50 + b"b" * 50)
    assert fsutil.read_bytes(str(path)) == b"a" * 50 + b"b" * 50
    assert fsutil.read_bytes(str(path), limit=10) == b"a" * 10
    assert fsutil.read_bytes(str(path), limit=10, tail=4, marker=b"..") == b"aaaaaa..bbbb"
    assert fsutil.read_bytes(str(path), limit=100, tail=4, marker=b"..") == b"a" * 50 + b"b" * 50
    assert fsutil.read_bytes(str(tmp_path / "missing")) is None
    (tmp_path / "empty").write_bytes(b"")
    assert fsutil.read_bytes(str(tmp_path / "empty")) == b""


def test_read_bytes_reads_only_regular_files_and_does_not_block_on_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = []
    reader = threading.Thread(target=lambda: result.append(fsutil.read_bytes(str(fifo))), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive() and result == [None]
    assert fsutil.read_bytes(str(tmp_path)) is None
    assert fsutil.open_regular(str(tmp_path)) is None and fsutil.open_regular(str(fifo)) is None
    assert open_under(tmp_path) == []  # a refused file leaves no descriptor open
    (tmp_path / "regular").write_bytes(b"abc")
    fd, size = fsutil.open_regular(str(tmp_path / "regular"))
    assert size == 3 and open_under(tmp_path) == [str(tmp_path / "regular")]  # the check sees what is open
    os.close(fd)
    assert open_under(tmp_path) == []


def open_under(directory) -> list[str]:
    """What this process holds open under ``directory`` (not a count of all its descriptors: other tests'
    leftovers close theirs at any time, which made a count flaky)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == str(directory) or target.startswith(f"{directory}/"):
            held.append(target)
    return held
