"""queued_cli on a real Slurm (scripts/ci/slurm-up.sh), driven by the real clients over REST (and one job over
AMQP): outcomes, cancels, Slurm-side ends, kill -9 of the daemon, SecureShell to a real sshd."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.amqp import RABBIT_URL, ensure_client_kombu, rabbit_available, unique
from tests.conftest import CLIENT_VERSIONS, Daemon, ensure_client_venv, need, run_check_api, wait_until

from .schedulers import (RealClient, check_cancel_while_pending_and_while_running, check_through_scheduler,
                         check_over_amqp, slurm_ready, squeue_ids)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SSH_DIR = Path("/etc/pulsar-lite-ci")


def slurm_app(**manager) -> dict:
    return {"managers": {"_default_": {"type": "queued_cli", "job_plugin": "Slurm", "min_polling_interval": 0.5,
                                       **manager}}}


@pytest.fixture(scope="module")
def slurm():
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")


@pytest.fixture(scope="module", autouse=True)
def timed_out(slurm, tmp_path_factory):
    """A job with a one-minute time limit, submitted when the module starts and checked at its end (Slurm
    enforces limits in whole minutes, on a 30 s sweep: about 90 s that the other tests use meanwhile)."""
    try:
        python = ensure_client_venv("0.16.0")
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the client virtualenv: {exc}")
    daemon = Daemon(tmp_path_factory.mktemp("timed"), slurm_app()).start()
    client = RealClient(python, daemon.url)
    client.launch("limit", "sleep 600", submit_walltime=60)
    yield daemon, client
    daemon.stop()


def test_pulsar_check_through_slurm(slurm, client_python, daemon_factory):
    check_through_scheduler(daemon_factory(slurm_app()), client_python, "Slurm")


def test_exit_code_and_resources_reach_slurm(slurm, client_python, daemon_factory):
    daemon = daemon_factory(slurm_app(client_submit_params="append",
                                      client_submit_options=["--comment", "-c", "--mem"])).start()
    client = RealClient(client_python, daemon.url)
    client.launch("three", "echo to-stdout; echo $SLURM_CPUS_PER_TASK $SLURM_MEM_PER_NODE > ../outputs/res; exit 3",
                  submit_native_specification="--comment=from-galaxy", submit_cores=2, submit_memory=300)
    final = client.wait("three")
    assert final["status"] == "complete" and final["returncode"] == 3
    assert "to-stdout" in final["job_stdout"]
    external_id = daemon.record("three")["external_id"]
    shown = subprocess.run(["scontrol", "-o", "show", "job", external_id], capture_output=True, text=True).stdout
    assert "NumCPUs=2" in shown and "MinMemoryNode=300M" in shown and "Comment=from-galaxy" in shown
    assert (daemon.staging / "three" / "outputs" / "res").read_text().split() == ["2", "300"]


#: the client's --hold keeps a job pending (a client's options are dropped unless the manager lets them through)
HOLD = {"client_submit_params": "append", "client_submit_options": ["--hold"]}


def test_site_policy_wins_over_the_clients_partition_and_account_and_its_quotes_hold(slurm, daemon_factory,
                                                                                    client_python_016):
    """client_submit_params: append. A remote Galaxy asks for another partition and account, options the
    manager lets clients set (client_submit_options) but sets itself: the job runs in the manager's partition
    with its account, the client's are dropped and logged. Its comment, in quotes, arrives as one value
    (Pulsar-style re-joining made it two words: sbatch refused the directive)."""
    daemon = daemon_factory(slurm_app(job_partition="debug", native_specification="-A galaxy_site",
                                      client_submit_params="append",
                                      client_submit_options=["-p", "-A", "--comment", "-c"])).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("site", "echo $SLURM_JOB_PARTITION $SLURM_JOB_ACCOUNT > ../outputs/where",
                  submit_native_specification="--partition=nosuch -A stolen --comment=\"two words\"",
                  submit_queue="nosuch", submit_cores=1)
    final = client.wait("site")
    assert final["status"] == "complete" and final["returncode"] == 0, final
    shown = subprocess.run(["scontrol", "-o", "show", "job", daemon.record("site")["external_id"]],
                           capture_output=True, text=True).stdout
    assert " Partition=debug " in shown and " Account=galaxy_site " in shown
    comment = re.search(r" Comment=(.*?)\s+\w+=", shown)
    assert comment and comment.group(1) == "two words", shown
    assert (daemon.staging / "site" / "outputs" / "where").read_text().split() == ["debug", "galaxy_site"]
    logged = daemon.log_path.read_text()
    assert "--partition=nosuch (the manager sets it)" in logged and "-A stolen (the manager sets it)" in logged


def test_cancel_while_pending_and_while_running(slurm, daemon_factory, client_python_016):
    daemon = daemon_factory(slurm_app(**HOLD)).start()
    check_cancel_while_pending_and_while_running(daemon, RealClient(client_python_016, daemon.url), squeue_ids,
                                                 submit_native_specification="--hold")


def test_scancel_behind_the_daemons_back_is_a_failure_with_the_reason(slurm, daemon_factory, client_python_016):
    daemon = daemon_factory(slurm_app()).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("victim", "sleep 300")
    client.wait("victim", ("running",))
    subprocess.run(["scancel", daemon.record("victim")["external_id"]], check=True)
    final = client.wait("victim")
    assert final["status"] == "failed"
    assert "cancelled in Slurm" in final["stderr"]


def test_a_job_slurm_no_longer_knows_is_failed_not_complete(slurm, daemon_factory, client_python_016):
    """The store names a Slurm job that Slurm has no record of (purged while the daemon was down) and the job
    left no exit code: failed, with a message saying so (Pulsar reported such a job complete)."""
    daemon = daemon_factory(slurm_app()).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("ghost", "sleep 300")
    client.wait("ghost", ("running",))
    real_id = daemon.record("ghost")["external_id"]
    daemon.kill9()
    subprocess.run(["scancel", real_id], check=True)
    import sqlite3
    db = sqlite3.connect(Path(daemon.app["persistence_directory"]) / "pulsar_lite.sqlite")
    db.execute("UPDATE jobs SET external_id='99999999' WHERE job_id='ghost'")
    db.commit()
    db.close()
    daemon.start()
    final = client.wait("ghost")
    assert final["status"] == "failed" and "no longer knows job 99999999" in final["stderr"]


def test_kill9_with_jobs_pending_running_finishing_and_being_submitted(slurm, daemon_factory, client_python_016,
                                                                       tmp_path):
    """kill -9 of the daemon with jobs held (pending) and running in Slurm, one that ends while the daemon is
    down, one whose sbatch had run and one whose sbatch had not: after the restart every job ends right,
    none is stuck and none runs twice."""
    runs = tmp_path / "runs"
    runs.mkdir()
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    real_sbatch = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    # sbatch, slowed for two jobs: 'after' is submitted, then the daemon dies before sbatch answers;
    # 'before' is still waiting to be submitted when the daemon dies
    (wrappers / "sbatch").write_text(f"""#!/bin/bash
script="${{@: -1}}"
case "$script" in
  */after/*) out=$({real_sbatch} "$@"); touch {runs}/after.inside; sleep 30; echo "$out";;
  */before/*) touch {runs}/before.inside; sleep 30; exec {real_sbatch} "$@";;
  *) exec {real_sbatch} "$@";;
esac
""")
    (wrappers / "sbatch").chmod(0o755)
    daemon = daemon_factory(slurm_app(**HOLD))
    daemon.env["PATH"] = f"{wrappers}:{os.environ['PATH']}"
    daemon.start()
    client = RealClient(client_python_016, daemon.url)

    def count(name):
        return f"echo x >> {runs}/{name}"

    client.launch("running", f"{count('running')}; sleep 6")
    client.launch("pending", count("pending"), submit_native_specification="--hold")
    client.launch("ends", f"{count('ends')}; sleep 2; exit 4")
    client.launch("after", count("after"))
    client.launch("before", count("before"))
    for job in ("running", "ends"):
        client.wait(job, ("running",))
    wait_until(lambda: (runs / "after.inside").exists() and (runs / "before.inside").exists(), what="submissions")
    pending_id = daemon.record("pending")["external_id"]
    daemon.kill9()
    time.sleep(3)  # 'ends' ends meanwhile
    daemon.env.pop("PATH")
    daemon.start()
    subprocess.run(["scontrol", "release", pending_id], check=True)
    finals = {job: client.wait(job, timeout=90) for job in ("running", "pending", "ends", "after", "before")}
    assert {job: (s["status"], s["returncode"]) for job, s in finals.items()} == {
        "running": ("complete", 0), "pending": ("complete", 0), "ends": ("complete", 4), "after": ("complete", 0),
        "before": ("complete", 0)}
    for job in finals:
        assert (runs / job).read_text() == "x\n", f"{job} ran {(runs / job).read_text().count('x')} times"
    log = daemon.log()
    assert "found its submission as Slurm job" in log and "its submission never reached Slurm" in log


def test_one_job_over_amqp_through_slurm(slurm, daemon_factory, client_python_016):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    prefix = unique("slurm")
    daemon = daemon_factory({**slurm_app(), "message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix, "web": False})
    check_over_amqp(daemon, client_python_016, prefix, "Slurm")


@pytest.mark.parametrize("version", CLIENT_VERSIONS)
def test_pulsar_check_over_secure_shell(slurm, daemon_factory, version):
    need((SSH_DIR / "id_ed25519").exists(), "the test sshd is not set up (bash scripts/ci/sshd-up.sh)")
    try:
        python = ensure_client_venv(version)
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the client virtualenv: {exc}")
    daemon = daemon_factory(slurm_app(
        shell_plugin="SecureShell", shell_hostname="127.0.0.1", shell_port=2222, shell_username="pulsar-ssh",
        shell_private_key=str(SSH_DIR / "id_ed25519"), shell_known_hosts=str(SSH_DIR / "known_hosts"),
        # jobs get the environment of the ssh login, as on a real submit host: the check's tool needs python
        env_PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")).start()
    result = run_check_api(python, url=daemon.url, default_file_action="transfer")
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n--- server log\n{daemon.log()[-4000:]}"
    assert "submitted to Slurm as" in daemon.log()


def test_secure_shell_failure_is_a_clear_job_failure(slurm, daemon_factory, client_python_016):
    """A submit host that refuses connections: nothing was sent, so the job waits for it (a host rebooting
    comes back) and is failed with the reason once it has been out of reach for scheduler_failure_timeout."""
    daemon = daemon_factory(slurm_app(
        shell_plugin="SecureShell", shell_hostname="127.0.0.1", shell_port=1, shell_username="nobody",
        shell_connect_timeout=2, scheduler_failure_timeout=6)).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("nossh", "true")
    assert client.status("nossh")["status"] == "queued"
    final = client.wait("nossh")
    assert final["status"] == "failed"
    assert "ssh to nobody@127.0.0.1:1 failed" in final["stderr"] and "Connection refused" in final["stderr"]
    assert "could not be reached for" in final["stderr"]


def test_time_limit_is_a_failure_with_the_reason(timed_out):
    daemon, client = timed_out
    final = client.wait("limit", timeout=150)
    assert final["status"] == "failed" and "time limit reached" in final["stderr"], daemon.log()[-3000:]
