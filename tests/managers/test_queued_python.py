from pulsar_lite.managers.queued_python import clean_environment, process_matches


def test_clean_environment(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "x")
    monkeypatch.setenv("LC_CTYPE", "POSIX")
    env = clean_environment()
    assert "SECRET_TOKEN" not in env and env["LC_CTYPE"] == "C.UTF-8" and "PATH" in env


def test_process_matches_guards_pid_reuse():
    import os
    assert not process_matches(os.getpid(), "/no/such/command.sh")
    assert not process_matches(999999999, "/x")


def test_running_state_lost_in_a_crash_is_recovered_without_a_second_run(tmp_path):
    """The queued -> running commit is not waited for: if a crash loses it, the restart finds the job
    queued, and must adopt the process it started (from the pid the job script wrote), not run it again."""
    import sqlite3
    import time

    from pulsar_lite import wire
    from pulsar_lite.config import build_config
    from pulsar_lite.engine import JobEngine

    config = build_config({"staging_directory": str(tmp_path / "staging"),
                           "persistence_directory": str(tmp_path / "state")})
    runs = tmp_path / "runs"
    first = JobEngine(config)
    first.start()
    first.setup("_default_", "lost-running")
    first.submit("_default_", "lost-running", {"command_line": f"echo run >> {runs}; sleep 1.5"})
    pid_file = tmp_path / "staging" / "lost-running" / "pid"
    deadline = time.time() + 10
    while not (pid_file.exists() and first.store.get("_default_", "lost-running").state == wire.State.RUNNING):
        assert time.time() < deadline
        time.sleep(0.02)
    first.stop()
    db = sqlite3.connect(config.store_path)
    db.execute("UPDATE jobs SET state=?, pid=NULL WHERE job_id=?", (wire.State.QUEUED, "lost-running"))
    db.commit()
    db.close()

    second = JobEngine(config)
    second.start()
    try:
        while second.store.get("_default_", "lost-running").state != wire.State.COMPLETE:
            assert time.time() < deadline + 10
            time.sleep(0.05)
        assert second.store.get("_default_", "lost-running").returncode == 0
        assert runs.read_text() == "run\n"  # adopted, not run a second time
    finally:
        second.stop()
