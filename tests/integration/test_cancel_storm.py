"""A cancel storm while workers start jobs: no cancel is lost, no process is left behind, every job's recorded
history is a legal path of the lifecycle (REST: PUT /jobs/{id}/cancel; AMQP: kill messages from the real
client's exchange)."""
from __future__ import annotations

import json
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pulsar_lite import wire
from tests.amqp import RABBIT_URL, delete_queues, ensure_client_kombu, prefixed_names, rabbit_available, unique, \
    wait_for_queues
from tests.conftest import need

from .rest_helpers import rest
from .storm import finished_after_cancel, illegal_paths, store_rows, wait_no_job_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORM_APP = {"managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 4}},
             "kill_grace_period": 1.0, "store_synchronous": "normal"}


def command(index: int) -> str:
    # most jobs would run long: a lost cancel leaves one running; every fifth ends on its own quickly
    return "sleep 0.05" if index % 5 == 0 else "sleep 20"


def test_rest_cancel_storm_loses_no_cancel(daemon_factory):
    daemon = daemon_factory(STORM_APP).start()
    jobs = [f"storm{index:04d}" for index in range(2000)]

    def submit(index_job):
        index, job_id = index_job
        assert rest(daemon.url, "POST", "/jobs", job_id=job_id)[0] == 200
        code, body = rest(daemon.url, "POST", f"/jobs/{job_id}/submit", command_line=command(index))
        assert code == 200, body

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, enumerate(jobs)))

    cancel_answered: dict[str, float] = {}
    cleaned: set[str] = set()
    order = list(jobs)  # the workers start jobs in submission order; the storm follows them
    to_clean = set(random.Random(7).sample(jobs, 20))

    def storm(job_id):
        code, body = rest(daemon.url, "PUT", f"/jobs/{job_id}/cancel")
        assert code == 200, body
        cancel_answered[job_id] = time.time()
        code, body = rest(daemon.url, "GET", f"/jobs/{job_id}/status")
        assert code == 200, body
        assert json.loads(body)["status"] in ("cancelled", "running", "complete", "postprocessing")
        if job_id in to_clean:
            assert rest(daemon.url, "DELETE", f"/jobs/{job_id}")[0] == 200
            cleaned.add(job_id)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(storm, order))

    left = wait_no_job_processes(daemon.staging)
    assert not left, f"job processes left after the storm: {list(left.values())[:5]}"
    deadline = time.time() + 20
    while True:
        states, history = store_rows(Path(daemon.app["persistence_directory"]))
        active = {j: s for j, (s, _) in states.items() if s not in wire.TERMINAL_STATES}
        if not active or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not active, f"jobs not ended after the storm: {dict(list(active.items())[:10])}"
    assert set(states) == set(jobs) - cleaned  # cleaned jobs are gone, no other job is
    ends = {state for state, _ in states.values()}
    assert ends <= {wire.State.CANCELLED, wire.State.COMPLETE}, ends
    long_jobs_completed = [j for j, (s, _) in states.items() if s == wire.State.COMPLETE
                           and command(jobs.index(j)) != "sleep 0.05"]
    assert not long_jobs_completed, long_jobs_completed
    assert not illegal_paths(history)
    assert not finished_after_cancel(history, {j: t for j, t in cancel_answered.items() if j not in cleaned},
                                     wire.State.COMPLETE)
    assert sum(1 for s, _ in states.values() if s == wire.State.CANCELLED) > 1000
    assert "Traceback" not in daemon.log()
    assert "was lost" not in daemon.log()


#: Publishes setup messages for every job through the real client's exchange, then a kill for each, and
#: collects the status updates it receives.
KILL_DRIVER = r'''
import json, sys, threading, time
from pulsar.client.manager import build_client_manager

config = json.loads(sys.argv[1])
manager = build_client_manager(amqp_url=config["url"], amqp_key_prefix=config["prefix"])
updates = {}
lock = threading.Lock()

def on_update(body):
    with lock:
        updates.setdefault(body["job_id"], []).append(body["status"])

manager.ensure_has_status_update_callback(on_update)
time.sleep(0.5)
for job_id, command in config["jobs"]:
    manager.exchange.publish("setup", {"command_line": command, "job_id": job_id,
                                       "setup_params": {"job_id": job_id, "tool_id": "storm", "tool_version": "1"}})
time.sleep(config["delay"])
killed_at = {}
for job_id, _ in config["jobs"]:
    manager.exchange.publish("kill", {"job_id": job_id})
    killed_at[job_id] = time.time()
deadline = time.time() + config["timeout"]
while time.time() < deadline:
    with lock:
        if all(any(s in ("complete", "failed", "cancelled", "lost") for s in updates.get(j, [])) for j, _ in config["jobs"]):
            break
    time.sleep(0.2)
time.sleep(1.0)
manager.shutdown()
print(json.dumps({"updates": updates, "killed_at": killed_at}), flush=True)
'''


def test_amqp_kill_storm_loses_no_cancel(daemon_factory, client_python_016):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    prefix = unique("storm")
    try:
        daemon = daemon_factory({**STORM_APP, "message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix}).start()
        wait_for_queues([f"{prefix}_setup", f"{prefix}_kill", f"{prefix}_status_update"])
        jobs = [(f"k{index:03d}", command(index)) for index in range(300)]
        config = {"url": RABBIT_URL, "prefix": prefix, "jobs": jobs, "delay": 0.3, "timeout": 60}
        result = subprocess.run([str(client_python_016), "-c", KILL_DRIVER, json.dumps(config)],
                                capture_output=True, text=True, timeout=150)
        assert result.returncode == 0, result.stderr[-4000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        left = wait_no_job_processes(daemon.staging)
        assert not left, f"job processes left after the storm: {list(left.values())[:5]}"
        states, history = store_rows(Path(daemon.app["persistence_directory"]))
        assert set(states) == {job_id for job_id, _ in jobs}
        assert {state for state, _ in states.values()} <= {wire.State.CANCELLED, wire.State.COMPLETE}
        assert not illegal_paths(history)
        # a kill is handled some time after its publish, so a short job may have ended first; a long one
        # can only end through its kill
        long_jobs_completed = [j for j, c in jobs if c != "sleep 0.05" and states[j][0] != wire.State.CANCELLED]
        assert not long_jobs_completed, long_jobs_completed
        for job_id, _ in jobs:
            updates = report["updates"].get(job_id, [])
            final = states[job_id][0]
            if final == wire.State.COMPLETE:
                assert updates[-1] == "complete", (job_id, updates)
            # a cancelled job publishes nothing after it was cancelled (Pulsar publishes no 'cancelled')
            assert updates.count("complete") + updates.count("failed") <= 1, (job_id, updates)
        assert "was lost" not in daemon.log() and "Traceback" not in daemon.log()
    finally:
        delete_queues(prefixed_names(prefix))
