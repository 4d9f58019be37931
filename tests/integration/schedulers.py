"""Shared by the cluster-manager integration tests: the real client driving one job, scheduler presence."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import run_check_api, wait_until

DRIVER = Path(__file__).parent / "drivers" / "rest_job.py"
FINAL = ("complete", "failed", "cancelled", "lost")


class RealClient:
    """pulsar-galaxy-lib (in its own virtualenv) driving jobs of one daemon over REST."""

    def __init__(self, python: Path, url: str, **destination):
        self.python = python
        self.url = url
        self.destination = destination

    def _run(self, job_id: str, action: str, timeout: float = 120, **extra) -> dict | None:
        request = {"url": self.url, "job_id": job_id, "action": action, "destination": self.destination,
                   "timeout": timeout, **extra}
        done = subprocess.run([str(self.python), str(DRIVER), json.dumps(request)], capture_output=True, text=True,
                              timeout=timeout + 30)
        assert done.returncode == 0, f"client {action} of {job_id} failed:\n{done.stderr[-3000:]}"
        out = done.stdout.strip().splitlines()
        return json.loads(out[-1]) if out and out[-1].startswith("{") else None

    def launch(self, job_id: str, command_line: str, **destination) -> None:
        saved = self.destination
        self.destination = {**saved, **destination}
        try:
            self._run(job_id, "launch", command_line=command_line)
        finally:
            self.destination = saved

    def wait(self, job_id: str, states=FINAL, timeout: float = 60, interval: float = 0.2) -> dict:
        status = self._run(job_id, "wait", states=list(states), timeout=timeout, interval=interval)
        assert status["status"] in states, f"job {job_id} is {status['status']} after {timeout}s, wanted {states}"
        return status

    def status(self, job_id: str) -> dict:
        return self._run(job_id, "status")

    def kill(self, job_id: str) -> None:
        self._run(job_id, "kill")


def slurm_ready() -> bool:
    if not shutil.which("sbatch"):
        return False
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(s in state for s in ("idle", "mixed", "allocated"))


def squeue_ids(*extra: str) -> set[str]:
    """Ids squeue lists by default (pending and running jobs: what 'gone from squeue' is about)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i", *extra], capture_output=True, text=True, timeout=30).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def check_through_scheduler(daemon, client_python: Path, scheduler: str) -> None:
    """pulsar-galaxy-lib's full check (transfer staging, env, rewrite, unicode, a requirement) through
    ``daemon``, configured for a cluster manager and not yet started; its jobs went to ``scheduler``."""
    deps = daemon.root / "dependencies" / "dep1" / "1.1"  # what the check's requirement test resolves
    deps.mkdir(parents=True)
    (deps / "env.sh").write_text("MOO=moo_override; export MOO\n")
    daemon.start()
    result = run_check_api(client_python, url=daemon.url, default_file_action="transfer", test_env=True,
                           test_rewrite_action=True, test_unicode=True, test_requirement=True)
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n--- server log\n{daemon.log()[-4000:]}"
    assert f"submitted to {scheduler} as" in daemon.log()


def external_id(daemon, job_id: str, timeout: float = 30) -> str:
    """The scheduler's id of ``job_id``, once the daemon has submitted it."""
    return wait_until(lambda: (daemon.record(job_id) or {}).get("external_id", "").isdigit()
                      and daemon.record(job_id)["external_id"], timeout=timeout, what=f"{job_id} submitted")


def check_cancel_while_pending_and_while_running(daemon, client: RealClient, queue, **pending) -> None:
    """Cancel a job the scheduler keeps pending (``pending``: the destination params that keep it there) and
    one running: both end cancelled and leave ``queue()`` (the ids the scheduler lists); the pending one never
    ran."""
    client.launch("held", "echo never > ../outputs/ran", **pending)
    client.launch("busy", "sleep 300")
    client.wait("busy", ("running",), timeout=60)
    held_id, busy_id = external_id(daemon, "held"), external_id(daemon, "busy")
    assert {held_id, busy_id} <= queue()
    client.kill("held")
    client.kill("busy")
    assert client.wait("held")["status"] == "cancelled"
    assert client.wait("busy")["status"] == "cancelled"
    wait_until(lambda: not {held_id, busy_id} & queue(), what="both gone from the scheduler's queue")
    assert not (daemon.staging / "held" / "outputs" / "ran").exists()


def check_over_amqp(daemon, client_python: Path, prefix: str, scheduler: str) -> None:
    """pulsar-galaxy-lib's check (remote_copy staging) through ``daemon``, already configured for AMQP with
    ``prefix`` and not yet started; the queues are deleted afterwards."""
    from tests.amqp import CHECK_DRIVER, RABBIT_URL, delete_queues, prefixed_names, unique, wait_for_queues
    from tests.conftest import CHECK_RUN_DEFAULTS
    try:
        daemon.start_mq_only()
        wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
        options = dict(CHECK_RUN_DEFAULTS, job_id=unique(f"amqp{prefix}"), manager_url=RABBIT_URL,
                       jobs_directory=str(daemon.staging), default_file_action="remote_copy")
        result = subprocess.run([str(client_python), "-c", CHECK_DRIVER, json.dumps(options),
                                 json.dumps({"amqp_key_prefix": prefix})], capture_output=True, text=True, timeout=180)
        assert result.returncode == 0 and "CHECK OK" in result.stdout, (
            f"{result.stderr[-4000:]}\n--- server log\n{daemon.log()[-4000:]}")
        assert f"submitted to {scheduler} as" in daemon.log()
    finally:
        delete_queues(prefixed_names(prefix))


def check_a_wedged_scheduler(daemon, client: RealClient, process: str, **pending) -> str:
    """The scheduler's daemon ``process`` (condor_schedd, sge_qmaster) is stopped with SIGSTOP: it accepts
    connections and never answers, as a wedged one does. ``daemon`` runs with scheduler_call_timeout 3 s: the
    submit call is given up, REST still answers, and the job is found by its name once the scheduler answers
    again: it runs once. Then, with a job kept waiting (``pending``: the destination params that keep it so)
    and the scheduler stopped again, the daemon stops at once. Returns the waiting job's scheduler id."""
    import os
    import signal
    import time

    from tests.conftest import need

    pids = subprocess.run(["pgrep", "-x", process], capture_output=True, text=True).stdout.split()
    need(bool(pids), f"no {process} process to stop")
    pid = int(pids[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        client.launch("during", "echo x >> ../outputs/runs")
        wait_until(lambda: "did not return within 3 s" in daemon.log(), timeout=30, what="the submit given up")
        assert client.status("during")["status"] == "queued"  # REST still answers, from the store
    finally:
        os.kill(pid, signal.SIGCONT)
    final = client.wait("during", timeout=180)
    assert final["status"] == "complete", (final, daemon.log()[-3000:])
    assert (daemon.staging / "during" / "outputs" / "runs").read_text() == "x\n"
    client.launch("pending", "sleep 300", **pending)
    waiting = external_id(daemon, "pending")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(2)  # the status loop is inside a call the scheduler never answers
        began = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait(20)
        assert time.monotonic() - began < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    return waiting


def check_a_return_code_that_shows_after_the_scheduler_says_ended(daemon, client: RealClient, ended) -> None:
    """NFS lag, made on this host: a watcher outside the job moves the job's return_code aside the moment the
    job writes it, waits until the scheduler says the job has ended (``ended(external_id)``), and puts the file
    back 5 s later. The job ends complete with the file's exit code, not failed ("left no exit code"). (A
    script that exits 0: a scheduler's non-zero exit code is the script's own and is used at once.)"""
    import os
    import threading
    import time

    job_dir = daemon.staging / "lagging"
    aside = daemon.root / "return_code.aside"
    marks: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        return_code = job_dir / "return_code"
        while not stop.is_set():
            try:
                os.rename(return_code, aside)
                marks["hidden"] = time.time()
                break
            except FileNotFoundError:
                time.sleep(0.002)
        else:
            return
        job = daemon.record("lagging")["external_id"]
        while not stop.is_set() and not ended(job):
            time.sleep(0.1)
        marks["ended"] = time.time()
        stop.wait(5)
        os.rename(aside, return_code)
        marks["shown"] = time.time()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        client.launch("lagging", "sleep 1")
        final = client.wait("lagging", timeout=120)
    finally:
        stop.set()
        watcher.join(10)
    assert "hidden" in marks, "the return_code was never hidden: the test proves nothing"
    assert final["status"] == "complete" and final["returncode"] == 0, (final, daemon.log()[-3000:])
    log = daemon.log()
    assert "its return_code file is not visible yet" in log, log[-3000:]
    assert "exit code 0 is used" not in log  # the file decided, within return_code_grace (30 s)
    assert marks["shown"] - marks["ended"] >= 5
