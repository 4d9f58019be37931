"""A TES task's outputs and logs, read from the host mirror its containers write: never from outside the
task's job directory, whatever symlinks the executors leave there."""
import os

import pytest

from pulsar_lite.staging import RetryPolicy
from pulsar_lite.staging.actions import PermanentStagingError
from pulsar_lite.tes import service, staging
from pulsar_lite.tes.protocol import read_task


@pytest.fixture
def job(tmp_path):
    """A task's job directory whose container made its outputs symlinks, a secret beside it and an allowed
    file:// root to send the outputs to."""
    (tmp_path / "app.yml").write_text("private_token: s3cret-17\n")
    data = tmp_path / "job" / "tes" / "root" / "data"
    data.mkdir(parents=True)
    (data / "real.txt").write_text("made by the executor")
    os.symlink("real.txt", data / "inside.txt")  # relative, stays inside
    os.symlink(tmp_path / "app.yml", data / "stolen.txt")
    os.symlink("/data/real.txt", data / "container_absolute.txt")  # names a container path: not the host's
    (tmp_path / "sent").mkdir()
    return tmp_path / "job"


def test_outputs_leading_out_of_the_job_directory_are_not_sent(job):
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": f"/data/{name}", "url": f"file://{sent}/{name}"}
        for name in ("inside.txt", "stolen.txt", "container_absolute.txt")]})
    with pytest.raises(PermanentStagingError) as info:
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert (sent / "inside.txt").read_text() == "made by the executor"
    assert not (sent / "stolen.txt").exists() and not (sent / "container_absolute.txt").exists()
    assert "stolen.txt" in str(info.value) and "outside" in str(info.value)
    assert [entry["path"] for entry in staging.sent_outputs(str(job))] == ["/data/inside.txt"]


def test_executor_streams_and_marks_are_read_inside_the_job_directory(job):
    tes = job / "tes"
    os.symlink(job.parent / "app.yml", tes / "0.start")
    os.symlink(job.parent / "app.yml", tes / "0.stdout")
    assert service._read(str(job), str(tes / "0.start")) is None
    assert service._tail(str(job), str(tes / "0.stdout")) == ""
    assert service._tail(str(job), str(tes / "root" / "data" / "stolen.txt")) == ""
    assert service._tail(str(job), str(tes / "root" / "data" / "inside.txt"), 8) == "executor"
    (job.parent / "other.json").write_text('[{"url": "file:///elsewhere", "path": "/s3cret"}]')
    os.symlink(job.parent / "other.json", tes / "outputs.json.planted")
    os.replace(tes / "outputs.json.planted", tes / staging.OUTPUTS_LOG)
    assert staging.sent_outputs(str(job)) == []
