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
