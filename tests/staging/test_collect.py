import os

import pytest

from pulsar_lite.engine.jobdir import JobDirectory
from pulsar_lite.staging import RetryPolicy, postprocess
from pulsar_lite.staging.actions import PermanentStagingError
from pulsar_lite.staging.collect import candidates


def make_job(tmp_path):
    job = JobDirectory(str(tmp_path / "staging"), "1")
    job.create()
    files = {
        "working/report.txt": "r", "working/sub/a": "a", "working/sub/b": "b", "working/galaxy.json": '{"filename": "ref"}',
        "working/ref": "ref", "working/junk.tmp": "j", "outputs/dataset_1.dat": "1", "outputs/dataset_1_files/extra": "e",
        "outputs/COMMAND_VERSION": "v", "metadata/tool_stdout": "out", "metadata/other": "x",
    }
    for name, text in files.items():
        path = os.path.join(job.path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    return job


CLIENT = {
    "working_directory": "/gx/w", "metadata_directory": "/gx/m", "job_directory": None,
    "work_dir_outputs": [["/gx/w/report.txt", "/gx/d/dataset_9.dat"], ["/gx/w/sub", "/gx/d/dir_out"],
                         ["/gx/w/*.tmp", "/gx/d/dataset_8.dat"]],
    "output_files": ["/gx/d/dataset_1.dat", "/gx/d/dataset_9.dat", "/gx/d/dir_out", "/gx/d/dataset_8.dat"],
    "version_file": "/gx/d/GALAXY_VERSION", "dynamic_outputs": None,
}


def test_collection_order_and_rules(tmp_path):
    job = make_job(tmp_path)
    realized = [{"type": "galaxy", "path": "galaxy.json", "contents": '{"filename": "ref"}'}]
    found = [(c.path_type, os.path.relpath(c.server_path, job.path), c.client_path)
             for c in candidates(job, CLIENT, realized)]
    assert found[:4] == [
        ("output_workdir", "working/report.txt", "/gx/d/dataset_9.dat"),
        ("output_workdir", "working/sub/a", "/gx/d/dir_out/a"),
        ("output_workdir", "working/sub/b", "/gx/d/dir_out/b"),
        ("output_workdir", "working/junk.tmp", "/gx/d/dataset_8.dat"),
    ]
    assert ("output", "outputs/dataset_1.dat", "/gx/d/dataset_1.dat") in found
    assert ("output", "outputs/dataset_1_files/extra", "/gx/d/dataset_1_files/extra") in found
    assert ("output", "outputs/COMMAND_VERSION", "/gx/d/GALAXY_VERSION") in found
    assert ("output_workdir", "working/galaxy.json", "/gx/w/galaxy.json") in found
    assert ("output_workdir", "working/ref", "/gx/w/ref") in found  # referenced from galaxy.json
    assert ("output_metadata", "metadata/tool_stdout", "/gx/m/tool_stdout") in found
    assert not any(c[1] == "metadata/other" for c in found)


def test_remote_copy_postprocess_and_missing_workdir_output(tmp_path):
    job = make_job(tmp_path)
    client = tmp_path / "gx"
    remote_staging = {
        "action_mapper": {"default_action": "remote_copy", "paths": []},
        "client_outputs": {**CLIENT, "working_directory": str(client / "w"), "metadata_directory": str(client / "m"),
                           "work_dir_outputs": [[str(client / "w" / "missing.txt"), str(client / "d" / "x.dat")]],
                           "output_files": [str(client / "d" / "dataset_1.dat"), str(client / "d" / "x.dat")],
                           "version_file": None},
    }
    stats = postprocess(job, remote_staging, [], RetryPolicy())
    assert (client / "d" / "dataset_1.dat").read_text() == "1"
    assert (client / "d" / "dataset_1_files" / "extra").read_text() == "e"
    assert (client / "m" / "tool_stdout").read_text() == "out"
    assert not (client / "d" / "x.dat").exists()  # tolerated: a tool failure, not an infrastructure one
    assert stats.files >= 3


def test_postprocess_never_sends_a_file_outside_the_job_directory(tmp_path):
    """A job makes its outputs symlinks: one within the job directory is sent, one out of it (to a file
    only the daemon can read) fails the staging with its reason, and nothing of it reaches the client."""
    job = make_job(tmp_path)
    secret = tmp_path / "app.yml"
    secret.write_text("private_token: s3cret-17\n")
    os.symlink("../working/ref", os.path.join(job.outputs, "dataset_2.dat"))
    os.symlink(str(secret), os.path.join(job.outputs, "dataset_3.dat"))
    os.symlink(str(tmp_path), os.path.join(job.working, "up"))
    client = tmp_path / "gx"
    remote_staging = {
        "action_mapper": {"default_action": "remote_copy", "paths": []},
        "client_outputs": {**CLIENT, "working_directory": str(client / "w"), "metadata_directory": None,
                           "work_dir_outputs": [[str(client / "w" / "up" / "app.yml"), str(client / "d" / "w.dat")]],
                           "output_files": [str(client / "d" / n) for n in ("dataset_2.dat", "dataset_3.dat")],
                           "version_file": None},
    }
    with pytest.raises(PermanentStagingError) as info:
        postprocess(job, remote_staging, [], RetryPolicy())
    assert (client / "d" / "dataset_2.dat").read_text() == "ref"
    assert "dataset_3.dat" in str(info.value) and "w.dat" in str(info.value) and "outside" in str(info.value)
    assert not (client / "d" / "dataset_3.dat").exists() and not (client / "d" / "w.dat").exists()


@pytest.mark.parametrize("action_type", ["remote_transfer", "remote_transfer_tus"])
def test_remote_transfers_send_an_opened_output_under_its_own_name(tmp_path, origin, action_type):
    job = make_job(tmp_path)
    os.symlink("../working/ref", os.path.join(job.outputs, "dataset_2.dat"))
    remote_staging = {
        "action_mapper": {"default_action": action_type, "files_endpoint": origin.url + "/api/jobs/1/files",
                          "paths": []},
        "client_outputs": {**CLIENT, "working_directory": "/gx/w", "metadata_directory": None, "work_dir_outputs": [],
                           "output_files": ["/gx/d/dataset_1.dat", "/gx/d/dataset_2.dat"], "version_file": None},
    }
    postprocess(job, remote_staging, [], RetryPolicy())
    assert origin.uploads["/gx/d/dataset_1.dat"] == b"1" and origin.uploads["/gx/d/dataset_2.dat"] == b"ref"
    if action_type == "remote_transfer":  # the part's file name is the output's, not the descriptor's number
        assert origin.filenames["/gx/d/dataset_2.dat"] == "dataset_2.dat"
    assert not [name for name in os.listdir(job.outputs) if name.endswith(".tus")]  # registered: state gone


def test_transfers_are_told_the_job_directory_they_stay_below(tmp_path, monkeypatch):
    """Stage-in and stage-out hand the job directory to the transfer code, which opens the download's and the
    TUS resume state's directory below it (a symlink the job plants on the way is never followed out)."""
    from pulsar_lite.staging import preprocess, transfer, tus

    job = make_job(tmp_path)
    seen = {}

    def download(url, target, **kwargs):
        seen["download"] = kwargs.get("root")
        return transfer.TransferStats()

    def upload_tus(url, source, **kwargs):
        seen["tus"] = kwargs.get("root")
        return transfer.TransferStats()

    monkeypatch.setattr(transfer, "download", download)
    monkeypatch.setattr(tus, "upload_tus", upload_tus)
    preprocess(job, {"setup": [{"name": "in.dat", "type": "input", "action": {
        "action_type": "remote_transfer", "url": "http://127.0.0.1:9/in", "path": "/gx/in.dat"}}]}, RetryPolicy())
    postprocess(job, {"action_mapper": {"default_action": "remote_transfer_tus", "paths": [],
                                        "files_endpoint": "http://127.0.0.1:9/api/jobs/1/files"},
                      "client_outputs": {**CLIENT, "working_directory": "/gx/w", "metadata_directory": None,
                                         "work_dir_outputs": [], "output_files": ["/gx/d/dataset_1.dat"],
                                         "version_file": None}}, [], RetryPolicy())
    assert seen == {"download": job.path, "tus": job.path}
