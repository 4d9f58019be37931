"""TUS uploads (remote_transfer_tus) against the fault-injecting origin."""
import os

import pytest

from pulsar_lite import fsutil
from pulsar_lite.staging import transfer, tus

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


def outputs_of_a_job(tmp_path):
    job = tmp_path / "job"
    (job / "outputs").mkdir(parents=True)
    source = job / "outputs" / "out.dat"
    source.write_bytes(os.urandom(SIZE))
    return job, source


@pytest.mark.parametrize("root", [False, True])
def test_a_planted_resume_state_symlink_is_neither_read_nor_written_through(origin, tmp_path, root):
    """The job plants ``.out.dat.tus`` as a symlink to a file outside its directory that the daemon can
    write: the upload neither resumes from what it names nor writes its URL into it (nor removes it)."""
    job, source = outputs_of_a_job(tmp_path)
    outside = tmp_path / "outside.txt"
    planted = origin.url + "/api/job_files/resumable_upload/planted\n"
    outside.write_text(planted)
    os.symlink(outside, job / "outputs" / ".out.dat.tus")
    url = origin.url + "/api/jobs/7/files?job_key=k&path=/gx/out.dat&file_type=output"
    with fsutil.opened_below(str(job), str(source)) as opened:  # as stage-out sends an output
        tus.upload_tus(url, opened, retry=policy(), chunk_size=1024 * 1024, name=str(source),
                       **({"root": str(job)} if root else {}))
    assert origin.uploads["/gx/out.dat"] == source.read_bytes()
    assert outside.read_text() == planted
    assert "HEAD" not in [r["method"] for r in origin.requests]  # the planted "state" was not resumed from
    assert not os.path.lexists(job / "outputs" / ".out.dat.tus")  # the link was replaced, then removed


def test_a_dangling_resume_state_symlink_creates_nothing_outside(origin, tmp_path):
    job, source = outputs_of_a_job(tmp_path)
    outside = tmp_path / "elsewhere" / "authorized_keys"
    outside.parent.mkdir()
    os.symlink(outside, job / "outputs" / ".out.dat.tus")
    url = origin.url + "/api/jobs/7/files?job_key=k&path=/gx/out.dat&file_type=output"
    tus.upload_tus(url, str(source), retry=policy(), chunk_size=1024 * 1024)
    assert origin.uploads["/gx/out.dat"] == source.read_bytes()
    assert os.listdir(outside.parent) == []


def test_resume_state_directory_swapped_for_a_symlink_out_is_refused_with_a_root(origin, tmp_path):
    """The output is opened below the job directory; then the job swaps its directory for a symlink to a
    directory elsewhere: with the job directory as root, no resume state is written there."""
    job, _ = outputs_of_a_job(tmp_path)
    (job / "working" / "sub").mkdir(parents=True)
    source = job / "working" / "sub" / "out.dat"
    source.write_bytes(b"output")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = origin.url + "/api/jobs/7/files?job_key=k&path=/gx/out.dat&file_type=output"
    with fsutil.opened_below(str(job), str(source)) as opened:
        os.rename(job / "working" / "sub", job / "working" / "old")
        os.symlink(elsewhere, job / "working" / "sub")
        with pytest.raises(transfer.TransferError, match="leads outside") as info:
            tus.upload_tus(url, opened, retry=policy(), name=str(source), root=str(job))
    assert info.value.permanent and origin.requests == []
    assert os.listdir(elsewhere) == []


def test_resume_state_survives_an_interruption_and_is_a_regular_file(origin, tmp_path, sleeps, monkeypatch):
    """The state is renamed into place (no temporary file left beside it) and read back on the resume."""
    job, source = outputs_of_a_job(tmp_path)
    url = origin.url + "/api/jobs/7/files?job_key=k&path=/gx/out.dat&file_type=output"
    origin.faults = [None, ("drop", 300 * 1024)]
    seen = []
    real = tus._request

    def watching(method, *args, **kwargs):
        if method == "HEAD":
            state = job / "outputs" / ".out.dat.tus"
            seen.append((state.is_symlink(), state.read_text(), sorted(os.listdir(job / "outputs"))))
        return real(method, *args, **kwargs)

    monkeypatch.setattr(tus, "_request", watching)
    stats = tus.upload_tus(url, str(source), retry=policy(), chunk_size=1024 * 1024, root=str(job))
    assert origin.uploads["/gx/out.dat"] == source.read_bytes() and stats.resumed_from == 300 * 1024
    assert len(seen) == 1 and not seen[0][0] and seen[0][1].startswith(origin.url + "/api/job_files/")
    assert seen[0][2] == [".out.dat.tus", "out.dat"]
    assert sorted(os.listdir(job / "outputs")) == ["out.dat"]
