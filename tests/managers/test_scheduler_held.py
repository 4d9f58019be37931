"""Jobs that would otherwise stay stuck for ever: held in the scheduler, in a state nothing releases, runaway
(the queue forgot them, the accounting did not), or ended here while the scheduler still keeps them. Each
ends with the reason, and what the daemon ends is deleted at the scheduler until it lets the job go. Before
the change a held Slurm, PBS or Grid Engine job stayed ``queued`` for ever, a runaway job ``running`` for
ever, and an error-state or unknown-state job was failed but left in the queue (released later, it ran into
a directory that may be another run's). The same on the real schedulers: tests/integration/test_slurm_bad_day.py,
test_drmaa.py and test_condor.py."""
from __future__ import annotations

import time

import pytest

from pulsar_lite import wire
from pulsar_lite.managers import following as following_module
from pulsar_lite.managers.contract import Observed
from tests.managers.test_scheduler import final, memory_engine, submit, wait_for, write_return_code

M = wire.DEFAULT_MANAGER
HELD = Observed.held("held in Memory (JobHeldAdmin)", "PD")


def quick_engine(engine_factory, monkeypatch):
    """The in-memory scheduler with short graces and deletes asked again every 0.2 s."""
    monkeypatch.setattr(following_module, "DELETE_RETRY", 0.2)
    return memory_engine(engine_factory, monkeypatch, held_job_grace=1.0, return_code_grace=0.5,
                         scheduler_failure_timeout=0.5)


@pytest.fixture
def engine(engine_factory, monkeypatch):
    return quick_engine(engine_factory, monkeypatch)


def test_a_job_held_past_the_grace_is_failed_with_the_reason_and_deleted(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "held")
    scheduler.set(external_id, HELD)
    wait_for(lambda: scheduler.held_jobs() == 1)
    time.sleep(0.5)
    assert engine.store.get(M, "held").state == wire.State.QUEUED  # an operator may still release it
    record = final(engine, "held")
    assert record.state == wire.State.FAILED
    assert f"Memory job {external_id} held by Memory for 1 s, not released: held in Memory (JobHeldAdmin)" \
        == record.message
    wait_for(lambda: f"delete {external_id}" in scheduler.calls)
    wait_for(lambda: not scheduler.may_write("held"))  # the scheduler let it go: followed no more
    assert scheduler.pending_deletes() == 0 and scheduler.held_jobs() == 0


def test_a_job_released_within_the_grace_runs_on(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "released")
    scheduler.set(external_id, HELD)
    wait_for(lambda: scheduler.held_jobs() == 1)
    scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "released").state == wire.State.RUNNING)
    time.sleep(1.2)  # past the grace: it no longer counts
    scheduler.set(external_id, HELD)  # held again: waited out afresh
    time.sleep(0.5)
    assert engine.store.get(M, "released").state == wire.State.RUNNING
    scheduler.set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    write_return_code(engine, "released", 0)
    assert final(engine, "released").state == wire.State.COMPLETE
    assert not [c for c in scheduler.calls if c.startswith("delete")]


def test_a_state_nothing_releases_is_given_up_at_once_and_deleted_until_it_is_gone(engine):
    scheduler = engine.managers[M]
    scheduler.stubborn = True  # Grid Engine takes its time: the job stays listed after the first qdel
    external_id = submit(engine, "error")
    scheduler.set(external_id, Observed.held("in error state (Eqw) in Grid Engine", "Eqw", wait=False))
    record = final(engine, "error")
    assert record.state == wire.State.FAILED and "in error state (Eqw)" in record.message
    wait_for(lambda: scheduler.calls.count(f"delete {external_id}") >= 3)  # asked again while listed
    assert scheduler.may_write("error") and scheduler.pending_deletes() == 1
    scheduler.stubborn = False
    wait_for(lambda: not scheduler.may_write("error"))
    assert scheduler.pending_deletes() == 0


def test_a_held_job_cancelled_ends_cancelled(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "held-cancel")
    scheduler.set(external_id, HELD)
    wait_for(lambda: scheduler.held_jobs() == 1)
    engine.cancel(M, "held-cancel")
    assert final(engine, "held-cancel").state == wire.State.CANCELLED
    assert f"delete {external_id}" in scheduler.calls


@pytest.mark.parametrize("code", [None, 3])
def test_a_runaway_job_ends_by_its_return_code_or_fails(engine, code):
    """squeue forgot the job; sacct still says RUNNING (its controller lost it). Nothing will end it there."""
    scheduler = engine.managers[M]
    external_id = submit(engine, "runaway")
    scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "runaway").state == wire.State.RUNNING)
    scheduler.finished[external_id] = Observed(Observed.RUNNING, state="RUNNING")
    if code is not None:
        write_return_code(engine, "runaway", code)
    scheduler.set(external_id, None)
    record = final(engine, "runaway")
    if code is None:
        assert record.state == wire.State.FAILED
        assert "no longer lists job" in record.message and "RUNNING (a runaway job)" in record.message
    else:
        assert record.state == wire.State.COMPLETE and record.returncode == 3


def test_a_scheduler_down_past_the_timeout_ends_a_job_with_a_return_code_by_that_code(engine):
    scheduler = engine.managers[M]
    done, lost = submit(engine, "done"), submit(engine, "lost")
    for external_id in (done, lost):
        scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "lost").state == wire.State.RUNNING)
    write_return_code(engine, "done", 0)
    scheduler.failing = "slurm_load_jobs error: Unable to contact slurm controller"
    assert final(engine, "done").state == wire.State.COMPLETE and final(engine, "done").returncode == 0
    record = final(engine, "lost")
    assert record.state == wire.State.FAILED and "Unable to contact" in record.message
    scheduler.failing = None
    wait_for(lambda: not scheduler.may_write("lost") and not scheduler.may_write("done"))


DOWN = "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"


def test_a_submit_that_cannot_reach_the_scheduler_waits_and_is_sent_once_it_can(engine):
    """Nothing was sent: not a refusal. Before, the job failed at once ("Slurm refused the job")."""
    scheduler = engine.managers[M]
    scheduler.down = DOWN
    engine.setup(M, "waits")
    engine.submit(M, "waits", {"command_line": "true"})
    wait_for(lambda: scheduler.calls.count("submit") >= 2)  # tried again
    record = engine.store.get(M, "waits")
    assert record.state == wire.State.QUEUED and not record.terminal
    assert "Unable to contact slurm controller" in scheduler.unreachable()
    scheduler.down = None
    external_id = wait_for(lambda: (engine.store.get(M, "waits").external_id or "").isdigit()
                           and engine.store.get(M, "waits").external_id)
    assert list(scheduler.jobs) == [external_id]  # one job in the scheduler
    assert scheduler.unreachable() is None
    scheduler.set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    write_return_code(engine, "waits", 0)
    assert final(engine, "waits").state == wire.State.COMPLETE


def test_a_job_waiting_for_its_scheduler_can_be_cancelled_and_is_never_sent(engine):
    scheduler = engine.managers[M]
    scheduler.down = DOWN
    engine.setup(M, "unwanted")
    engine.submit(M, "unwanted", {"command_line": "true"})
    wait_for(lambda: scheduler.calls.count("submit") >= 1)
    engine.cancel(M, "unwanted")
    scheduler.down = None
    assert final(engine, "unwanted").state == wire.State.CANCELLED
    time.sleep(0.5)
    assert not scheduler.jobs


def test_a_scheduler_out_of_reach_past_the_failure_timeout_fails_the_job_with_the_reason(engine):
    scheduler = engine.managers[M]
    scheduler.down = DOWN
    engine.setup(M, "given-up")
    engine.submit(M, "given-up", {"command_line": "true"})
    record = final(engine, "given-up")
    assert record.state == wire.State.FAILED
    assert "could not be reached for" in record.message and "Unable to contact" in record.message
    assert not scheduler.jobs
