"""Only a clear refusal fails a submission. A submit whose outcome is unknown (its command timed out or lost its
ssh connection: OutcomeUnknown; or the plugin raised something unexpected) leaves the job in its 'submitting'
intent and the job is looked up by its name: adopted when the scheduler has it, submitted again only after two
looks in a row found nothing over unknown_outcome_window and the job left no trace of a run in its directory,
failed after SUBMIT_TRIES such tries. Before the change each of these jobs was
failed at once ("refused"), though the scheduler ran it. The same on a real Slurm: tests/integration/
test_slurm_bad_day.py."""
from __future__ import annotations

import time

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.contract import Observed, OutcomeUnknown, SchedulerError
from pulsar_lite.managers.submitting import SUBMIT_TRIES
from tests.conftest import wait_until
from tests.managers.test_scheduler import MemoryScheduler, register, write_return_code

M = wire.DEFAULT_MANAGER


class Unsure(MemoryScheduler):
    """A scheduler whose submits can lose their answer: before it took the job, or after."""

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.names: dict[str, tuple[str, float]] = {}  # external id -> (job name, when it was taken)
        self.outcomes: list[str] = []  # one per submit: ok, lost-before, lost-after, bug-after
        self.find_failing: str | None = None
        self.behind = 0.0  # seconds the scheduler's clock is behind the daemon's

    def submit_job(self, submission):
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "refused":
            with self.guard:
                self.calls.append("submit")
            raise SchedulerError("sbatch: error: Batch job submission failed: Invalid partition name specified")
        if outcome == "lost-before":
            with self.guard:
                self.calls.append("submit")
            raise OutcomeUnknown("'sbatch --parsable command.sh' on this host took more than 60 s and was stopped")
        external_id = super().submit_job(submission)
        with self.guard:
            self.names[external_id] = (submission.name, time.time() - self.behind)
        if outcome == "lost-after":
            raise OutcomeUnknown("ssh to submit.example.org failed: Connection reset by peer")
        if outcome == "bug-after":
            raise KeyError("JobId")
        return external_id

    def find_submitted(self, name, since):
        with self.guard:
            self.calls.append("find")
            if self.find_failing:
                raise SchedulerError(self.find_failing)
            return sorted(i for i, (n, t) in self.names.items() if n == name and t >= since)


@pytest.fixture
def engine(engine_factory, monkeypatch, request):
    register(monkeypatch, "unsure", "tests.managers.test_scheduler_uncertain:Unsure")
    window = getattr(request, "param", 0.0)
    return engine_factory(managers={M: {"type": "unsure", "min_polling_interval": 0.05,
                                        "scheduler_failure_timeout": 0.5, "return_code_grace": 0.3,
                                        "unknown_outcome_window": window}})


def wait(predicate, timeout=10.0):
    return wait_until(predicate, timeout=timeout, interval=0.01)


def launch(engine, job_id, *outcomes):
    engine.managers[M].outcomes = list(outcomes)
    engine.setup(M, job_id)
    engine.submit(M, job_id, {"command_line": "true"})


def scheduler_id(engine, job_id):
    return wait(lambda: (engine.store.get(M, job_id).external_id or "").isdigit()
                and engine.store.get(M, job_id).external_id)


def completes(engine, job_id, external_id):
    write_return_code(engine, job_id, 0)
    engine.managers[M].set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, job_id)))
    assert record.state == wire.State.COMPLETE and record.returncode == 0, record.message


@pytest.mark.parametrize("outcome", ["lost-after", "bug-after"])
def test_a_submit_the_scheduler_took_before_its_answer_was_lost_is_adopted_once(engine, outcome):
    scheduler = engine.managers[M]
    launch(engine, "taken", outcome)
    assert scheduler_id(engine, "taken") == "101"
    assert scheduler.calls.count("submit") == 1 and "find" in scheduler.calls
    completes(engine, "taken", "101")
    assert scheduler.calls.count("submit") == 1


def test_a_submit_lost_before_the_scheduler_took_it_is_sent_again_after_two_empty_looks(engine):
    scheduler = engine.managers[M]
    launch(engine, "missed", "lost-before")
    assert scheduler_id(engine, "missed") == "101"  # the scheduler's first (and only) job
    submits = [n for n, call in enumerate(scheduler.calls) if call == "submit"]
    finds = [n for n, call in enumerate(scheduler.calls) if call == "find"]
    assert len(submits) == 2 and len([n for n in finds if submits[0] < n < submits[1]]) == 2
    completes(engine, "missed", "101")


def test_only_a_refusal_fails_the_job_at_once(engine):
    scheduler = engine.managers[M]
    launch(engine, "refused", "refused")
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "refused")))
    assert record.state == wire.State.FAILED and "Invalid partition" in record.message
    assert "find" not in scheduler.calls  # it said no: nothing to look for
    launch(engine, "unknown", "lost-after")
    time.sleep(0.5)
    assert not engine.store.get(M, "unknown").terminal
    assert scheduler_id(engine, "unknown") == "101"


def test_unknown_outcomes_never_found_end_failed_after_a_bounded_number_of_tries(engine):
    scheduler = engine.managers[M]
    launch(engine, "cursed", *["lost-before"] * SUBMIT_TRIES)
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "cursed")))
    assert record.state == wire.State.FAILED
    assert f"{SUBMIT_TRIES} tries had an unknown outcome" in record.message and "took more than 60 s" in record.message
    assert scheduler.calls.count("submit") == SUBMIT_TRIES


def test_a_scheduler_that_cannot_be_asked_is_asked_again_and_the_job_found(engine):
    scheduler = engine.managers[M]
    scheduler.find_failing = "ssh to submit.example.org failed: Connection timed out"
    launch(engine, "patient", "lost-after")
    wait(lambda: scheduler.calls.count("find") >= 2)
    record = engine.store.get(M, "patient")
    assert record.state == wire.State.QUEUED and record.external_id.startswith("submitting:")
    assert scheduler.may_write("patient")  # its directory is not handed to another job meanwhile
    scheduler.find_failing = None
    assert scheduler_id(engine, "patient") == "101"
    assert scheduler.calls.count("submit") == 1
    completes(engine, "patient", "101")


def test_a_cancel_while_the_job_is_looked_for_deletes_what_is_found(engine):
    scheduler = engine.managers[M]
    scheduler.find_failing = "slurm_load_jobs error: Socket timed out on send/recv operation"
    launch(engine, "unwanted", "lost-after")
    wait(lambda: "find" in scheduler.calls)
    engine.cancel(M, "unwanted")
    scheduler.find_failing = None
    wait(lambda: "delete 101" in scheduler.calls)
    assert wait(lambda: engine.store.get(M, "unwanted").terminal)
    assert engine.store.get(M, "unwanted").state == wire.State.CANCELLED
    assert scheduler.calls.count("submit") == 1


def test_a_job_looked_for_past_the_failure_timeout_is_failed_and_a_copy_found_later_deleted(engine):
    """Never stuck (scheduler_failure_timeout, here 0.5 s), and nothing left running for a job failed: the copy
    found once the scheduler answers is deleted, and the directory held until then."""
    scheduler = engine.managers[M]
    scheduler.find_failing = "slurmctld not responding"
    launch(engine, "abandoned", "lost-after")
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "abandoned")))
    assert record.state == wire.State.FAILED and "could not find out whether Memory took the job" in record.message
    assert scheduler.may_write("abandoned")
    scheduler.find_failing = None
    wait(lambda: "delete 101" in scheduler.calls)
    wait(lambda: not scheduler.may_write("abandoned"))
    assert scheduler.calls.count("submit") == 1


def test_the_job_name_is_pulsars_by_default_and_can_tell_runs_and_managers_apart(engine, engine_factory):
    assert engine.managers[M].job_name("42") == "pulsar_42"  # as docs/managers.md promises
    other = engine_factory(persistence_directory=str(engine.config.persistence_directory) + "-2",
                           managers={"hpc": {"type": "unsure", "job_name_template":
                                             "pulsar_${manager}_${job_id}_$generation"}})
    scheduler = other.managers["hpc"]
    other.setup("hpc", "42")
    first = scheduler.job_name("42")
    assert first == f"pulsar_hpc_42_{other.store.get('hpc', '42').created * 1000:.0f}"
    other.clean("hpc", "42")
    time.sleep(0.01)
    other.setup("hpc", "42")
    assert scheduler.job_name("42") != first and scheduler.job_name("42").startswith("pulsar_hpc_42_")


@pytest.mark.parametrize("engine", [1.5], indirect=True)
def test_a_lost_submit_is_sent_again_only_after_the_window(engine):
    """A first submission may still be on its way (a slow controller, a request already sent): nothing is sent
    again before unknown_outcome_window has passed without the job showing up."""
    launch(engine, "patient", "lost-before")
    scheduler = engine.managers[M]
    time.sleep(1.0)  # several empty looks, within the window
    assert scheduler.calls.count("submit") == 1 and scheduler.calls.count("find") >= 2
    scheduler_id(engine, "patient")
    assert scheduler.calls.count("submit") == 2


@pytest.mark.parametrize("trace, state", [("pid", wire.State.FAILED), ("return_code", wire.State.COMPLETE)])
def test_a_lost_submit_that_left_a_trace_is_never_sent_again(engine, trace, state):
    """The scheduler shows no job of its name, but the job's script ran (its pid file or its return_code is
    in the job directory): it must not run twice. With an exit code it ends with it; without, it fails."""
    launch(engine, "ran", "lost-before")
    directory = engine.job_directory(M, "ran")
    with open(directory.sub(trace), "w") as handle:
        handle.write("4242\n" if trace == "pid" else "0\n")
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "ran")))
    assert record.state == state, record
    assert engine.managers[M].calls.count("submit") == 1
    if trace == "pid":
        assert "left no exit code" in record.message


def test_a_job_found_by_its_name_is_not_complete_on_the_schedulers_word_alone(engine):
    """The job adopted by its name may be another's of the same name: when it ends with exit 0 and our job
    left no return_code, the job is failed, not complete."""
    launch(engine, "namesake", "lost-after")
    external_id = scheduler_id(engine, "namesake")
    engine.managers[M].set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    record = wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "namesake")))
    assert record.state == wire.State.FAILED and "left no exit code" in record.message


def test_a_lookup_of_an_earlier_run_never_deletes_the_current_runs_job(engine):
    """Run 1's submission had an unknown outcome and run 1 was failed while the scheduler could not be asked;
    the job id is set up and submitted again (run 2, named alike). Run 1's lookup, answered at last, must not
    delete run 2's job (the review found it deleted: run 2 failed 'cancelled')."""
    scheduler = engine.managers[M]
    scheduler.find_failing = "slurmctld not responding"
    launch(engine, "again", "lost-before")
    wait(lambda: engine.store.get(M, "again").terminal)  # run 1 failed after scheduler_failure_timeout
    engine.setup(M, "again")
    engine.submit(M, "again", {"command_line": "true"})
    run2 = scheduler_id(engine, "again")
    scheduler.find_failing = None
    wait(lambda: scheduler.calls.count("find") >= 3)
    time.sleep(0.5)
    assert f"delete {run2}" not in scheduler.calls
    write_return_code(engine, "again", 0)
    scheduler.set(run2, Observed(Observed.ENDED, 0, None, "CD"))
    assert wait(lambda: (lambda r: r if r.terminal else None)(engine.store.get(M, "again"))).state == \
        wire.State.COMPLETE


def test_a_scheduler_clock_a_little_behind_still_finds_the_submission_but_not_an_older_job(engine):
    """The scheduler's clock is 2 s behind the daemon's: the job it took before the answer was lost has a submit
    time before the intent, and is still adopted (clock_skew, 30 s by default; it used to be missed and sent
    again). A job of the same name from 10 minutes before (an earlier run's) is not taken for it."""
    scheduler = engine.managers[M]
    scheduler.behind = 2.0
    with scheduler.guard:
        scheduler.names["77"] = ("pulsar_skewed", time.time() - 600)
    launch(engine, "skewed", "lost-after")
    assert scheduler_id(engine, "skewed") == "101"
    assert scheduler.calls.count("submit") == 1
    completes(engine, "skewed", "101")
