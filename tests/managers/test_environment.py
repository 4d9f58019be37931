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
    "MODULESHOME": "/usr/share/lmod", "LOADEDMODULES": "gcc/12", "_LMFILES_": "/opt/modules/gcc/12.lua",
    "LMOD_CMD": "/usr/share/lmod/libexec/lmod", "BASH_FUNC_module%%": "() {  eval $($LMOD_CMD bash \"$@\")\n}",
    "BASH_FUNC_ml%%": "() {  eval $($LMOD_DIR/ml_cmd \"$@\")\n}", "KRB5CCNAME": "FILE:/tmp/krb5cc_1000",
    "KRB5_CONFIG": "/etc/krb5.conf", "SLURM_CLUSTERS": "hpc1", "SQUEUE_FORMAT": "%i", "SACCT_FORMAT": "jobid",
    "SCANCEL_VERBOSE": "1", "SCONTROL_ALL": "1", "SLURM_JWT": "eyJhbGciOi", "LMOD_SECRET_TOKEN": "t",
}
#: what every job gets: a login's, the libraries' and the module system's (`module` inside the job)
LOGIN = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "LD_LIBRARY_PATH", "MODULEPATH", "MODULESHOME",
         "LOADEDMODULES", "_LMFILES_", "LMOD_CMD", "BASH_FUNC_module%%", "BASH_FUNC_ml%%"}
#: and what the scheduler's commands get besides (so Slurm's jobs too)
COMMANDS = {"SLURM_CONF", "SBATCH_ACCOUNT", "SGE_ROOT", "CONDOR_CONFIG", "SLURM_CLUSTERS", "SQUEUE_FORMAT",
            "SACCT_FORMAT", "SCANCEL_VERBOSE", "SCONTROL_ALL", "KRB5CCNAME", "KRB5_CONFIG"}


def test_a_job_gets_what_a_login_has_and_nothing_else():
    assert set(job_environment(environ=DAEMON)) == LOGIN
    assert job_environment(environ=DAEMON)["PATH"] == DAEMON["PATH"]  # tools the daemon finds, the job finds


def test_scheduler_commands_also_get_what_finds_the_cluster_and_ssh_its_agent():
    assert set(command_environment(environ=DAEMON)) == LOGIN | COMMANDS
    assert set(command_environment(environ=DAEMON, ssh=True)) - set(command_environment(environ=DAEMON)) == {
        "SSH_AUTH_SOCK"}


def test_pass_environment_adds_names_and_patterns_but_a_secret_only_by_its_exact_name():
    passed = job_environment(["MODULE*", "LD_LIBRARY_PATH", "MY_*", "*"], environ=DAEMON)
    assert {"MODULEPATH", "LD_LIBRARY_PATH", "SLURM_JOB_ID"} <= set(passed)
    assert not {name for name in passed if looks_secret(name)}
    assert job_environment(["MY_SECRET_TOKEN"], environ=DAEMON)["MY_SECRET_TOKEN"] == "x"
    assert "PULSAR_CONFIG_PRIVATE_TOKEN" not in command_environment(["PULSAR_*"], environ=DAEMON)
    assert "SLURM_JWT" not in command_environment(["SLURM_*"], environ=DAEMON)  # sbatch would export it
    assert command_environment(["SLURM_JWT"], environ=DAEMON)["SLURM_JWT"] == "eyJhbGciOi"


def test_the_manager_says_at_start_which_variables_its_jobs_no_longer_get(caplog):
    from pulsar_lite.managers.environment import log_withheld

    with caplog.at_level("INFO", logger="pulsar_lite.managers.environment"):
        log_withheld("m", job_environment(["TMPDIR"], environ=DAEMON), environ=DAEMON)
    (record,) = [r for r in caplog.records if r.name == "pulsar_lite.managers.environment"]
    text = record.getMessage()
    assert record.levelname == "INFO" and "manager 'm'" in text and "pass_environment" in text
    for name in ("VIRTUAL_ENV", "SLURM_JOB_ID", "SLURM_CONF", "PULSAR_CONFIG_PRIVATE_TOKEN", "SLURM_JWT"):
        assert name in text
    for name in ("TMPDIR", "PATH=", "MODULEPATH"):
        assert name not in text
    assert not [value for value in DAEMON.values() if len(value) > 3 and value in text]  # names, never values


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
    assert {"KRB5CCNAME", "KRB5_CONFIG", "LD_LIBRARY_PATH"} <= set(shown)  # ssh's GSSAPI finds its ticket
    assert not {"VIRTUAL_ENV", "TMPDIR", "SLURM_JOB_ID"} & set(shown)


def test_condor_environment_quotes_every_value():
    text = condor_environment({"A": "x y", "B": "it's \"q\"", "F": "() { echo; }\nnot=this", "PATH": "/bin",
                               "D": "$(HOME) $$"})
    assert text == ('"A=\'x y\' B=\'it\'\'s ""q""\' D=\'$(DOLLAR)(HOME) $$\' PATH=\'/bin\'"')
    # an exported function (F): left out


def test_condor_environment_values_reach_the_job_ad_as_they_are(caplog):
    """What the submit makes of the environment (Submit.expand: what the schedd gets) is each value unchanged:
    ``$$`` stays ``$$`` (it became ``$$(DOLLAR)``, a match-time macro) and no macro of the value is expanded.
    What cannot be carried is left out and logged."""
    htcondor2 = pytest.importorskip("htcondor2")
    values = {"PW": "pa$$word", "PID": "$$", "E": "x$$ENV(HOME) $$$ $", "M": "$(HOME) $ENV(HOME) $Fn(a/b) $$ENV(x)",
              "R": "$RANDOM_INTEGER(1,9)$(DOLLAR", "Q": "it's \"q\" $'x'", "END": "ends in $"}
    written = condor_environment(values)
    expanded = htcondor2.Submit({"executable": "/bin/true", "environment": written}).expand("environment")
    assert expanded == '"' + " ".join(f"{name}='" + value.replace("'", "''").replace('"', '""') + "'"
                                      for name, value in sorted(values.items())) + '"'
    assert "$$(" not in expanded
    with caplog.at_level("WARNING", logger="pulsar_lite.managers.environment"):
        text = condor_environment({"OK": "1", "BASH_FUNC_cx%%": "() { echo\n}", "MATCH_TIME": "$$(Memory)",
                                   "OWN_DOLLAR": "a$(dollar)b"})
        condor_environment({"BASH_FUNC_cx%%": "() { echo\n}"})
    assert text == '"OK=\'1\'"'
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3 and all("HTCondor jobs do not get" in m for m in said)
    assert {"BASH_FUNC_cx%%", "MATCH_TIME", "OWN_DOLLAR"} == {m.split()[5].rstrip(":") for m in said}
    assert not any("Memory" in m or "echo" in m for m in said)  # names, not values


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
    assert "LD_LIBRARY_PATH='/opt/daemon/lib'" in environment
    for value in ("sekrit-token", "amqp://", "pool_password", "/opt/pulsar_lite/venv", "eyJhbGciOi"):
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
    for spec in ("-v PULSAR_CONFIG_PRIVATE_TOKEN", "-v A=1,MY_SECRET_TOKEN", "-v VIRTUAL_ENV", "-v SLURM_JWT"):
        with pytest.raises(SchedulerError, match="would copy the daemon's"):
            without_daemon_environment(spec)
    assert without_daemon_environment("-v VIRTUAL_ENV", ["VIRTUAL_ENV"])[0] == "-v VIRTUAL_ENV"
    assert without_daemon_environment("-v LD_LIBRARY_PATH,MODULEPATH")[0] == "-v LD_LIBRARY_PATH,MODULEPATH"


def test_a_cluster_manager_logs_the_withheld_names_once_at_its_start(secrets, engine_factory, caplog):
    pytest.importorskip("htcondor2")
    with caplog.at_level("INFO", logger="pulsar_lite.managers.environment"):
        engine_factory(managers={"c": {"type": "queued_condor", "pass_environment": ["TMPDIR"],
                                       "min_polling_interval": 60}})
    said = [r.getMessage() for r in caplog.records if "no longer get" in r.getMessage()]
    assert len(said) == 1 and "manager 'c'" in said[0]
    assert "VIRTUAL_ENV" in said[0] and "PULSAR_CONFIG_PRIVATE_TOKEN" in said[0] and "TMPDIR" not in said[0]
    assert "sekrit-token" not in said[0]
