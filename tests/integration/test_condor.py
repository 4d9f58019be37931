"""queued_condor on a real HTCondor pool (scripts/ci/condor-up.sh: a personal pool in a Debian trixie chroot,
driven from this host through the PyPI htcondor2 bindings), with the real clients over REST and one job
over AMQP. The pool runs every job as its own unprivileged owner; the daemon's directory is shared into the
chroot through an id-mapped mount, so daemon and jobs act as one account, as in production."""
from __future__ import annotations

import json
import time

import pytest

from tests.amqp import RABBIT_URL, ensure_client_kombu, rabbit_available, unique
from tests.conftest import need, wait_until

from .clusters import CONDOR_CONFIG, condor, condor_queue, condor_ready, share_with_condor, unshare_with_condor
from .schedulers import (RealClient, check_a_return_code_that_shows_after_the_scheduler_says_ended,
                         check_a_wedged_scheduler, check_cancel_while_pending_and_while_running,
                         check_through_scheduler, check_over_amqp, external_id)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
INTERVAL = 0.5


@pytest.fixture(scope="module")
def pool():
    need(condor_ready(), "the HTCondor pool is not running here, or the htcondor bindings are missing "
                         "(bash scripts/ci/condor-up.sh; pip install htcondor)")


@pytest.fixture
def condor_daemon(pool, daemon_factory, tmp_path):
    mounts = []

    def make(**manager):
        app = {"managers": {"_default_": {"type": "queued_condor", "min_polling_interval": INTERVAL, **manager}}}
        daemon = daemon_factory(app)
        daemon.env["CONDOR_CONFIG"] = CONDOR_CONFIG
        mounts.append(share_with_condor(daemon.root))
        return daemon

    yield make
    for target in mounts:
        unshare_with_condor(target)


def test_pulsar_check_through_condor(condor_daemon, client_python):
    check_through_scheduler(condor_daemon(), client_python, "HTCondor")


def test_exit_code_and_submit_params(condor_daemon, client_python_016):
    daemon = condor_daemon(submit_request_memory=64, submit_accounting_group="galaxy").start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("three", "id -un > ../outputs/owner; exit 3", submit_request_cpus=1)
    final = client.wait("three")
    assert final["status"] == "complete" and final["returncode"] == 3
    assert (daemon.staging / "three" / "outputs" / "owner").read_text().strip() == "ciuser"  # the pool's owner
    cluster = daemon.record("three")["external_id"]
    history = condor("condor_history", cluster, "-limit", "1", "-af", "RequestMemory", "AcctGroup",
                     "PulsarLiteManager")
    assert history.stdout.split() == ["64", "galaxy", "_default_"]


def test_append_with_an_allowlist_keeps_the_managers_keys(condor_daemon, client_python_016):
    """client_submit_params: append with client_submit_options: the client's accounting group (the manager
    sets one) and its requirements (not allowed; they match no machine) are dropped, its request_cpus is kept."""
    daemon = condor_daemon(submit_accounting_group="galaxy", client_submit_params="append",
                           client_submit_options=["request_cpus"]).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("site", "exit 0", submit_accounting_group="stolen", submit_requirements="False",
                  submit_request_cpus=1)
    final = client.wait("site", timeout=120)
    assert final["status"] == "complete" and final["returncode"] == 0, final
    history = condor("condor_history", daemon.record("site")["external_id"], "-limit", "1", "-af", "AcctGroup",
                     "RequestCpus")
    assert history.stdout.split() == ["galaxy", "1"]
    logged = daemon.log_path.read_text()
    assert "accounting_group stolen (the manager sets it)" in logged
    assert "requirements False (not in client_submit_options)" in logged


def test_by_default_a_clients_attribute_keys_never_reach_the_managers_or_the_daemons(condor_daemon,
                                                                                      client_python_016):
    """The default (append with '*'): +AccountingGroup / MY.AcctGroup beside the manager's accounting_group,
    a local universe (the daemon's own host) and a file transfer made as the daemon's account are dropped; the
    job runs in the vanilla universe, in the manager's group, without the file."""
    daemon = condor_daemon(submit_accounting_group="galaxy").start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("attrs", "test ! -e app.yml", **{
        "submit_+AccountingGroup": '"stolen.bob"', "submit_MY.AcctGroup": '"stolen"', "submit_universe": "local",
        "submit_should_transfer_files": "YES", "submit_transfer_input_files": str(daemon.root / "app.yml"),
        "submit_+Wanted": '"kept"'})
    final = client.wait("attrs", timeout=120)
    assert final["status"] == "complete" and final["returncode"] == 0, final
    history = condor("condor_history", daemon.record("attrs")["external_id"], "-limit", "1", "-af", "AcctGroup",
                     "AccountingGroup", "JobUniverse", "Wanted")
    group, accounting_group, universe, wanted = history.stdout.split()
    assert group == "galaxy" and accounting_group.startswith("galaxy.") and (universe, wanted) == ("5", "kept")
    logged = daemon.log_path.read_text()
    assert "+AccountingGroup" in logged and "universe local (pulsar_lite sets it)" in logged


def test_a_submit_the_schedd_refuses_fails_at_once_and_is_never_sent_again(condor_daemon, client_python_016):
    """The manager's own +Owner = "root": the schedd aborts the transaction ("Setting job owner to root is not
    permitted"). A clear refusal: failed with the schedd's reason, not looked up and submitted three times as an
    unknown outcome (minutes for a clear no; found by the adversarial review)."""
    daemon = condor_daemon(**{"submit_+Owner": '"root"'}).start()
    client = RealClient(client_python_016, daemon.url)
    began = time.monotonic()
    client.launch("refused", "true")
    final = client.wait("refused", timeout=60)
    assert final["status"] == "failed", final
    assert time.monotonic() - began < 20
    log = daemon.log()
    assert "the schedd refused it" in log and "may or may not have taken it" not in log, log[-2000:]


def test_cancel_while_idle_and_while_running(condor_daemon, client_python_016):
    daemon = condor_daemon().start()
    check_cancel_while_pending_and_while_running(daemon, RealClient(client_python_016, daemon.url), condor_queue,
                                                 submit_requirements="False")  # matches no machine


def test_condor_rm_behind_the_daemons_back_is_a_failure(condor_daemon, client_python_016):
    daemon = condor_daemon().start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("victim", "sleep 300")
    client.wait("victim", ("running",), timeout=60)
    assert condor("condor_rm", daemon.record("victim")["external_id"]).returncode == 0
    final = client.wait("victim")
    assert final["status"] == "failed" and "removed from HTCondor" in final["stderr"]


def test_a_held_job_is_failed_with_its_hold_reason_within_two_intervals(condor_daemon, client_python_016):
    daemon = condor_daemon().start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("held", "sleep 300")
    client.wait("held", ("running",), timeout=60)
    cluster = daemon.record("held")["external_id"]
    assert condor("condor_hold", "-reason", "operator says no", cluster).returncode == 0
    held_at = time.time()
    final = client.wait("held", interval=0.05)
    seen_after = time.time() - held_at
    assert final["status"] == "failed" and "held by HTCondor: operator says no" in final["stderr"]
    assert seen_after <= 2 * INTERVAL + 1.5, seen_after  # two intervals, plus the client's own round trips
    wait_until(lambda: cluster not in condor_queue(), what="the held job removed")


def test_held_job_grace_lets_an_operator_release_it(condor_daemon, client_python_016):
    daemon = condor_daemon(held_job_grace=60).start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("later", "sleep 3; echo done > ../outputs/done")
    client.wait("later", ("running",), timeout=60)
    cluster = daemon.record("later")["external_id"]
    assert condor("condor_hold", cluster).returncode == 0
    time.sleep(4 * INTERVAL)
    assert client.status("later")["status"] not in ("failed", "complete")
    assert condor("condor_release", cluster).returncode == 0
    final = client.wait("later", timeout=90)
    assert final["status"] == "complete" and final["returncode"] == 0


def test_kill9_with_jobs_idle_running_and_ending_meanwhile(condor_daemon, client_python_016):
    daemon = condor_daemon().start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("running", "sleep 8; echo x >> ../outputs/runs")
    client.launch("ends", "echo x >> ../outputs/runs; sleep 2; exit 4")
    client.launch("idle", "true", submit_requirements="False")
    for job in ("running", "ends"):
        client.wait(job, ("running",), timeout=60)
    idle_id = external_id(daemon, "idle")
    daemon.kill9()
    time.sleep(4)  # "ends" ends while nobody watches, and leaves the queue
    daemon.start()
    assert client.wait("running", timeout=60)["returncode"] == 0
    assert client.wait("ends")["returncode"] == 4
    for job in ("running", "ends"):
        assert (daemon.staging / job / "outputs" / "runs").read_text() == "x\n"  # once, not resubmitted
    client.kill("idle")
    assert client.wait("idle")["status"] == "cancelled"
    wait_until(lambda: idle_id not in condor_queue(), what="idle gone from the queue")
    assert "re-attached to HTCondor job" in daemon.log()


def test_one_job_over_amqp_through_condor(condor_daemon, client_python_016):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    prefix = unique("condor")
    daemon = condor_daemon()
    daemon.app.update({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix, "web": False})
    (daemon.root / "app.yml").write_text(json.dumps(daemon.app))
    check_over_amqp(daemon, client_python_016, prefix, "HTCondor")


def test_a_wedged_schedd_holds_neither_submissions_nor_shutdown(condor_daemon, client_python_016):
    """The schedd stopped (SIGSTOP): the submit call is given up after scheduler_call_timeout and the job found
    once it answers (runs once); the daemon stops at once while it is wedged. Before, the bindings held the
    interpreter lock for HTCondor's 20 s a call (every thread of the daemon stopped), and the call had no limit
    of its own."""
    daemon = condor_daemon(scheduler_call_timeout=3).start()
    waiting = check_a_wedged_scheduler(daemon, RealClient(client_python_016, daemon.url), "condor_schedd",
                                       submit_requirements="False")
    condor("condor_rm", waiting)


def test_a_return_code_that_shows_5_s_after_htcondor_says_the_job_ended_is_complete(condor_daemon,
                                                                                     client_python_016):
    daemon = condor_daemon().start()

    def ended(cluster: str) -> bool:  # the job has left the schedd's queue (completed)
        return condor("condor_q", cluster, "-af", "JobStatus").stdout.strip() in ("", "4")

    check_a_return_code_that_shows_after_the_scheduler_says_ended(daemon, RealClient(client_python_016, daemon.url),
                                                                   ended)
