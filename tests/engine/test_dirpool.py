import os
import stat

from pulsar_lite.engine.dirpool import TREE, DirectoryPool
from pulsar_lite.engine.jobdir import JobDirectory


def _pool(tmp_path, size=4):
    pool = DirectoryPool(str(tmp_path / "staging"), size=size, mode=0o755)
    pool.reset()
    return pool


def _used_job(tmp_path, pool, job_id="1"):
    job = JobDirectory(str(tmp_path / "staging"), job_id, pool)
    job.create()
    (tmp_path / "staging" / job_id / "command.sh").write_text("echo old job\n")
    os.makedirs(os.path.join(job.outputs, "d_files", "deep"))
    (tmp_path / "staging" / job_id / "outputs" / "d_files" / "deep" / "x").write_text("old output")
    (tmp_path / "staging" / job_id / "metadata" / "return_code").write_text("0\n")
    os.symlink("/etc", os.path.join(job.working, "link"))
    os.mkdir(os.path.join(job.path, "unstructured"))
    os.chmod(job.working, 0o700)
    return job


def _all_entries(root):
    found = []
    for directory, dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(directory, n), root) for n in dirs + files]
    return sorted(found)


def test_a_cleaned_tree_comes_back_bare_for_the_next_job(tmp_path):
    pool = _pool(tmp_path)
    old = _used_job(tmp_path, pool, "old")
    old.remove()
    assert not os.path.lexists(old.path)
    assert len(pool) == 1
    new = JobDirectory(str(tmp_path / "staging"), "new", pool)
    new.create()
    assert len(pool) == 0
    assert _all_entries(new.path) == sorted(TREE)  # no file, link or extra directory of the old job
    for name in TREE:
        assert stat.S_IMODE(os.stat(os.path.join(new.path, name)).st_mode) == 0o755
    assert os.path.realpath("/etc") not in {os.path.realpath(os.path.join(new.path, n)) for n in TREE}


def test_fresh_directories_have_the_whole_tree(tmp_path):
    pool = _pool(tmp_path)
    job = JobDirectory(str(tmp_path / "staging"), "1", pool)
    job.create(mode=0o750)
    assert _all_entries(job.path) == sorted(TREE)
    assert stat.S_IMODE(os.stat(job.working).st_mode) == 0o750


def test_the_pool_is_bounded(tmp_path):
    pool = _pool(tmp_path, size=2)
    jobs = [_used_job(tmp_path, pool, job_id) for job_id in "abc"]
    for job in jobs:
        job.remove()
    assert len(pool) == 2
    assert len(os.listdir(pool.root)) == 2
    assert not any(os.path.exists(tmp_path / "staging" / j) for j in "abc")


def test_size_zero_deletes(tmp_path):
    pool = _pool(tmp_path, size=0)
    _used_job(tmp_path, pool).remove()
    assert len(pool) == 0 and os.listdir(pool.root) == []


def test_a_tree_that_cannot_be_emptied_is_deleted_not_kept(tmp_path, monkeypatch):
    pool = _pool(tmp_path)
    job = _used_job(tmp_path, pool)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "refused", path)

    monkeypatch.setattr(os, "unlink", refuse)
    job.remove()
    monkeypatch.undo()
    assert len(pool) == 0
    assert not os.path.lexists(job.path)


def test_reset_forgets_the_pool(tmp_path):
    pool = _pool(tmp_path)
    _used_job(tmp_path, pool).remove()
    pool.reset()
    assert len(pool) == 0 and os.listdir(pool.root) == []
