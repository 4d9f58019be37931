"""The libcurl transfer engine against a real HTTP origin that injects faults."""
import os
import threading

import pytest

from pulsar_lite.staging import transfer

from .conftest import SIZE, data, policy


def test_plain_download(origin, tmp_path):
    target = tmp_path / "in.dat"
    stats = transfer.download(origin.url + "/data.bin?job_key=k", str(target), retry=policy())
    assert target.read_bytes() == data(origin) and stats.bytes == SIZE and stats.attempts == 1
    assert not (tmp_path / "in.dat.part").exists()


def test_dropped_connection_resumes_with_a_range(origin, tmp_path, sleeps):
    origin.faults = [("drop", 1024 * 1024)]
    target = tmp_path / "in.dat"
    stats = transfer.download(origin.url + "/data.bin", str(target), retry=policy())
    assert target.read_bytes() == data(origin)
    assert stats.attempts == 2 and stats.resumed_from > 0
    assert origin.requests[1]["range"] == f"bytes={stats.resumed_from}-"
    assert stats.resumed_from + stats.bytes == SIZE  # nothing fetched twice
    assert sleeps == [1.0]


def test_complete_part_file_and_416_do_not_loop(origin, tmp_path, sleeps):
    target = tmp_path / "in.dat"
    (tmp_path / "in.dat.part").write_bytes(data(origin))
    stats = transfer.download(origin.url + "/data.bin", str(target), retry=policy(retries=-1))
    assert target.read_bytes() == data(origin) and stats.attempts == 1
    assert len(origin.requests) == 1 and sleeps == []


def test_part_file_larger_than_the_source_restarts_from_zero(origin, tmp_path):
    target = tmp_path / "in.dat"
    (tmp_path / "in.dat.part").write_bytes(b"x" * (SIZE + 10))
    transfer.download(origin.url + "/data.bin", str(target), retry=policy(retries=-1))
    assert target.read_bytes() == data(origin)


def test_server_errors_are_retried_with_backoff(origin, tmp_path, sleeps):
    origin.faults = [("status", 500), ("status", 503), ("status", 502)]
    transfer.download(origin.url + "/data.bin", str(tmp_path / "in.dat"), retry=policy())
    assert sleeps == [1.0, 3.0, 4.0]  # start, +step, capped at max


@pytest.mark.parametrize("status", [404, 403, 400])
def test_permanent_errors_fail_at_once_with_a_redacted_url(origin, tmp_path, sleeps, status):
    origin.faults = [("status", status)]
    with pytest.raises(transfer.TransferError) as info:
        transfer.download(origin.url + "/data.bin?job_key=s3cr3t&path=/gx/a.dat", str(tmp_path / "x"),
                          retry=policy())
    message = str(info.value)
    assert f"HTTP {status}" in message and "s3cr3t" not in message and "job_key=***" in message
    assert info.value.permanent and len(origin.requests) == 1 and sleeps == []


def test_retries_exhausted(origin, tmp_path, sleeps):
    origin.faults = [("status", 503)] * 5
    with pytest.raises(transfer.TransferError) as info:
        transfer.download(origin.url + "/data.bin", str(tmp_path / "x"), retry=policy(retries=2))
    assert "HTTP 503" in str(info.value) and len(origin.requests) == 3


def test_no_retries_by_policy(origin, tmp_path, sleeps):
    origin.faults = [("status", 503)]
    with pytest.raises(transfer.TransferError):
        transfer.download(origin.url + "/data.bin", str(tmp_path / "x"), retry=policy(retries=-1))
    assert len(origin.requests) == 1


def test_stall_is_detected_and_retried(origin, tmp_path, sleeps):
    origin.faults = [("stall", 4)]
    target = tmp_path / "in.dat"
    transfer.download(origin.url + "/data.bin", str(target), retry=policy(), low_speed_time=1)
    assert target.read_bytes() == data(origin) and len(sleeps) == 1


def test_redirect_followed(origin, tmp_path):
    target = tmp_path / "in.dat"
    transfer.download(origin.url + "/redirect/data.bin", str(target), retry=policy())
    assert target.read_bytes() == data(origin)


def test_sha256_mismatch(origin, tmp_path):
    with pytest.raises(transfer.TransferError, match="sha256"):
        transfer.download(origin.url + "/data.bin", str(tmp_path / "x"), retry=policy(), expected_sha256="0" * 64)
    assert not (tmp_path / "x").exists()


def test_upload_multipart(origin, tmp_path, sleeps):
    source = tmp_path / "out.dat"
    source.write_bytes(os.urandom(SIZE))
    origin.faults = [("status", 500)]
    stats = transfer.upload(origin.url + "/api/jobs/1/files?path=/gx/out.dat&file_type=output", str(source),
                            retry=policy())
    assert origin.uploads["/gx/out.dat"] == source.read_bytes() and stats.attempts == 2


def test_upload_of_missing_file_is_permanent(origin, tmp_path):
    with pytest.raises(transfer.TransferError) as info:
        transfer.upload(origin.url + "/x", str(tmp_path / "nope"), retry=policy())
    assert info.value.permanent and origin.requests == []


def test_local_disk_error_is_permanent(origin, tmp_path):
    with pytest.raises(transfer.TransferError) as info:
        transfer.download(origin.url + "/data.bin", str(tmp_path / "no" / "such" / "dir" / "x"), retry=policy())
    assert info.value.permanent


@pytest.mark.parametrize("plant", ["symlink", "dangling symlink", "hard link"])
def test_a_planted_part_file_is_not_appended_to(origin, tmp_path, plant):
    """The job plants ``in.dat.part`` as a link to a file outside its directory that the daemon can write:
    the download neither appends to (or creates) that file nor resumes from its length; it starts anew in a
    file of its own and completes."""
    job = tmp_path / "job"
    job.mkdir()
    outside = tmp_path / "outside.txt"
    if plant != "dangling symlink":
        outside.write_bytes(b"precious\n")
    (os.link if plant == "hard link" else os.symlink)(outside, job / "in.dat.part")
    target = job / "in.dat"
    stats = transfer.download(origin.url + "/data.bin", str(target), retry=policy())
    assert target.read_bytes() == data(origin) and not target.is_symlink()
    assert stats.resumed_from == 0 and origin.requests[0]["range"] is None
    if plant == "dangling symlink":
        assert not outside.exists()
    else:
        assert outside.read_bytes() == b"precious\n"
    assert not os.path.lexists(job / "in.dat.part")


def test_a_part_file_of_its_own_still_resumes(origin, tmp_path):
    target = tmp_path / "in.dat"
    (tmp_path / "in.dat.part").write_bytes(data(origin)[:1000])
    stats = transfer.download(origin.url + "/data.bin", str(target), retry=policy(), root=str(tmp_path))
    assert target.read_bytes() == data(origin) and stats.resumed_from == 1000
    assert origin.requests[0]["range"] == "bytes=1000-"


def test_a_target_directory_leading_out_of_the_root_is_refused(origin, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, job / "inputs")
    with pytest.raises(transfer.TransferError, match="leads outside") as info:
        transfer.download(origin.url + "/data.bin", str(job / "inputs" / "in.dat"), retry=policy(),
                          root=str(job))
    assert info.value.permanent and origin.requests == [] and os.listdir(elsewhere) == []


def test_a_directory_at_the_part_name_fails_clearly(origin, tmp_path):
    (tmp_path / "in.dat.part").mkdir()
    with pytest.raises(transfer.TransferError, match="cannot write .*in.dat.part") as info:
        transfer.download(origin.url + "/data.bin", str(tmp_path / "in.dat"), retry=policy())
    assert info.value.permanent and origin.requests == []


def test_a_fifo_at_the_part_name_neither_blocks_nor_fails_the_download(origin, tmp_path):
    os.mkfifo(tmp_path / "in.dat.part")
    result = []
    worker = threading.Thread(target=lambda: result.append(
        transfer.download(origin.url + "/data.bin", str(tmp_path / "in.dat"), retry=policy())), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and len(result) == 1
    assert (tmp_path / "in.dat").read_bytes() == data(origin) and not (tmp_path / "in.dat.part").exists()
