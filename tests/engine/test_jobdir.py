import os

import pytest

from pulsar_lite.engine.jobdir import JobDirectory, check_job_id
from pulsar_lite.errors import BadRequest, NotFound


@pytest.fixture
def job(tmp_path):
    job_dir = JobDirectory(str(tmp_path / "staging"), "77")
    job_dir.create()
    return job_dir


@pytest.mark.parametrize("job_id", ["1795404791154", "12_3", "0a1b2c3d4e5f", "a.b-c"])
def test_good_job_ids(job_id):
    assert check_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", ".", "..", "a/b", "/x", "a\x00", "x" * 300, "-rf"])
def test_bad_job_ids(job_id):
    with pytest.raises(BadRequest):
        check_job_id(job_id)


def test_nested_and_flat_mapping(job):
    assert job.calculate_path("dataset_0_files/sub/extra", "input") == os.path.join(job.path, "inputs/dataset_0_files/sub/extra")
    assert os.path.isdir(os.path.join(job.path, "inputs/dataset_0_files/sub"))
    assert job.calculate_path("sub/config.txt", "config") == os.path.join(job.path, "configs/config.txt")
    assert job.calculate_path("tool_script.sh", "jobdir") == os.path.join(job.path, "tool_script.sh")
    assert job.calculate_path("abc/bwa/human.fa", "unstructured") == os.path.join(job.path, "unstructured/abc/bwa/human.fa")


def test_output_workdir_glob(job):
    os.makedirs(os.path.join(job.working, "out"))
    open(os.path.join(job.working, "out", "report.txt"), "w").close()
    assert job.calculate_path("out/*.txt", "output_workdir").endswith("working/out/report.txt")
    with pytest.raises(NotFound):
        job.calculate_path("*.none", "output_workdir")


def test_download_mapping(job):
    assert job.output_path("a.dat", "output") == os.path.join(job.path, "outputs/a.dat")
    assert job.output_path("x", "output_workdir") == os.path.join(job.path, "working/x")
    assert job.output_path("tool_stdout", "output_metadata") == os.path.join(job.path, "metadata/tool_stdout")
    assert job.output_path("x", "output_jobdir") == os.path.join(job.path, "outputs/x")  # as Pulsar
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(BadRequest):
            job.output_path(bad, "output")


def test_listing(job):
    os.makedirs(os.path.join(job.outputs, "d_files"))
    open(os.path.join(job.outputs, "d_files", "e"), "w").close()
    open(os.path.join(job.outputs, "a"), "w").close()
    assert job.listing("outputs") == ["a", "d_files/e"]
    assert "outputs" in job.listing("", recursive=False)


def _walk_listing(directory):
    """The listing as Pulsar computes it (os.walk, sorted)."""
    result = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        result.extend(os.path.relpath(os.path.join(root, name), directory) for name in sorted(files))
    return result


def test_listing_matches_os_walk(job, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    top = job.working
    for name in ("b/z", "b/a/deep/f", "a_files/1", "a_files/10", "a_files/2", "c"):
        os.makedirs(os.path.dirname(os.path.join(top, name)) or top, exist_ok=True)
        open(os.path.join(top, name), "w").close()
    os.makedirs(os.path.join(top, "empty_dir"))
    os.symlink(str(outside), os.path.join(top, "linked_dir"))  # listed by neither, not entered
    os.symlink(os.path.join(top, "c"), os.path.join(top, "link_to_file"))
    os.symlink(os.path.join(top, "missing"), os.path.join(top, "dangling"))
    assert job.listing("working") == _walk_listing(top)
    assert "b/a/deep/f" in job.listing("working") and "dangling" in job.listing("working")
    assert not any("secret" in name for name in job.listing("working"))
    assert job.listing("no_such_dir") == [] and job.listing("no_such_dir", recursive=False) == []
