"""Adversarial review of issue 26's changes: reproductions against the in-memory scheduler."""
from __future__ import annotations

import time

import pytest

from pulsar_lite import wire
from pulsar_lite.managers import following as following_module
from pulsar_lite.managers import scheduler as scheduler_module
from pulsar_lite.managers.contract import Observed
from tests.managers.test_scheduler import MemoryScheduler, final, submit, wait_for
from tests.managers.test_scheduler_held import quick_engine

M = wire.DEFAULT_MANAGER
ERROR = Observed.held("in error state (Eqw) in Memory", "Eqw", wait=False)


@pytest.fixture
def engine(engine_factory, monkeypatch):
    return quick_engine(engine_factory, monkeypatch)


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


import threading  # noqa: E402

from pulsar_lite.managers.bounded import LibraryCalls  # noqa: E402
from tests.managers.test_scheduler import register  # noqa: E402


class LibraryScheduler(MemoryScheduler):
    """The in-memory scheduler behind a library whose calls go through LibraryCalls (as queued_drmaa's do; queued_condor's
    ScheddProcess has the same 'busy' rule): ``wedge`` set, a status query blocks in the library until released."""

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self._calls = LibraryCalls("lib", 0.3)
        self.wedge = threading.Event()
        self.unwedged = threading.Event()

    def _blocking_query(self, external_ids):
        if self.wedge.is_set():
            self.unwedged.wait()
        return MemoryScheduler.query(self, external_ids)

    def query(self, external_ids):
        return self._calls("jobStatus", self._blocking_query, external_ids)

    def submit_job(self, submission):
        return self._calls("runJob", MemoryScheduler.submit_job, self, submission)


def test_a_submission_behind_a_wedged_library_call_waits_instead_of_being_refused(engine_factory, monkeypatch):
    """A status query is stuck in the library (a wedged qmaster or schedd) past scheduler_call_timeout; a job
    submitted meanwhile is 'not called' (busy): nothing was sent. It must wait and be sent once the library answers,
    never fail as refused by the scheduler."""
    register(monkeypatch, "libmem", "tests.managers.test_scheduler_review:LibraryScheduler")
    engine = engine_factory(managers={M: {"type": "libmem", "min_polling_interval": 0.05,
                                          "scheduler_failure_timeout": 30}})
    scheduler = engine.managers[M]
    submit(engine, "first")
    scheduler.wedge.set()
    wait_for(lambda: scheduler._calls._wedged is not None)  # the status query outlived its limit, still in the library
    engine.setup(M, "behind")
    engine.submit(M, "behind", {"command_line": "true"})
    time.sleep(1.0)
    record = engine.store.get(M, "behind")
    assert not record.terminal, record.message
    scheduler.unwedged.set()
    wait_for(lambda: (engine.store.get(M, "behind").external_id or "").isdigit())


class SlowLibraryScheduler(MemoryScheduler):
    """A library whose runJob reaches the scheduler only ``delay`` seconds after it was called (a qmaster that
    answers late), past scheduler_call_timeout and past unknown_outcome_window; its jobs are found by name."""

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self._calls = LibraryCalls("lib", 0.2)
        self.delay = 1.5
        self.names: dict[str, str] = {}  # external id -> job name
        self.sending: set[str] = set()

    def _run_job(self, submission):
        self.sending.add(submission.job_id)
        try:
            time.sleep(self.delay)
            self.delay = 0.0
            external_id = MemoryScheduler.submit_job(self, submission)
            self.names[external_id] = submission.name
            return external_id
        finally:
            self.sending.discard(submission.job_id)

    def submit_job(self, submission):
        return self._calls("runJob", self._run_job, submission)

    def still_submitting(self, job_id):  # as queued_drmaa says of its runJob thread
        return job_id in self.sending

    def find_submitted(self, name, since):
        with self.guard:
            return [i for i, n in sorted(self.names.items()) if n == name]


def test_a_library_submit_that_returns_after_the_lookup_window_is_not_sent_twice(engine_factory, monkeypatch):
    """runJob outlives scheduler_call_timeout (OutcomeUnknown: looked up by name) and reaches the scheduler only
    after unknown_outcome_window. While the call is still in the library the job must not be sent again (two
    copies) nor failed (the copy would run unfollowed into its directory)."""
    register(monkeypatch, "slowlib", "tests.managers.test_scheduler_review:SlowLibraryScheduler")
    engine = engine_factory(managers={M: {"type": "slowlib", "min_polling_interval": 0.05,
                                          "unknown_outcome_window": 0.3, "scheduler_failure_timeout": 30}})
    scheduler = engine.managers[M]
    engine.setup(M, "slow")
    engine.submit(M, "slow", {"command_line": "true"})
    record = wait_for(lambda: (lambda r: r if r.terminal or (r.external_id or "").isdigit() else None)(
        engine.store.get(M, "slow")), timeout=10)
    assert not record.terminal, (record.message, scheduler.jobs)  # main: failed 'refused', its copy runs on
    time.sleep(0.5)
    assert scheduler.calls.count("submit") == 1 and len(scheduler.jobs) == 1, scheduler.calls


from pulsar_lite.managers.contract import OutcomeUnknown, SchedulerDown  # noqa: E402


class ScriptedScheduler(MemoryScheduler):
    """Each submit does the next thing of ``script``: 'down' (nothing sent), 'lost' (taken, its answer lost),
    'unknown' (not taken, its answer lost), 'ok'; then 'ok'. Jobs are found by name."""

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.script: list[str] = []
        self.names: dict[str, str] = {}
        self.down_at: list[float] = []

    def submit_job(self, submission):
        step = self.script.pop(0) if self.script else "ok"
        if step == "down":
            self.down_at.append(time.monotonic())
            raise SchedulerDown("Unable to contact slurm controller")
        if step == "unknown":
            raise OutcomeUnknown("sbatch timed out")
        external_id = MemoryScheduler.submit_job(self, submission)
        self.names[external_id] = submission.name
        if step == "lost":
            raise OutcomeUnknown("ssh connection dropped after sbatch ran")
        return external_id

    def find_submitted(self, name, since):
        with self.guard:
            return [i for i, n in sorted(self.names.items()) if n == name]


def scripted(engine_factory, monkeypatch, **options):
    register(monkeypatch, "scripted", "tests.managers.test_scheduler_review:ScriptedScheduler")
    return engine_factory(managers={M: {"type": "scripted", "min_polling_interval": 0.05, **options}})


def test_a_second_scheduler_outage_is_waited_out_afresh(engine_factory, monkeypatch):
    """down (waits) -> an sbatch whose answer is lost and which took nothing -> looked for, not found, submitted
    again -> down again. The second outage must be waited out for scheduler_failure_timeout; the first one's
    start was kept (_down never forgot it after the unknown outcome) and the job failed at once."""
    engine = scripted(engine_factory, monkeypatch, scheduler_failure_timeout=0.6, unknown_outcome_window=0.8)
    scheduler = engine.managers[M]
    scheduler.script = ["down", "unknown", "down", "down", "down", "down", "down", "down"]
    engine.setup(M, "flap")
    engine.submit(M, "flap", {"command_line": "true"})
    wait_for(lambda: len(scheduler.down_at) >= 2, timeout=5)
    second = scheduler.down_at[1]
    record = wait_for(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "flap")), timeout=5)
    assert record.state == wire.State.FAILED and "could not be reached" in record.message
    assert time.monotonic() - second >= 0.5, f"failed {time.monotonic() - second:.2f} s into the second outage"


def test_a_submission_found_after_an_outage_leaves_no_degraded_report(engine_factory, monkeypatch):
    """down -> an sbatch that took the job but whose answer was lost -> found by name and adopted. Nothing waits
    for the scheduler any more: /readyz must not list the manager as degraded."""
    engine = scripted(engine_factory, monkeypatch, scheduler_failure_timeout=30, unknown_outcome_window=5)
    scheduler = engine.managers[M]
    scheduler.script = ["down", "lost"]
    engine.setup(M, "found")
    engine.submit(M, "found", {"command_line": "true"})
    wait_for(lambda: (engine.store.get(M, "found").external_id or "").isdigit(), timeout=5)
    assert len(scheduler.jobs) == 1
    assert scheduler.unreachable() is None, scheduler.unreachable()



def test_unreachable_reads_the_status_loops_state_once(engine, monkeypatch):
    """/readyz calls unreachable() from a request thread while the status loop clears _failing_since (the
    scheduler answered again). unreachable() read it twice: cleared between the check and the subtraction, it
    raised TypeError (a 500 from /readyz). The interleaving is forced here: the status loop runs exactly when
    unreachable() asks the clock."""
    scheduler = engine.managers[M]
    real = time.monotonic

    def clock():  # the status loop's successful poll, between unreachable()'s two reads
        scheduler._failing_since = scheduler._query_error = None
        return real()
    scheduler._failing_since, scheduler._query_error = real(), "slurmctld not responding"
    monkeypatch.setattr(scheduler_module.time, "monotonic", clock)
    try:
        scheduler.unreachable()
    finally:
        monkeypatch.undo()


def test_a_second_copy_found_by_the_lookup_is_deleted_even_when_the_first_delete_fails(engine_factory, monkeypatch):
    """Two copies of a lost submission are found: one is kept, the other deleted. That delete was made once,
    its failure only logged: the copy stayed queued and later ran the job a second time in its directory."""
    monkeypatch.setattr(following_module, "DELETE_RETRY", 0.2)
    engine = scripted(engine_factory, monkeypatch, scheduler_failure_timeout=30, unknown_outcome_window=5)
    scheduler = engine.managers[M]
    failures = [1]
    real_delete = scheduler.delete_job

    def delete_job(external_id):
        if failures[0]:
            failures[0] -= 1
            raise scheduler_module.SchedulerError("scancel: Unable to contact slurm controller")
        real_delete(external_id)
    scheduler.delete_job = delete_job
    scheduler.script = ["lost"]
    scheduler.names["99"] = "pulsar_twice"  # an earlier copy of the same submission, taken too
    scheduler.jobs["99"] = Observed(Observed.QUEUED, state="PD")
    engine.setup(M, "twice")
    engine.submit(M, "twice", {"command_line": "true"})
    kept = wait_for(lambda: (engine.store.get(M, "twice").external_id or "").isdigit()
                    and engine.store.get(M, "twice").external_id, timeout=5)
    extra = ({"99", "101"} - {kept}).pop()
    wait_for(lambda: scheduler.jobs[extra].phase == Observed.ENDED, timeout=3)
