"""The scheduler base across restarts, with users' cancels forced into the middle of recovery and of a
submission (events, not sleeps that hope). The scheduler stands in for a real one and, like a real one,
outlives the daemon. Each test fails on the code before the fix."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from pulsar_lite.managers.contract import Observed
from pulsar_lite.managers.submitting import SUBMITTING
from tests.conftest import wait_until
from tests.managers.test_scheduler import MemoryScheduler, register

M = wire.DEFAULT_MANAGER


class World:
    """What the scheduler holds, whichever daemon asks."""

    def __init__(self):
        self.jobs: dict[str, Observed] = {}
        self.names: dict[str, tuple[str, float]] = {}  # external id -> (job name, submit time)
        self.calls: list[str] = []
        self.next_id = 500
        self.guard = threading.Lock()
        self.submit_entered = threading.Event()
        self.submit_gate: threading.Event | None = None  # a submit waits for it (its reply is late)
        self.accept_before_gate = True  # the scheduler takes the job before the reply is held back
        self.find_entered = threading.Event()
        self.find_gate: threading.Event | None = None


class SharedScheduler(MemoryScheduler):
    world: World = None  # set by the fixture

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.jobs, self.calls, self.guard = self.world.jobs, self.world.calls, self.world.guard

    def _take(self, world, name):
        with world.guard:
            world.next_id += 1
            external_id = str(world.next_id)
            world.jobs[external_id] = Observed(Observed.QUEUED, state="PD")
            world.names[external_id] = (name, time.time())
            world.calls.append("submit")
            return external_id

    def submit_job(self, submission):
        world = self.world
        gate = world.submit_gate
        if gate is None:
            return self._take(world, submission.name)
        external_id = self._take(world, submission.name) if world.accept_before_gate else None
        world.submit_entered.set()
        gate.wait(30)
        return external_id or self._take(world, submission.name)

    def find_submitted(self, name, since):
        world = self.world
        world.find_entered.set()
        if world.find_gate is not None:
            world.find_gate.wait(30)
        with self.guard:
            self.calls.append(f"find {name}")
            return sorted(i for i, (n, t) in world.names.items() if n == name and t >= since)


@pytest.fixture
def world(monkeypatch):
    register(monkeypatch, "shared", "tests.managers.test_scheduler_restart:SharedScheduler")
    created = World()
    monkeypatch.setattr(SharedScheduler, "world", created)
    return created


@pytest.fixture
def daemon(tmp_path):
    engines = []
    cfg = build_config({"staging_directory": str(tmp_path / "staging"), "persistence_directory": str(tmp_path / "p"),
                        "store_synchronous": "normal",
                        "managers": {M: {"type": "shared", "min_polling_interval": 0.05, "submit_concurrency": 1}}})

    def start(pause_recovery_of: str | None = None, release: threading.Event | None = None):
        engine = JobEngine(cfg)
        if pause_recovery_of:
            real = engine.recover_job

            def paused(record):  # the batch has read the record; its recovery waits for the test
                if record.job_id == pause_recovery_of:
                    release.wait(30)
                real(record)

            engine.recover_job = paused
        engine.start()
        engines.append(engine)
        return engine

    start.config = cfg
    yield start
    for engine in engines:
        if not engine.stopped:
            engine.stop()


def wait(predicate, timeout=10.0):
    return wait_until(predicate, timeout=timeout, interval=0.02)


def submitted(engine, job_id):
    engine.setup(M, job_id)
    engine.submit(M, job_id, {"command_line": "true"})
    return wait(lambda: (engine.store.get(M, job_id).external_id or "").isdigit()
                and engine.store.get(M, job_id).external_id)


def test_a_cancel_during_recovery_deletes_the_job_at_the_scheduler(world, daemon):
    """Recovery has read the job (queued at the scheduler) in its batch; a user cancels it; its delete waits
    in the pool behind another job's lookup; then recovery re-attaches the job. Before the fix recovery
    replaced the cancel's entry with its stale copy, the delete found the job 'not followed' and skipped it,
    and the cluster job ran to its end."""
    first = daemon()
    submitted(first, "other")
    victim_id = submitted(first, "victim")
    first.stop()
    db = sqlite3.connect(daemon.config.store_path)  # 'other' was being submitted when the daemon died
    with db:
        db.execute("UPDATE jobs SET external_id=? WHERE job_id='other'", (f"{SUBMITTING}pulsar_other",))
    db.close()

    world.find_gate = threading.Event()  # the lookup for 'other' holds the only pool thread
    release = threading.Event()
    second = daemon(pause_recovery_of="victim", release=release)
    assert world.find_entered.wait(10)
    second.cancel(M, "victim")
    release.set()  # recovery goes on with its copy of the record, read before the cancel
    wait(lambda: second.recovered())
    world.find_gate.set()
    wait(lambda: f"delete {victim_id}" in world.calls)
    wait(lambda: second.store.get(M, "victim").state == wire.State.CANCELLED)


@pytest.mark.parametrize("accepted", [True, False], ids=["scheduler-took-it", "never-reached-it"])
def test_a_cancel_during_the_submission_then_a_restart(world, daemon, accepted):
    """The submit command is in flight (the scheduler may or may not have the job), the user cancels, the
    daemon dies. At the restart the job must end cancelled, deleted at the scheduler if it got there, and never
    be submitted again. Before the fix the search for the submission started at the record's last change (the
    cancel's, a second after the submission: not found), the job was put back in the queue with its cancel, and
    every worker refused it: queued for good, and the scheduler's copy ran orphaned."""
    world.submit_gate = threading.Event()  # the reply never comes (the daemon dies first)
    world.accept_before_gate = accepted
    first = daemon()
    first.setup(M, "x")
    first.submit(M, "x", {"command_line": "true"})
    assert world.submit_entered.wait(10)
    time.sleep(1.2)  # the cancel comes more than a second after the submission
    first.cancel(M, "x")
    assert first.store.get(M, "x").cancel_requested
    first.stop()

    world.submit_gate = None
    second = daemon()
    wait(lambda: second.store.get(M, "x").state == wire.State.CANCELLED)
    submits = [c for c in world.calls if c == "submit"]
    assert len(submits) == (1 if accepted else 0)
    if accepted:
        (external_id,) = world.names
        wait(lambda: f"delete {external_id}" in world.calls)


def test_two_copies_found_after_a_restart_run_once(world, daemon):
    """The daemon died mid-submission and the scheduler holds two copies (an earlier try's reply was lost):
    the oldest is adopted (it would start first), the other deleted (it used to be 'deleted' through a guard
    that skipped it)."""
    first = daemon()
    first.setup(M, "twin")
    generation = first.store.get(M, "twin").created
    first.stop()
    db = sqlite3.connect(daemon.config.store_path)
    with db:
        db.execute("UPDATE jobs SET state='queued', external_id=? WHERE job_id='twin'",
                   (f"{SUBMITTING}@{generation:.3f}:pulsar_twin",))
    db.close()
    with world.guard:
        for external_id in ("201", "202"):
            world.jobs[external_id] = Observed(Observed.QUEUED, state="PD")
            world.names[external_id] = ("pulsar_twin", time.time())
    second = daemon()
    wait(lambda: second.store.get(M, "twin").external_id == "201")
    wait(lambda: "delete 202" in world.calls)
    assert "delete 201" not in world.calls
