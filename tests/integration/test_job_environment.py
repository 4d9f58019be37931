"""The environment a job gets, read from inside real Slurm, HTCondor and Grid Engine jobs: the manager's env_*,
what a login has and the manager's pass_environment; never the daemon's secrets (issue 26, item 9: sbatch
exported the daemon's whole environment into every job, HTCondor's getenv = true copied it, and a Grid
Engine -V did)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ensure_client_venv, need

from .clusters import (CONDOR_CONFIG, DRMAA_ENV, condor_ready, sge_ready, share_with_condor,
                       unshare_with_condor)
from .schedulers import RealClient, slurm_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "sekrit-token"
#: in the daemon's environment: its token (the client must send it), a broker URL with its password (a port
#: where nothing listens: the AMQP face retries in the background) and a site's own secret
SECRETS = {
    "PULSAR_CONFIG_PRIVATE_TOKEN": TOKEN,
    "PULSAR_CONFIG_MESSAGE_QUEUE_URL": "amqp://galaxy:mq-pa55word@127.0.0.1:9//",
    "MY_SECRET_TOKEN": "my-own-secret-value",
    "SLURM_JWT": "slurm-jwt-value",
}
#: kept by default: a site's libraries and its module system (Galaxy's modules resolver runs module in the job)
RUNTIME = {"LD_LIBRARY_PATH": "/opt/site/lib", "MODULEPATH": "/opt/site/modules",
           "BASH_FUNC_module%%": '() {  echo "module $*"\n}'}
#: passed on by pass_environment; its value needs quoting in HTCondor's environment, and $(...) is a macro there
SITE_NOTE = "it's a \"note\" with  spaces and $(dollars) $HOME pa$$word $ENV(HOME)"
MANAGER = {"env_FROM_MANAGER": "set by env_", "pass_environment": ["SITE_NOTE"], "min_polling_interval": 0.5}


@pytest.fixture(scope="module")
def python():
    try:
        return ensure_client_venv("0.16.0")
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the client virtualenv: {exc}")


def with_secrets(daemon):
    daemon.env.update(SECRETS)
    daemon.env.update(RUNTIME)
    daemon.env["SITE_NOTE"] = SITE_NOTE
    return daemon


def job_environment(daemon, python, job_id: str = "env", **destination) -> dict[str, str]:
    """Run ``env`` as a job; what it printed, as a dict (after checking no secret is anywhere in it)."""
    client = RealClient(python, daemon.url, private_token=TOKEN)
    client.launch(job_id, "env -0 > ../outputs/env.bin", **destination)
    final = client.wait(job_id, timeout=120)
    assert final["status"] == "complete" and final["returncode"] == 0, (final, daemon.log()[-3000:])
    text = (daemon.staging / job_id / "outputs" / "env.bin").read_text()
    for name, value in SECRETS.items():
        assert name not in text and value not in text, f"{name} reached the job"
    assert "mq-pa55word" not in text
    return dict(entry.split("=", 1) for entry in text.split("\0") if "=" in entry)


def daemon_path() -> str:
    """The PATH conftest's Daemon starts the daemon with."""
    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def test_a_slurm_job_gets_no_daemon_secret(daemon_factory, python):
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
    daemon = with_secrets(daemon_factory({"managers": {"_default_": {
        "type": "queued_cli", "job_plugin": "Slurm", **MANAGER}}})).start()
    env = job_environment(daemon, python)
    assert env["FROM_MANAGER"] == "set by env_" and env["SITE_NOTE"] == SITE_NOTE
    assert env["PATH"] == daemon_path()  # the tools the daemon finds, the job finds
    assert env["SLURM_JOB_ID"] == daemon.record("env")["external_id"]
    assert {name: env.get(name) for name in RUNTIME} == RUNTIME  # sbatch exported them: `module` works
    said = [line for line in daemon.log().splitlines() if "no longer get" in line]
    assert said and "MY_SECRET_TOKEN" in said[0] and "my-own-secret-value" not in said[0]


def test_a_slurm_job_submitted_over_ssh_gets_the_logins_environment(daemon_factory, python):
    """SecureShell: the job's environment is the ssh login's on the submit host (ssh sends at most LANG and
    LC_*); here too, none of the daemon's secrets."""
    keys = Path("/etc/pulsar-lite-ci")
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
    need((keys / "id_ed25519").exists(), "the test sshd is not set up (bash scripts/ci/sshd-up.sh)")
    daemon = with_secrets(daemon_factory({"managers": {"_default_": {
        "type": "queued_cli", "job_plugin": "Slurm", "shell_plugin": "SecureShell", "shell_hostname": "127.0.0.1",
        "shell_port": 2222, "shell_username": "pulsar-ssh", "shell_private_key": str(keys / "id_ed25519"),
        "shell_known_hosts": str(keys / "known_hosts"), **MANAGER}}})).start()
    env = job_environment(daemon, python)
    assert env["FROM_MANAGER"] == "set by env_" and env["USER"] == "pulsar-ssh"
    assert "SITE_NOTE" not in env  # the daemon's environment does not travel over ssh


@pytest.fixture
def condor_daemon(daemon_factory):
    need(condor_ready(), "the HTCondor pool is not running here, or the htcondor bindings are missing")
    mounts = []

    def make(**manager):
        daemon = daemon_factory({"managers": {"_default_": {"type": "queued_condor", **MANAGER, **manager}}})
        daemon.env["CONDOR_CONFIG"] = CONDOR_CONFIG
        mounts.append(share_with_condor(daemon.root))
        return with_secrets(daemon)

    yield make
    for target in mounts:
        unshare_with_condor(target)


def test_an_htcondor_job_gets_no_daemon_secret_even_when_the_client_asks_for_getenv(condor_daemon, python):
    daemon = condor_daemon().start()
    env = job_environment(daemon, python, submit_getenv="true")
    assert env["FROM_MANAGER"] == "set by env_" and env["SITE_NOTE"] == SITE_NOTE
    assert env["PATH"] == daemon_path()
    assert "CONDOR_CONFIG" not in env  # the host's client configuration is no business of the job's
    assert env["LD_LIBRARY_PATH"] == RUNTIME["LD_LIBRARY_PATH"] and env["MODULEPATH"] == RUNTIME["MODULEPATH"]
    assert "BASH_FUNC_module%%" not in env and "HTCondor jobs do not get BASH_FUNC_module%%" in daemon.log()
    assert "the client's submit_getenv is ignored" in daemon.log()


def refused_job(daemon, python, **submit_params) -> dict:
    """A job that asks, through its client's submit parameters, for something of the daemon's environment: its
    final status, which must be 'failed'."""
    client = RealClient(python, daemon.url, private_token=TOKEN)
    client.launch("asks", "env > ../outputs/env.txt", **submit_params)
    final = client.wait("asks", timeout=60)
    assert final["status"] == "failed", final
    return final


def test_an_htcondor_client_cannot_read_the_daemons_environment_through_a_macro(condor_daemon, python):
    """$ENV(...) in a client's submit_* value: the submit would expand it in the daemon's process."""
    daemon = condor_daemon().start()
    final = refused_job(daemon, python, submit_environment="X=$ENV(PULSAR_CONFIG_PRIVATE_TOKEN)")
    assert "submit_environment refused: HTCondor macros" in final["stderr"]
    assert TOKEN not in final["stderr"] and TOKEN not in daemon.log()


@pytest.fixture
def drmaa_daemon(daemon_factory):
    need(sge_ready(), "Grid Engine is not running here (bash scripts/ci/sge-up.sh)")

    def make(**manager):
        daemon = daemon_factory({"managers": {"_default_": {"type": "queued_drmaa", **MANAGER, **manager}}})
        daemon.env.update(DRMAA_ENV)
        return with_secrets(daemon)

    return make


def test_a_grid_engine_job_gets_no_daemon_secret_even_with_minus_capital_v(drmaa_daemon, python):
    daemon = drmaa_daemon(native_specification="-V").start()
    env = job_environment(daemon, python)
    assert env["FROM_MANAGER"] == "set by env_" and env["SITE_NOTE"] == SITE_NOTE
    assert env["PATH"].endswith(daemon_path())  # -V: the daemon's PATH (after the job's TMPDIR), nothing secret
    assert "GLIBC_TUNABLES" not in env and "DRMAA_LIBRARY_PATH" not in env


def test_grid_engine_minus_v_of_a_secret_is_refused(drmaa_daemon, python):
    daemon = drmaa_daemon().start()
    final = refused_job(daemon, python, submit_native_specification="-v MY_SECRET_TOKEN")
    assert "would copy the daemon's MY_SECRET_TOKEN" in final["stderr"]
