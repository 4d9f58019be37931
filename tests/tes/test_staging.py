"""A TES task's outputs and logs, read from the host mirror its containers write: never from outside the
task's job directory, whatever symlinks the executors leave there."""
import json
import os

import pytest

from pulsar_lite.netpolicy import AddressPolicy
from pulsar_lite.staging import RetryPolicy
from pulsar_lite.staging.actions import PermanentStagingError
from pulsar_lite.staging.remote import Remote
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
    (job / "launch_config").write_text("the job's own file, not the task's\n")
    os.symlink(job / "launch_config", tes / "root" / "data" / "job_file.txt")
    assert service._tail(str(job), str(tes / "root" / "data" / "job_file.txt")) == ""  # out of the mirror
    (job.parent / "other.json").write_text('[{"url": "file:///elsewhere", "path": "/s3cret"}]')
    os.symlink(job.parent / "other.json", tes / "outputs.json.planted")
    os.replace(tes / "outputs.json.planted", tes / staging.OUTPUTS_LOG)
    assert staging.sent_outputs(str(job)) == []


def test_outputs_are_read_inside_the_tasks_mirror_not_elsewhere_in_its_job_directory(job):
    (job / "launch_config").write_text("the job's own file, not the task's\n")
    os.symlink(job / "launch_config", job / "tes" / "root" / "data" / "job_file.txt")
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}],
                      "outputs": [{"path": "/data/job_file.txt", "url": f"file://{sent}/job_file.txt"}]})
    with pytest.raises(PermanentStagingError, match="outside"):
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert not (sent / "job_file.txt").exists()


@pytest.fixture
def host(tmp_path):
    """A host directory a container links into its mirror, holding files whose names are secrets too."""
    outside = tmp_path / "host"
    (outside / "deeper").mkdir(parents=True)
    (outside / "id_rsa.txt").write_text("key")
    (outside / "deeper" / "shadow.txt").write_text("hash")
    return outside


@pytest.mark.parametrize("pattern", ["/data/*/*.txt", "/data/linked/*.txt", "/data/*/*/*.txt"])
def test_a_wildcard_output_does_not_walk_into_a_symlinked_host_directory(job, host, pattern):
    os.symlink(host, job / "tes" / "root" / "data" / "linked")
    (job / "tes" / "root" / "data" / "sub").mkdir()
    (job / "tes" / "root" / "data" / "sub" / "mine.txt").write_text("mine")
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": pattern, "path_prefix": "/data", "url": f"file://{sent}"}]})
    staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert [entry["path"] for entry in staging.sent_outputs(str(job))] == (
        ["/data/sub/mine.txt"] if pattern == "/data/*/*.txt" else [])
    assert not (sent / "linked").exists()


def test_a_wildcard_output_keeps_glob_rules_and_links_inside_the_mirror(job):
    data = job / "tes" / "root" / "data"
    (data / ".hidden.txt").write_text("hidden")
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/data/*.txt", "path_prefix": "/data", "url": f"file://{sent}"}]})
    with pytest.raises(PermanentStagingError, match="stolen.txt"):  # the link out is refused, loudly
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert sorted(entry["path"] for entry in staging.sent_outputs(str(job))) == ["/data/inside.txt", "/data/real.txt"]
    assert (sent / "inside.txt").read_text() == "made by the executor" and not (sent / "stolen.txt").exists()


def test_a_directory_output_that_is_a_symlink_to_a_host_directory_lists_nothing_of_it(job, host):
    os.symlink(host, job / "tes" / "root" / "data" / "linked")
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/data/linked", "url": f"file://{sent}/d", "type": "DIRECTORY"}]})
    with pytest.raises(PermanentStagingError) as info:
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert "outside" in str(info.value) and "id_rsa" not in str(info.value) and "shadow" not in str(info.value)
    assert not (sent / "d").exists()


def test_a_directory_output_sends_its_files_and_skips_symlinked_directories_in_it(job, host):
    out = job / "tes" / "root" / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_text("a")
    (out / "sub" / "b.txt").write_text("b")
    os.symlink(host, out / "linked")
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/out", "url": f"file://{sent}/d", "type": "DIRECTORY"}]})
    staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert sorted(entry["path"] for entry in staging.sent_outputs(str(job))) == ["/out/a.txt", "/out/sub/b.txt"]
    assert not (sent / "d" / "linked").exists()


def test_a_wildcard_match_that_is_a_directory_is_walked_without_entering_symlinked_directories(job, host):
    out = job / "tes" / "root" / "out"
    (out / "run1" / "logs").mkdir(parents=True)
    (out / "run1" / "logs" / "a.log").write_text("a")
    os.symlink(host, out / "run1" / "linked")
    os.symlink(host, out / "run2")  # a match that is a symlink to a host directory: refused, its files unnamed
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/out/run*", "path_prefix": "/out", "url": f"file://{sent}/runs"}]})
    with pytest.raises(PermanentStagingError) as info:
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert "run2" in str(info.value) and "id_rsa" not in str(info.value)
    assert [entry["path"] for entry in staging.sent_outputs(str(job))] == ["/out/run1/logs/a.log"]
    assert (sent / "runs" / "run1" / "logs" / "a.log").read_text() == "a"
    assert not (sent / "runs" / "run1" / "linked").exists() and not (sent / "runs" / "run2").exists()


def test_after_an_executor_failed_nothing_raises_and_the_notes_say_what_was_not_sent(job):
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/data/real.txt", "url": f"file://{sent}/real.txt"},
        {"path": "/data/stolen.txt", "url": f"file://{sent}/stolen.txt"},
        {"name": "gone", "path": "/data/gone.txt", "url": f"file://{sent}/gone.txt"},
        {"path": "/nowhere", "url": f"file://{sent}/nowhere", "type": "DIRECTORY"}]})
    assert staging.stage_out(task, str(job), [str(sent)], RetryPolicy(), executor_failed=True) == (1, 20)
    assert (sent / "real.txt").read_text() == "made by the executor" and not (sent / "stolen.txt").exists()
    notes = staging.output_notes(str(job))
    assert notes[0] == ("outputs not sent, the executors did not create them: output gone (/data/gone.txt), "
                        "output 3 (/nowhere)")
    assert len(notes) == 2 and "stolen.txt" in notes[1] and "outside" in notes[1] and notes[1].endswith("(not sent)")
    # the same outputs after the executors succeeded: the task fails, each output named
    with pytest.raises(PermanentStagingError) as info:
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())
    assert "gone.txt): the executors did not create it" in str(info.value) and "stolen.txt" in str(info.value)
    assert staging.output_notes(str(job)) == []


def test_a_file_output_that_is_a_directory_says_so(job):
    sent = job.parent / "sent"
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "outputs": [
        {"path": "/data", "url": f"file://{sent}/data"}]})
    with pytest.raises(PermanentStagingError, match="not a regular file"):
        staging.stage_out(task, str(job), [str(sent)], RetryPolicy())


def test_ftp_inputs_and_outputs_with_the_password_shown_nowhere(ftp_area, tmp_path):
    """A real FTP server (tests/ftpserver.py): a FILE and a DIRECTORY come in; a FILE, a DIRECTORY and
    wildcard matches go out into directories the upload makes; the output log masks the password."""
    ftp_area.put("in/one.txt", b"one\n")
    ftp_area.put("in/tree/a.txt", b"a\n")
    ftp_area.put("in/tree/sub/b.txt", b"b\n")
    job = tmp_path / "job"
    (job / "tes" / "root").mkdir(parents=True)
    remote = Remote(networks=AddressPolicy(["127.0.0.1"]))
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}], "inputs": [
        {"url": f"{ftp_area.url}/in/one.txt", "path": "/in/one.txt"},
        {"url": f"{ftp_area.url}/in/tree", "path": "/in/tree", "type": "DIRECTORY"}], "outputs": [
        {"url": f"{ftp_area.url}/out/file.txt", "path": "/out/file.txt"},
        {"url": f"{ftp_area.url}/out/dir", "path": "/out/dir", "type": "DIRECTORY"},
        {"url": f"{ftp_area.url}/out/many", "path": "/out/*.log", "path_prefix": "/out"}]})
    assert staging.stage_in(task, str(job), [], RetryPolicy(), remote) == (2, 8)
    mirror = job / "tes" / "root"
    assert (mirror / "in" / "one.txt").read_bytes() == b"one\n"
    assert (mirror / "in/tree/sub/b.txt").read_bytes() == b"b\n"
    assert oct((mirror / "in/tree/sub").stat().st_mode & 0o777) == "0o755"
    assert oct((mirror / "in/tree/sub/b.txt").stat().st_mode & 0o777) == "0o644"
    (mirror / "out" / "dir" / "deep").mkdir(parents=True)
    (mirror / "out" / "file.txt").write_text("file\n")
    (mirror / "out" / "dir" / "deep" / "x y.txt").write_text("x\n")
    (mirror / "out" / "run 1.log").write_text("log\n")
    assert staging.stage_out(task, str(job), [], RetryPolicy(), remote) == (3, 11)
    assert (ftp_area.path / "out" / "file.txt").read_text() == "file\n"
    assert (ftp_area.path / "out" / "dir" / "deep" / "x y.txt").read_text() == "x\n"
    assert (ftp_area.path / "out" / "many" / "run 1.log").read_text() == "log\n"
    sent = staging.sent_outputs(str(job))
    assert ftp_area.password not in json.dumps(sent)
    assert {entry["url"] for entry in sent} == {f"ftp://{ftp_area.user}:***@127.0.0.1:{ftp_area.port}/{ftp_area.name}"
                                                f"/out/{tail}" for tail in ("file.txt", "dir/deep/x%20y.txt",
                                                                            "many/run%201.log")}


def test_the_address_rule_fails_a_tasks_staging_with_the_reason(ftp_area, tmp_path):
    job = tmp_path / "job"
    (job / "tes" / "root").mkdir(parents=True)
    task = read_task({"executors": [{"image": "busybox", "command": ["true"]}],
                      "inputs": [{"url": f"{ftp_area.url}/in.txt", "path": "/in/x"}]})
    with pytest.raises(Exception, match="refused: 127.0.0.1 is loopback") as info:
        staging.stage_in(task, str(job), [], RetryPolicy(max_retries=3), Remote(networks=AddressPolicy()))
    assert ftp_area.password not in str(info.value)


def test_public_url_masks_the_password_and_query_credentials_only():
    assert staging.public_url("ftp://u:p@h:21/a%20b?x=1") == "ftp://u:***@h:21/a%20b?x=1"
    assert staging.public_url("https://token@h/x") == "https://***@h/x"
    # a pre-signed URL's signature is a credential (review 4): masked, the rest of the query kept
    assert staging.public_url("https://h/x?token=1&part=2") == "https://h/x?token=***&part=2"
    assert staging.public_url("s3://b/k") == "s3://b/k" and staging.public_url(None) is None
