"""What a cluster job gets from the daemon's environment (pulsar_lite/managers/environment.py): the scrubbing,
the shells that run the scheduler's commands with it, HTCondor's submit description. The real schedulers
show it from inside a job: tests/integration/test_job_environment.py."""
from __future__ import annotations

import os
import shlex

import pytest

from pulsar_lite.managers.cli.shells import LocalShell, SecureShell
from pulsar_lite.managers.contract import Submission
from pulsar_lite.managers.environment import (command_environment, condor_environment, job_environment,
                                              looks_secret)

DAEMON = {
    "PATH": "/opt/tools/bin:/usr/bin:/bin", "HOME": "/home/galaxy", "USER": "galaxy", "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8", "TZ": "UTC",
    "PULSAR_CONFIG_PRIVATE_TOKEN": "sekrit-token", "PULSAR_CONFIG_MESSAGE_QUEUE_URL": "amqp://u:pw@mq//",
    "MY_SECRET_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "k", "DB_PASSWORD": "p", "GITHUB_API_KEY": "g",
    "SLURM_CONF": "/etc/slurm/slurm.conf", "SBATCH_ACCOUNT": "galaxy", "SGE_ROOT": "/var/lib/gridengine",
    "CONDOR_CONFIG": "/etc/condor/condor_config", "_CONDOR_SEC_PASSWORD_FILE": "/etc/condor/pool_password",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock", "LD_LIBRARY_PATH": "/opt/daemon/lib", "MODULEPATH": "/opt/modules",
    "SLURM_JOB_ID": "17", "TMPDIR": "/run/user/1000", "VIRTUAL_ENV": "/opt/pulsar_lite/venv",
}
LOGIN = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ"}


def test_a_job_gets_what_a_login_has_and_nothing_else():
    assert set(job_environment(environ=DAEMON)) == LOGIN
    assert job_environment(environ=DAEMON)["PATH"] == DAEMON["PATH"]  # tools the daemon finds, the job finds


def test_scheduler_commands_also_get_what_finds_the_cluster_and_ssh_its_agent():
    assert set(command_environment(environ=DAEMON)) == LOGIN | {"SLURM_CONF", "SBATCH_ACCOUNT", "SGE_ROOT",
                                                                "CONDOR_CONFIG"}
    assert set(command_environment(environ=DAEMON, ssh=True)) - set(command_environment(environ=DAEMON)) == {
        "SSH_AUTH_SOCK"}


def test_pass_environment_adds_names_and_patterns_but_a_secret_only_by_its_exact_name():
    passed = job_environment(["MODULE*", "LD_LIBRARY_PATH", "MY_*", "*"], environ=DAEMON)
    assert {"MODULEPATH", "LD_LIBRARY_PATH", "SLURM_JOB_ID"} <= set(passed)
    assert not {name for name in passed if looks_secret(name)}
    assert job_environment(["MY_SECRET_TOKEN"], environ=DAEMON)["MY_SECRET_TOKEN"] == "x"
    assert "PULSAR_CONFIG_PRIVATE_TOKEN" not in command_environment(["PULSAR_*"], environ=DAEMON)


@pytest.fixture
def secrets(monkeypatch):
    for name, value in DAEMON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.environ["PATH"].replace(DAEMON["PATH"], "") or "/usr/bin:/bin")


def printed_environment(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_local_commands_run_without_the_daemons_secrets(secrets):
    shown = printed_environment(LocalShell(pass_environment=["MODULEPATH"]).run(["env"]).stdout)
    assert LOGIN | {"SLURM_CONF", "SBATCH_ACCOUNT", "SGE_ROOT", "CONDOR_CONFIG", "MODULEPATH"} <= set(shown)
    assert set(shown) == set(command_environment(["MODULEPATH"]))  # this test's own LOGNAME, SHELL, ... too
    assert shown["PATH"] == os.environ["PATH"] and not {name for name in shown if looks_secret(name)}


def test_ssh_runs_without_them_too_but_with_its_agent(secrets, tmp_path):
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text("#!/bin/sh\nexec env\n")
    fake_ssh.chmod(0o755)
    shell = SecureShell(hostname="submit.example.org", rsh=str(fake_ssh), strict_host_key_checking=False)
    shown = printed_environment(shell.run(["sbatch", "x"]).stdout)
    assert "SSH_AUTH_SOCK" in shown and not {name for name in shown if looks_secret(name)}
    assert "LD_LIBRARY_PATH" not in shown


def test_condor_environment_quotes_every_value():
    text = condor_environment({"A": "x y", "B": "it's \"q\"", "F": "() { echo; }\nnot=this", "PATH": "/bin",
                               "D": "$(HOME) $$"})
    assert text == ('"A=\'x y\' B=\'it\'\'s ""q""\' D=\'$(DOLLAR)(HOME) $(DOLLAR)$(DOLLAR)\' PATH=\'/bin\'"')
    # an exported function (F): left out


def test_condor_jobs_get_the_scrubbed_environment_not_getenv(secrets, engine_factory):
    pytest.importorskip("htcondor2")
    engine = engine_factory(managers={"c": {"type": "queued_condor", "pass_environment": ["MODULEPATH"],
                                            "min_polling_interval": 60}})
    manager = engine.managers["c"]
    submission = Submission("j", "pulsar_j", "/s/j", "/s/j/command.sh", "/s/j/o", "/s/j/e",
                            launch={"submit_params": {"getenv": "true", "request_cpus": 2}})
    description = manager.description(submission)
    assert description["getenv"] == "false" and description["request_cpus"] == "2"  # the client's getenv: ignored
    environment = description["environment"]
    assert "MODULEPATH='/opt/modules'" in environment and f"PATH='{os.environ['PATH']}'" in environment
    for value in ("sekrit-token", "amqp://", "pool_password", "/opt/daemon/lib"):
        assert value not in environment
    words = shlex.split(environment)  # one double-quoted value
    assert len(words) == 1


def test_grid_engine_minus_v_copies_the_scrubbed_environment_not_the_daemons(secrets):
    from pulsar_lite.managers.contract import SchedulerError
    from pulsar_lite.managers.drmaa import without_daemon_environment

    assert without_daemon_environment(None) == (None, None)
    assert without_daemon_environment("-q all.q -l h_rt=600") == ("-q all.q -l h_rt=600", None)
    spec, environment = without_daemon_environment("-q all.q -V -l h_rt=600", ["MODULEPATH"])
    assert spec.split() == ["-q", "all.q", "-l", "h_rt=600"]
    assert environment == job_environment(["MODULEPATH"]) and "MODULEPATH" in environment
    assert without_daemon_environment("-v FOO=bar,PATH -q all.q") == ("-v FOO=bar,PATH -q all.q", None)
    for spec in ("-v PULSAR_CONFIG_PRIVATE_TOKEN", "-v A=1,MY_SECRET_TOKEN", "-v LD_LIBRARY_PATH"):
        with pytest.raises(SchedulerError, match="would copy the daemon's"):
            without_daemon_environment(spec)
    assert without_daemon_environment("-v LD_LIBRARY_PATH", ["LD_LIBRARY_PATH"])[0] == "-v LD_LIBRARY_PATH"
