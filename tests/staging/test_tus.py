"""TUS uploads (remote_transfer_tus) against the fault-injecting origin."""
import os

from pulsar_lite.staging import tus

from .conftest import SIZE, policy


def test_tus_upload_resumes_after_a_dropped_chunk(origin, tmp_path, sleeps):
    source = tmp_path / "out.dat"
    source.write_bytes(os.urandom(SIZE))
    url = origin.url + "/api/jobs/7/files?job_key=k&path=/gx/out.dat&file_type=output"
    origin.faults = [None, ("drop", 300 * 1024)]  # the create passes; the first chunk breaks off
    stats = tus.upload_tus(url, str(source), retry=policy(), chunk_size=1024 * 1024)
    assert origin.uploads["/gx/out.dat"] == source.read_bytes()
    assert stats.attempts == 2 and stats.resumed_from == 300 * 1024
    assert [r["method"] for r in origin.requests][:3] == ["POST", "PATCH", "HEAD"]
    assert origin.requests[0]["path"] == "/api/job_files/resumable_upload"
    assert not list(tmp_path.glob(".*.tus"))


def test_tus_endpoint():
    assert tus.tus_endpoint("https://gx/api/jobs/abc/files?job_key=k&path=/x") == \
        "https://gx/api/job_files/resumable_upload?job_key=k&path=/x"
