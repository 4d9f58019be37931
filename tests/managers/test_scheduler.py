"""The scheduler-manager base's decisions, against an in-memory scheduler standing in for one (the real
schedulers drive the same code in tests/integration/test_slurm.py, test_condor.py and test_drmaa.py)."""
from __future__ import annotations

import threading
import time

import pytest

from pulsar_lite import managers, wire
from pulsar_lite.managers import ManagerSpec
from pulsar_lite.managers.contract import Observed, SchedulerDown, SchedulerError
from pulsar_lite.managers.scheduler import SchedulerManager
from tests.conftest import wait_until

M = wire.DEFAULT_MANAGER


class MemoryScheduler(SchedulerManager):
    """A scheduler that keeps its jobs in a dict; tests set their state."""
    scheduler = "Memory"

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.jobs: dict[str, Observed] = {}
        self.finished: dict[str, Observed] = {}
        self.calls: list[str] = []
        self.refuse: str | None = None
        self.down: str | None = None  # the scheduler cannot be reached: a submit sends nothing
        self.failing: str | None = None
        self.broken: Exception | None = None  # a defect in a plugin: not a SchedulerError
        self.slow_delete = 0.0  # seconds a delete takes
        self.stubborn = False  # a delete is accepted but the job stays (Grid Engine takes its time)
        self.next_id = 100
        self.guard = threading.Lock()

    def set(self, external_id: str, seen: Observed | None) -> None:
        """What the scheduler says of a job from now on (None: it no longer lists it)."""
        with self.guard:
            if seen is None:
                self.jobs.pop(external_id, None)
            else:
                self.jobs[external_id] = seen

    def submit_job(self, submission):
        with self.guard:
            self.calls.append("submit")
            if self.down:
                raise SchedulerDown(self.down)
            if self.refuse:
                raise SchedulerError(self.refuse)
            self.next_id += 1
            self.jobs[str(self.next_id)] = Observed(Observed.QUEUED, state="PD")
            return str(self.next_id)

    def query(self, external_ids):
        with self.guard:
            self.calls.append("query")
            if self.failing:
                raise SchedulerError(self.failing)
            if self.broken:
                raise self.broken
            return {i: self.jobs[i] for i in external_ids if i in self.jobs}

    def history(self, external_ids):
        with self.guard:
            self.calls.append("history")
            return {i: self.finished[i] for i in external_ids if i in self.finished}

    def delete_job(self, external_id):
        time.sleep(self.slow_delete)
        with self.guard:
            self.calls.append(f"delete {external_id}")
            if external_id in self.jobs and not self.stubborn:
                self.jobs[external_id] = Observed(Observed.ENDED, -15, "cancelled (scancel)", "CA")


def register(monkeypatch, type_name: str, target: str) -> None:
    """Make a stand-in scheduler (``module:Class``) a manager type for this test."""
    monkeypatch.setitem(managers.REGISTRY, type_name, ManagerSpec(
        type=type_name, target=target, options={o.key: o for o in managers.SCHEDULER_OPTIONS}))


def memory_engine(engine_factory, monkeypatch, app=None, **options):
    """An engine whose one manager is the in-memory scheduler, polled every 0.05 s, with ``options``."""
    register(monkeypatch, "memory", "tests.managers.test_scheduler:MemoryScheduler")
    return engine_factory(**(app or {}), managers={M: {"type": "memory", "min_polling_interval": 0.05, **options}})


@pytest.fixture
def engine(engine_factory, monkeypatch):
    return memory_engine(engine_factory, monkeypatch, scheduler_failure_timeout=0.5, return_code_grace=0.3)


def submit(engine, job_id, command="true"):
    engine.setup(M, job_id)
    engine.submit(M, job_id, {"command_line": command})
    return wait_for(lambda: (engine.store.get(M, job_id).external_id or "").isdigit()
                    and engine.store.get(M, job_id).external_id)


def wait_for(predicate, timeout=5.0):
    return wait_until(predicate, timeout=timeout, interval=0.01)


def write_return_code(engine, job_id, code):
    with open(engine.job_directory(M, job_id).sub("return_code"), "w") as handle:
        handle.write(f"{code}\n")


def final(engine, job_id):
    return wait_for(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, job_id)))


def test_one_query_per_interval_for_all_jobs_and_none_for_status_requests(engine):
    scheduler = engine.managers[M]
    ids = [submit(engine, f"j{n}") for n in range(30)]
    time.sleep(0.3)
    before = scheduler.calls.count("query")
    for _ in range(200):
        for n in range(30):
            engine.status(M, f"j{n}")  # Galaxy's polls: answered from the store
    rounds = scheduler.calls.count("query") - before
    assert rounds < 20  # about 0.2 s of polling at 0.05 s, whatever the 6000 status requests
    assert len(set(ids)) == 30


def test_a_job_the_scheduler_forgot_without_an_exit_code_is_failed_not_complete(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "gone")
    scheduler.set(external_id, None)
    record = final(engine, "gone")
    assert record.state == wire.State.FAILED
    assert f"no longer knows job {external_id}" in record.message
    assert "history" in scheduler.calls


def test_a_job_that_left_with_its_return_code_file_ends_with_that_code(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "left")
    write_return_code(engine, "left", 7)
    scheduler.set(external_id, None)
    record = final(engine, "left")
    assert record.state == wire.State.COMPLETE and record.returncode == 7


def test_a_scheduler_side_end_is_a_failure_with_its_reason(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "timeout")
    scheduler.set(external_id, Observed(Observed.ENDED, -15, "time limit reached (TIMEOUT)", "TO"))
    record = final(engine, "timeout")
    assert record.state == wire.State.FAILED and "time limit reached (TIMEOUT)" in record.message


def test_the_exit_code_is_the_scripts_own(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "three")
    scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "three").state == wire.State.RUNNING)
    write_return_code(engine, "three", 3)
    scheduler.set(external_id, Observed(Observed.ENDED, 3, None, "F"))
    record = final(engine, "three")
    assert record.state == wire.State.COMPLETE and record.returncode == 3


def test_an_ended_job_without_an_exit_code_is_failed_after_the_grace(engine):
    """Neither a return_code file (within return_code_grace, here 0.3 s) nor an exit code from the scheduler:
    failed, saying so (how the grace itself goes: test_scheduler_outcomes.py)."""
    scheduler = engine.managers[M]
    external_id = submit(engine, "silent")
    began = time.monotonic()
    scheduler.set(external_id, Observed(Observed.ENDED, None, None, "CD"))
    record = final(engine, "silent")
    assert time.monotonic() - began >= 0.3
    assert record.state == wire.State.FAILED and "left no exit code" in record.message
    assert "waited 0.3 s for it" in record.message


def test_a_refused_submission_fails_the_job_with_the_schedulers_words(engine):
    engine.managers[M].refuse = "Requested node configuration is not available"
    engine.setup(M, "refused")
    engine.submit(M, "refused", {"command_line": "true"})
    record = final(engine, "refused")
    assert record.state == wire.State.FAILED
    assert record.message == "Memory refused the job: Requested node configuration is not available"


def test_cancel_of_a_job_in_the_scheduler_deletes_it_and_ends_cancelled(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "unwanted")
    engine.cancel(M, "unwanted")
    assert engine.store.get(M, "unwanted").cancel_requested
    record = final(engine, "unwanted")
    assert record.state == wire.State.CANCELLED
    assert f"delete {external_id}" in scheduler.calls


def test_deletes_do_not_pile_up_while_the_scheduler_takes_its_time(engine):
    """Cancelled jobs the scheduler keeps listing for a while, slow deletes, a pass every 0.05 s: one delete per
    job in flight at a time, and another only after DELETE_RETRY, not one per pass queued behind the others."""
    scheduler = engine.managers[M]
    ids = {f"j{n}": submit(engine, f"j{n}") for n in range(6)}
    scheduler.slow_delete, scheduler.stubborn = 0.2, True
    for job_id in ids:
        engine.cancel(M, job_id)
    wait_for(lambda: sum(c.startswith("delete") for c in scheduler.calls) >= len(ids))
    time.sleep(0.6)  # about a dozen passes
    deletes = [c for c in scheduler.calls if c.startswith("delete")]
    assert sorted(deletes) == sorted(f"delete {i}" for i in ids.values())
    for external_id in ids.values():
        scheduler.set(external_id, Observed(Observed.ENDED, -15, "cancelled (scancel)", "CA"))
    assert all(final(engine, job_id).state == wire.State.CANCELLED for job_id in ids)


def test_a_scheduler_that_cannot_answer_keeps_jobs_then_fails_them_with_the_reason(engine):
    scheduler = engine.managers[M]
    submit(engine, "waiting")
    scheduler.failing = "slurm_load_jobs error: Unable to contact slurm controller"
    time.sleep(0.2)
    assert engine.store.get(M, "waiting").state == wire.State.QUEUED  # not yet: it may be running fine
    record = final(engine, "waiting")
    assert record.state == wire.State.FAILED
    assert "could not be asked about job" in record.message and "Unable to contact" in record.message


def test_a_query_that_raises_something_unexpected_is_a_failing_scheduler_not_stuck_jobs(engine):
    scheduler = engine.managers[M]
    submit(engine, "waiting")
    scheduler.broken = KeyError("JB_job_number")
    record = final(engine, "waiting")
    assert record.state == wire.State.FAILED
    assert "could not be asked about job" in record.message and "KeyError" in record.message


def test_reconcile_follows_a_job_nobody_follows(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "stray")
    with scheduler._lock:
        scheduler._tracked.clear()  # lost by the loop, as a bug would lose it
    scheduler.reconcile()
    scheduler.set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    write_return_code(engine, "stray", 0)
    assert final(engine, "stray").state == wire.State.COMPLETE


def test_a_job_given_up_on_is_followed_and_deleted_until_the_scheduler_lets_it_go(engine):
    """After scheduler_failure_timeout the job is failed, but the cluster job may still run: its directory is
    not handed on (may_write) and it is deleted once the scheduler answers again (the review found it
    forgotten at once, its directory recycled while the cluster job wrote there)."""
    scheduler = engine.managers[M]
    external_id = submit(engine, "lost-touch")
    scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "lost-touch").state == wire.State.RUNNING)
    scheduler.failing = "slurmctld not responding"
    assert final(engine, "lost-touch").state == wire.State.FAILED
    assert scheduler.may_write("lost-touch")
    scheduler.failing = None
    wait_for(lambda: f"delete {external_id}" in scheduler.calls)
    wait_for(lambda: not scheduler.may_write("lost-touch"))


def test_an_id_recorded_by_the_jobs_start_is_accepted_when_its_own_record_comes_late(engine):
    """The scheduler id's own record was kept during an outage; the job's start came first and took the id
    along. The late record must not read as 'cancelled meanwhile' (which deleted a healthy cluster job)."""
    engine.setup(M, "late")
    generation = engine.store.get(M, "late").created
    engine.store.transition(M, "late", wire.State.QUEUED)
    assert engine.started(M, "late", external_id="777", generation=generation)
    assert engine.submitted(M, "late", "777", generation=generation)
    assert not engine.submitted(M, "late", "778", generation=generation)
