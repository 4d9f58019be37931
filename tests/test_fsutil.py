"""Atomic writes (durable or not) and small-file reads."""
import errno
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


@pytest.fixture
def job_tree(tmp_path):
    """A directory whose contents a job controls (``job``) and a secret beside it."""
    (tmp_path / "secret").write_bytes(b"token: s3cret")
    job = tmp_path / "job"
    (job / "outputs" / "sub").mkdir(parents=True)
    (job / "working").mkdir()
    (job / "working" / "real.txt").write_bytes(b"in the job")
    return job


def read_below(root, relative):
    fd = fsutil.open_below(str(root), relative)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@pytest.mark.parametrize("plant", [
    lambda job, secret: os.symlink(secret, job / "outputs" / "out.dat"),  # the last component
    lambda job, secret: os.symlink(secret.parent, job / "outputs" / "dir"),  # an intermediate one
    lambda job, secret: os.symlink("../../secret", job / "outputs" / "out.dat"),  # relative, out by '..'
    lambda job, secret: os.symlink(job.parent, job / "outputs" / "dir"),
    lambda job, secret: os.symlink(f"{job}/../secret", job / "outputs" / "out.dat"),  # names root, then '..'
])
def test_open_below_never_opens_a_file_outside_the_root(job_tree, plant):
    secret = job_tree.parent / "secret"
    plant(job_tree, secret)
    name = "outputs/out.dat" if os.path.lexists(job_tree / "outputs" / "out.dat") else "outputs/dir/secret"
    with pytest.raises(fsutil.PathEscapes, match="leads outside"):
        fsutil.open_below(str(job_tree), name)
    with pytest.raises(fsutil.PathEscapes):
        fsutil.open_regular(name, root=str(job_tree))
    assert fsutil.read_bytes(name, root=str(job_tree)) is None
    assert fsutil.read_bytes(str(job_tree / name)) == b"token: s3cret"  # what a plain open would have read
    assert open_under(job_tree) == []  # no descriptor left behind


def test_open_below_follows_symlinks_that_stay_inside(job_tree):
    os.symlink("../working/real.txt", job_tree / "outputs" / "relative.dat")
    os.symlink(str(job_tree / "working" / "real.txt"), job_tree / "outputs" / "absolute.dat")
    os.symlink("../working", job_tree / "outputs" / "wd")
    os.symlink("wd/real.txt", job_tree / "outputs" / "chained.dat")
    for name in ("outputs/relative.dat", "outputs/absolute.dat", "outputs/wd/real.txt", "outputs/chained.dat",
                 str(job_tree / "outputs" / "chained.dat"), "outputs/sub/../../working/real.txt"):
        assert read_below(job_tree, name) == b"in the job", name
    # the root by another name (a symlinked staging directory): absolute links through either name resolve
    alias = job_tree.parent / "alias"
    os.symlink(job_tree, alias)
    os.symlink(str(job_tree / "working" / "real.txt"), job_tree / "outputs" / "real_name.dat")
    assert read_below(alias, "outputs/real_name.dat") == b"in the job"
    with pytest.raises(fsutil.PathEscapes):
        fsutil.open_below(str(job_tree), "../secret")
    with pytest.raises(fsutil.PathEscapes):
        fsutil.open_below(str(job_tree), str(job_tree.parent / "secret"))  # an absolute name outside
    assert open_under(job_tree) == []


def test_open_below_refuses_loops_and_misses_like_open(job_tree):
    os.symlink("b", job_tree / "outputs" / "a")
    os.symlink("a", job_tree / "outputs" / "b")
    with pytest.raises(OSError) as info:
        fsutil.open_below(str(job_tree), "outputs/a")
    assert info.value.errno == errno.ELOOP
    with pytest.raises(FileNotFoundError):
        fsutil.open_below(str(job_tree), "outputs/missing")
    with pytest.raises(NotADirectoryError):
        fsutil.open_below(str(job_tree), "working/real.txt/x")
    assert fsutil.read_bytes("outputs/missing", root=str(job_tree)) is None
    assert open_under(job_tree) == []


def test_a_symlink_swapped_in_just_before_the_open_is_not_followed(job_tree, monkeypatch):
    """The job replaces a checked file (or directory) with a symlink at the last moment: each component is
    opened with O_NOFOLLOW below its parent's descriptor, so there is no moment to race."""
    secret = job_tree.parent / "secret"
    (job_tree / "outputs" / "out.dat").write_bytes(b"output")
    (job_tree / "outputs" / "sub" / "secret").write_bytes(b"output")
    real_open = os.open
    swaps = {"out.dat": lambda: os.symlink(secret, job_tree / "outputs" / "out.dat"),
             "sub": lambda: os.symlink(secret.parent, job_tree / "outputs" / "sub")}

    def racing_open(path, flags, *args, **kwargs):
        name = os.path.basename(os.fspath(path))
        if name in swaps:  # the job's move, right before the daemon's open
            target = job_tree / "outputs" / name
            os.rename(target, job_tree / f"old-{name}")
            swaps.pop(name)()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)
    for name in ("outputs/out.dat", "outputs/sub/secret"):
        with pytest.raises(fsutil.PathEscapes):
            fsutil.open_below(str(job_tree), name)
    assert not swaps  # both swaps happened
    monkeypatch.undo()
    assert open_under(job_tree) == []


def test_opened_below_names_the_opened_file_for_code_that_opens_by_name(job_tree):
    os.symlink("../working/real.txt", job_tree / "outputs" / "link.dat")
    with fsutil.opened_below(str(job_tree), str(job_tree / "outputs" / "link.dat")) as source:
        assert open(source, "rb").read() == b"in the job"
    os.symlink(job_tree.parent / "secret", job_tree / "outputs" / "out.dat")
    with pytest.raises(fsutil.PathEscapes):
        with fsutil.opened_below(str(job_tree), str(job_tree / "outputs" / "out.dat")):
            pass
    with pytest.raises(FileNotFoundError):
        with fsutil.opened_below(str(job_tree), str(job_tree / "outputs" / "sub")):  # not a regular file
            pass
    assert open_under(job_tree) == []


def test_write_bytes_at_replaces_a_symlink_and_never_writes_through_it(job_tree):
    secret = job_tree.parent / "secret"
    os.symlink(secret, job_tree / "outputs" / ".state")
    os.symlink(job_tree.parent / "missing", job_tree / "outputs" / ".dangling")
    directory = fsutil.open_directory(str(job_tree / "outputs"), root=str(job_tree))
    try:
        assert fsutil.write_bytes_at(directory, ".state", b"url") == 3
        fsutil.write_bytes_at(directory, ".dangling", b"url")
    finally:
        os.close(directory)
    assert secret.read_bytes() == b"token: s3cret" and not (job_tree.parent / "missing").exists()
    for name in (".state", ".dangling"):
        assert not (job_tree / "outputs" / name).is_symlink()
        assert (job_tree / "outputs" / name).read_bytes() == b"url"
    assert sorted(os.listdir(job_tree / "outputs")) == [".dangling", ".state", "sub"]  # no temporary left
    assert open_under(job_tree) == []


def test_open_directory_below_a_root_refuses_a_way_out(job_tree):
    os.symlink(job_tree.parent, job_tree / "outputs" / "up")
    os.symlink("../working", job_tree / "outputs" / "wd")
    with pytest.raises(fsutil.PathEscapes):
        fsutil.open_directory(str(job_tree / "outputs" / "up"), root=str(job_tree))
    with pytest.raises(NotADirectoryError):
        fsutil.open_directory("working/real.txt", root=str(job_tree))
    for path, root in (("outputs/wd", str(job_tree)), (str(job_tree), str(job_tree)),
                       (str(job_tree / "outputs" / "up"), None)):  # without a root: by name, as open does
        directory = fsutil.open_directory(path, root)
        try:
            assert os.path.isdir(f"/proc/self/fd/{directory}")
        finally:
            os.close(directory)
    assert open_under(job_tree) == []
