"""Adversarial review of issue 26's changes: reproductions against the in-memory scheduler."""
from __future__ import annotations

import time

import pytest

from pulsar_lite import wire
from pulsar_lite.managers import scheduler as scheduler_module
from pulsar_lite.managers.contract import Observed
from tests.managers.test_scheduler import final, memory_engine, submit, wait_for

M = wire.DEFAULT_MANAGER
ERROR = Observed.held("in error state (Eqw) in Memory", "Eqw", wait=False)


@pytest.fixture
def engine(engine_factory, monkeypatch):
    monkeypatch.setattr(scheduler_module, "DELETE_RETRY", 0.2)
    return memory_engine(engine_factory, monkeypatch, held_job_grace=1.0, return_code_grace=0.5,
                         scheduler_failure_timeout=0.5)


def test_a_given_up_job_is_still_deleted_after_its_job_id_is_set_up_again(engine):
    """A job given up (error state) whose delete has not taken yet; the client sets the same job id up again
    (Galaxy's resubmission) and submits it. The old cluster job must still be deleted until the scheduler
    lets it go: released later, it would run into the new run's directory."""
    scheduler = engine.managers[M]
    scheduler.stubborn = True  # the delete is accepted, the job stays listed for a while
    old = submit(engine, "again")
    scheduler.set(old, ERROR)
    assert final(engine, "again").state == wire.State.FAILED
    wait_for(lambda: f"delete {old}" in scheduler.calls)
    new = submit(engine, "again")  # set up afresh and submitted: the same directory
    assert new != old
    deletes = scheduler.calls.count(f"delete {old}")
    time.sleep(1.0)  # DELETE_RETRY is 0.2 s: several more deletes of the old job are due
    assert scheduler.calls.count(f"delete {old}") > deletes, "the old run's cluster job is no longer deleted"
    assert scheduler.pending_deletes() >= 1
    scheduler.stubborn = False
    wait_for(lambda: scheduler.jobs[old].phase == Observed.ENDED)

