"""queued_drmaa on a real Grid Engine 8.1.9 cell (scripts/ci/sge-up.sh) through the PyPI drmaa package, with
the real clients over REST and one job over AMQP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.amqp import RABBIT_URL, ensure_client_kombu, rabbit_available, unique
from tests.conftest import need, wait_until

from .clusters import DRMAA_ENV, sge_queue, sge_ready
from .rest_helpers import rest
from .schedulers import (RealClient, check_a_return_code_that_shows_after_the_scheduler_says_ended,
                         check_a_wedged_scheduler, check_cancel_while_pending_and_while_running,
                         check_through_scheduler, check_over_amqp, external_id)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cell():
    need(sge_ready(), "Grid Engine is not running here (bash scripts/ci/sge-up.sh)")
    try:
        import drmaa  # noqa: F401  (imports only with DRMAA_LIBRARY_PATH set: the daemon's environment has it)
    except ImportError:
        need(False, "the drmaa package is not installed (pip install drmaa)")
    except Exception:
        pass


@pytest.fixture
def drmaa_daemon(cell, daemon_factory):
    def make(**manager):
        # Grid Engine starts jobs with its own minimal environment: the checks' tools need python on PATH
        manager.setdefault("env_PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
        daemon = daemon_factory({"managers": {"_default_": {"type": "queued_drmaa", "min_polling_interval": 0.5,
                                                            **manager}}})
        daemon.env.update(DRMAA_ENV)
        return daemon

    return make


def test_pulsar_check_through_drmaa(drmaa_daemon, client_python):
    check_through_scheduler(drmaa_daemon(), client_python, "SGE")


def test_exit_code_and_native_specification(drmaa_daemon, client_python_016):
    daemon = drmaa_daemon(native_specification="-l h_rt=600", client_submit_params="append").start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("three", "exit 3", submit_native_specification="-l h_cpu=1000")
    final = client.wait("three")
    assert final["status"] == "complete" and final["returncode"] == 3
    accounting = wait_until(lambda: (lambda d: d.returncode == 0 and d.stdout)(
        subprocess.run(["qacct", "-j", daemon.record("three")["external_id"]], capture_output=True, text=True)),
        timeout=20, what="qacct record")
    assert "h_rt=600" in accounting and "h_cpu=1000" in accounting  # the manager's and the client's


def test_by_default_the_managers_specification_overrides_the_clients_as_in_pulsar(drmaa_daemon, client_python_016):
    """client_submit_params unset: Pulsar's rule. The manager has a native specification: the client's (another
    queue, a CPU limit) is dropped and logged, the job runs as the manager says."""
    daemon = drmaa_daemon(native_specification="-l h_rt=600").start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("site", "exit 0", submit_native_specification="-q no-such.q -l h_cpu=1000")
    final = client.wait("site")
    assert final["status"] == "complete" and final["returncode"] == 0, final
    accounting = wait_until(lambda: (lambda d: d.returncode == 0 and d.stdout)(
        subprocess.run(["qacct", "-j", daemon.record("site")["external_id"]], capture_output=True, text=True)),
        timeout=20, what="qacct record")
    assert "h_rt=600" in accounting and "h_cpu" not in accounting
    assert "-q no-such.q (client_submit_params: ignore)" in daemon.log_path.read_text()


#: the client's -h (a user hold) keeps a job pending: said in the manager's settings (client_submit_params), though
#: Pulsar's default (no native_specification: the client's is used) lets it through too
HOLD = {"client_submit_params": "append", "client_submit_options": ["-h"]}


def test_cancel_while_pending_and_while_running(drmaa_daemon, client_python_016):
    daemon = drmaa_daemon(**HOLD).start()
    check_cancel_while_pending_and_while_running(daemon, RealClient(client_python_016, daemon.url), sge_queue,
                                                 submit_native_specification="-h")  # a user hold


def test_qdel_behind_the_daemons_back_is_a_failure(drmaa_daemon, client_python_016):
    daemon = drmaa_daemon().start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("victim", "sleep 300")
    client.wait("victim", ("running",))
    subprocess.run(["qdel", daemon.record("victim")["external_id"]], check=True, capture_output=True)
    final = client.wait("victim", timeout=60)
    assert final["status"] == "failed" and ("aborted" in final["stderr"] or "signal" in final["stderr"])


def test_jobs_removed_before_they_ran_are_resolved_with_the_others(drmaa_daemon, client_python_016):
    """Grid Engine keeps no usage record of a job removed before it ran (DRMAA's wait answers NO_RUSAGE, which
    the binding raises as a bare Exception): each such job is resolved in the pass that sees it, and the pass
    goes on for the other jobs."""
    daemon = drmaa_daemon(**HOLD).start()
    client = RealClient(client_python_016, daemon.url)
    held = [f"held{n}" for n in range(3)]
    for job in held:
        client.launch(job, "echo never > ../outputs/ran", submit_native_specification="-h")
    ids = [external_id(daemon, job) for job in held]
    client.launch("quick", "sleep 2; exit 5")
    client.wait("quick", ("running",))
    subprocess.run(["qdel", ids[0]], check=True, capture_output=True)  # behind the daemon's back
    client.kill("held1")
    client.kill("held2")
    removed = client.wait("held0")
    assert removed["status"] == "failed" and "no usage record" in removed["stderr"], removed
    assert client.wait("held1")["status"] == "cancelled" and client.wait("held2")["status"] == "cancelled"
    assert client.wait("quick")["returncode"] == 5
    assert "status loop" not in daemon.log(), daemon.log()[-3000:]
    assert not any((daemon.staging / job / "outputs" / "ran").exists() for job in held)


def test_kill9_and_a_new_session_that_cannot_see_the_old_jobs(drmaa_daemon, client_python_016):
    """After a restart the new DRMAA session cannot ask about jobs the old one submitted (InvalidJobException):
    qstat and qacct answer instead, and every job ends right."""
    daemon = drmaa_daemon(**HOLD).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("running", "sleep 6; echo x >> ../outputs/runs")
    client.launch("ends", "echo x >> ../outputs/runs; sleep 1; exit 4")
    client.launch("held", "true", submit_native_specification="-h")
    for job in ("running", "ends"):
        client.wait(job, ("running",))
    held_id = external_id(daemon, "held")
    daemon.kill9()
    time.sleep(3)
    daemon.start()
    assert client.wait("running", timeout=60)["returncode"] == 0
    assert client.wait("ends", timeout=60)["returncode"] == 4
    for job in ("running", "ends"):
        assert (daemon.staging / job / "outputs" / "runs").read_text() == "x\n"
    client.kill("held")
    assert client.wait("held")["status"] == "cancelled"
    wait_until(lambda: held_id not in sge_queue(), what="held gone from qstat")


def test_one_job_over_amqp_through_drmaa(drmaa_daemon, client_python_016):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    prefix = unique("drmaa")
    daemon = drmaa_daemon()
    daemon.app.update({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix, "web": False})
    (daemon.root / "app.yml").write_text(json.dumps(daemon.app))
    check_over_amqp(daemon, client_python_016, prefix, "SGE")


def test_a_held_job_is_failed_after_held_job_grace_and_removed_from_grid_engine(drmaa_daemon, client_python_016):
    """qhold (Grid Engine's hqw): failed with the scheduler's reason after held_job_grace (4 s here) and
    deleted, never run; a job held and released (qrls) within the grace runs. Before, a held job stayed
    'queued' for ever."""
    daemon = drmaa_daemon(held_job_grace=4, **HOLD).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("stays-held", "echo never > ../outputs/ran", submit_native_specification="-h")
    client.launch("released", "echo ran > ../outputs/ran", submit_native_specification="-h")
    held_id, released_id = external_id(daemon, "stays-held"), external_id(daemon, "released")
    time.sleep(1)
    subprocess.run(["qrls", released_id], check=True, capture_output=True)
    assert client.wait("released", timeout=90)["status"] == "complete"
    final = client.wait("stays-held", timeout=60)
    assert final["status"] == "failed" and "held by" in final["stderr"] and "on_hold" in final["stderr"], final
    wait_until(lambda: held_id not in sge_queue(), what="the held job removed from Grid Engine")
    assert not (daemon.staging / "stays-held" / "outputs" / "ran").exists()
    assert (daemon.staging / "released" / "outputs" / "ran").read_text() == "ran\n"


def test_a_qmaster_out_of_reach_at_start_degrades_that_manager_alone(daemon_factory, cell, client_python_016):
    """The daemon's DRMAA session cannot reach the qmaster (a port nobody listens on): the daemon starts all
    the same (before, it exited), /readyz says which manager is degraded (still 200), the queued_python
    manager beside it runs its jobs, and the DRMAA job waits, queued, not failed."""
    daemon = daemon_factory({"managers": {
        "_default_": {"type": "queued_drmaa", "min_polling_interval": 0.5},
        "local": {"type": "queued_python"}}})
    daemon.env.update(DRMAA_ENV, SGE_QMASTER_PORT="1")
    daemon.start()
    code, body = rest(daemon.url, "GET", "/readyz")
    reply = json.loads(body)
    assert code == 200 and "manager _default_" in reply["degraded"][0] and "qmaster" in reply["degraded"][0], reply
    local = RealClient(client_python_016, daemon.url.rstrip("/") + "/managers/local/")  # Pulsar's manager URLs
    local.launch("local-job", "exit 0")
    assert local.wait("local-job")["status"] == "complete"
    client = RealClient(client_python_016, daemon.url)
    client.launch("waits", "true")
    time.sleep(3)
    assert client.status("waits")["status"] == "queued", daemon.log()[-3000:]
    assert "nothing was sent, the job waits" in daemon.log()


def test_a_wedged_qmaster_holds_neither_submissions_nor_shutdown(drmaa_daemon, client_python_016):
    """sge_qmaster stopped (SIGSTOP): the DRMAA submit call is given up after scheduler_call_timeout and the job
    found once it answers (runs once); the daemon stops at once while it is wedged. Before, the calls had no
    time limit and held the manager's lock (submits, polls and deletes waited behind them)."""
    daemon = drmaa_daemon(scheduler_call_timeout=3, **HOLD).start()
    waiting = check_a_wedged_scheduler(daemon, RealClient(client_python_016, daemon.url), "sge_qmaster",
                                       submit_native_specification="-h")
    subprocess.run(["qdel", waiting], capture_output=True)


def test_a_return_code_that_shows_5_s_after_grid_engine_says_the_job_ended_is_complete(drmaa_daemon,
                                                                                        client_python_016):
    daemon = drmaa_daemon().start()

    def ended(job: str) -> bool:  # qstat -j: 1 once the job has left Grid Engine's queue
        return subprocess.run(["qstat", "-j", job], capture_output=True, env={**os.environ, **DRMAA_ENV}).returncode != 0

    check_a_return_code_that_shows_after_the_scheduler_says_ended(daemon, RealClient(client_python_016, daemon.url),
                                                                   ended)
