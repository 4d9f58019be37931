"""The scheduler base while the job store cannot be written (a real SQLite lock held by another connection
past ``store_busy_timeout``): a submission whose intent cannot be recorded is not sent (and is sent once the
store is back), a scheduler id that cannot be recorded is followed meanwhile and recorded after; nothing is
submitted twice, nothing stays stuck."""
from __future__ import annotations

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.contract import Observed
from tests.conftest import wait_until
from tests.engine.test_store_outage import WriteLock
from tests.managers.test_scheduler import memory_engine

M = wire.DEFAULT_MANAGER


@pytest.fixture
def engine(engine_factory, monkeypatch):
    made = memory_engine(engine_factory, monkeypatch, app={"store_busy_timeout": 0.2})
    made.deferred.interval = 0.1
    return made


def wait(predicate, timeout=10.0):
    return wait_until(predicate, timeout=timeout, interval=0.02)


def finish(engine, job_id, external_id):
    with open(engine.job_directory(M, job_id).sub("return_code"), "w") as handle:
        handle.write("0\n")
    engine.managers[M].set(external_id, Observed(Observed.ENDED, 0, None, "CD"))


def test_a_submission_whose_intent_cannot_be_recorded_waits_and_is_sent_once(engine):
    """Before the fix the failed write escaped the submission thread (into a future nobody read) and the
    job stayed queued without an external id for good."""
    scheduler = engine.managers[M]
    engine.setup(M, "later")
    original_claim = engine.claim

    def claim_then_lock(manager, job_id):  # the store fails right after the worker took the job
        generation = original_claim(manager, job_id)
        holder.append(WriteLock(engine.store.path))
        return generation

    holder: list[WriteLock] = []
    engine.claim = claim_then_lock
    engine.submit(M, "later", {"command_line": "true"})
    wait(lambda: len(engine.deferred) >= 1)
    assert "submit" not in scheduler.calls
    assert engine.store.get(M, "later").external_id is None
    engine.claim = original_claim
    holder[0].release()
    external_id = wait(lambda: (engine.store.get(M, "later").external_id or "").isdigit()
                       and engine.store.get(M, "later").external_id)
    finish(engine, "later", external_id)
    wait(lambda: engine.store.get(M, "later").state == wire.State.COMPLETE)
    assert scheduler.calls.count("submit") == 1


def test_a_scheduler_id_that_cannot_be_recorded_is_followed_and_recorded_after(engine):
    scheduler = engine.managers[M]
    engine.setup(M, "taken")
    real_submit = scheduler.submit_job
    locks: list[WriteLock] = []

    def submit_then_lock(submission):  # the scheduler takes the job; the store fails before its id is kept
        external_id = real_submit(submission)
        locks.append(WriteLock(engine.store.path))
        return external_id

    scheduler.submit_job = submit_then_lock
    engine.submit(M, "taken", {"command_line": "true"})
    wait(lambda: len(engine.deferred) >= 1)
    assert scheduler.tracked_ids() == ["101"]  # followed meanwhile
    scheduler.set("101", Observed(Observed.RUNNING, state="R"))
    locks[0].release()
    wait(lambda: engine.store.get(M, "taken").external_id == "101")
    wait(lambda: engine.store.get(M, "taken").state == wire.State.RUNNING)
    finish(engine, "taken", "101")
    wait(lambda: engine.store.get(M, "taken").state == wire.State.COMPLETE)
    assert scheduler.calls.count("submit") == 1
