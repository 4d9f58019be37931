"""Submission to a scheduler, for the scheduler base (``scheduler.py``): one owner per submission, the intent
recorded before the scheduler's submit command, and the search for a submission whose outcome is not known.

Before the submit command the job's ``external_id`` becomes ``submitting:@<epoch>:<job name>`` (the intent and
when it was made); after it, the scheduler's id. Only a clear refusal (the command ran and said no, or nothing
was sent: SchedulerError) fails the job. When the outcome is unknown (OutcomeUnknown: a timeout, a dropped ssh
connection, a lost reply; or an unexpected exception) the job keeps its intent and is looked up by its name,
among the jobs of the user the daemon submits as, in every partition or queue, live or in the scheduler's record
of finished jobs, submitted since the intent (the scheduler's submit time, in epoch seconds, against the
daemon's clock less ``clock_skew``: never a wall clock in a time zone), with a growing pause between two looks:
a job found is adopted (it completes only on its own return_code); of several copies the one that started, else
the oldest, is kept and the others deleted (logged); one the scheduler has not shown for
``unknown_outcome_window`` is submitted again only when its directory holds no trace of a run (a pid file: it is
failed, a return_code: it ends with that code), at most ``SUBMIT_TRIES`` times in all, then failed. Submit is
never repeated blindly. A daemon killed between intent and id is in the same position
at its restart, and its job is looked for the same way. A scheduler that cannot be asked, or whose record of a
job of that name cannot be read, is asked again (logged with the job id); after ``scheduler_failure_timeout``
the job is failed in the store, and still looked for (a copy found is deleted).

A store that cannot record the intent sends nothing (the job is submitted once it can); one that cannot record
the scheduler's id leaves the job followed meanwhile and records the id later.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import StoreUnavailable
from ..logs import job_context
from .contract import OutcomeUnknown, SchedulerDown, SchedulerError

log = logging.getLogger("pulsar_lite.managers.scheduler")

#: prefix of the external id recorded before the scheduler's submit command returns
SUBMITTING = "submitting:"


def submitting_id(name: str, when: float) -> str:
    """The external id recorded before a submission: the job's name and when it was meant (epoch seconds)."""
    return f"{SUBMITTING}@{when:.3f}:{name}"


def parse_submitting_id(external_id: str) -> tuple[str, float | None]:
    """(job name, epoch of the submission or None) of an id made by ``submitting_id`` (or of the older form,
    ``submitting:<name>``, without the time)."""
    rest = external_id[len(SUBMITTING):]
    if rest.startswith("@") and ":" in rest:
        when, name = rest[1:].split(":", 1)
        try:
            return name, float(when)
        except ValueError:
            pass
    return rest, None


#: seconds between two deletes of a cancelled job the scheduler still lists
DELETE_RETRY = 10.0
#: submissions of one run of a job, each with an unknown outcome and not found after it, before it is failed
SUBMIT_TRIES = 3
#: the longest pause between two looks for a submission whose outcome is unknown (and between two submits to a
#: scheduler out of reach)
LOOK_PAUSE_MAX = 60.0


@dataclass
class Tracked:
    job_id: str
    generation: float
    external_id: str
    started: bool = False
    cancel: bool = False
    missing: int = 0  # consecutive polls the job was in neither the queue nor the scheduler's history
    last_delete: float = 0.0  # when the last delete attempt ended
    deleting: bool = False  # a delete is queued or running: never a second one beside it
    given_up: bool = False  # ended in the store without the scheduler's word: followed until it lets go
    ended_at: float | None = None  # when it was first seen ended without a visible return_code (monotonic)
    ended: tuple[int | None, str] | None = None  # what the scheduler said then: its exit code, the message
    held_at: float | None = None  # when it was first seen held (monotonic); None while it is not held
    #: found by its name, not by the id its submit command printed: only its own return_code says it ran (a
    #: job of that name may be another's), never the scheduler's exit code alone
    adopted: bool = False
    #: a second copy of the run (found beside the one kept), only deleted: never reports the job's start or end
    copy: bool = False


class Submitting:
    """Part of SchedulerManager: the submission steps."""

    def _submit(self, job_id: str) -> None:
        with job_context(self.name, job_id):
            self._submit_job(job_id)

    def _submit_job(self, job_id: str) -> None:
        with self._submitting.holding(job_id):  # from now on its directory is not handed to another job
            self._claim_and_submit(job_id)

    def _claim_and_submit(self, job_id: str) -> None:
        generation = self.hooks.claim(self.name, job_id)
        if generation is None:
            return  # cancelled, cleaned or already submitted while it waited
        try:
            record = self.hooks.record(self.name, job_id)
            submission = self.submission(job_id, (record.launch_config if record else None) or {})
            meant = time.time()
            try:
                intent = self.hooks.submitted(self.name, job_id, submitting_id(submission.name, meant),
                                              generation=generation)
            except StoreUnavailable:
                # nothing was sent: give the job back and submit it once its intent can be recorded
                self.hooks.release(self.name, job_id, generation)
                self.hooks.defer(f"job {job_id}: its submission", lambda: self.launch(job_id))
                return
            if not intent:
                return
            self._send(job_id, generation, submission, meant)
        except Exception as exc:  # never lose a job to a bug: say so and fail it
            log.exception("job %s [%s]: submission failed", job_id, self.name)
            self.hooks.finished(self.name, job_id, None, message=f"could not submit the job: {exc}",
                                generation=generation)

    def _send(self, job_id: str, generation: float, submission, meant: float) -> None:
        """The scheduler's submit command, for a job claimed and with its intent recorded."""
        try:
            external_id = self.submit_job(submission)
        except SchedulerDown as exc:
            self._scheduler_down(job_id, generation, submission, meant, str(exc))
            return
        except OutcomeUnknown as exc:
            self._reached(job_id, generation)  # something got there: a later outage is waited out afresh
            self._outcome_unknown(job_id, generation, submission.name, meant, str(exc))
            return
        except SchedulerError as exc:
            log.warning("job %s [%s]: %s refused it: %s", job_id, self.name, self.scheduler, exc)
            self._forget_submission(job_id, generation)
            self.hooks.finished(self.name, job_id, None, message=f"{self.scheduler} refused the job: {exc}",
                                generation=generation)
            return
        except Exception as exc:  # a defect in the plugin: whether the scheduler took the job is not known
            log.exception("job %s [%s]: submission failed", job_id, self.name)
            self._reached(job_id, generation)
            self._outcome_unknown(job_id, generation, submission.name, meant, f"{type(exc).__name__}: {exc}")
            return
        self._reached(job_id, generation)
        self._accepted(job_id, generation, external_id)

    def _reached(self, job_id: str, generation: float) -> None:
        """The submit command reached the scheduler (or may have): the job no longer waits for it."""
        with self._lock:
            self._down.pop((job_id, generation), None)
            self.down_error = None

    def _forget_submission(self, job_id: str, generation: float) -> None:
        with self._lock:
            self._tries.pop((job_id, generation), None)
            self._down.pop((job_id, generation), None)

    # -- a scheduler that cannot be reached (nothing was sent) ----------------------------------------------
    def _scheduler_down(self, job_id: str, generation: float, submission, meant: float, why: str) -> None:
        """Nothing was sent: the job keeps its claim and its intent, and is sent again after a growing pause,
        until the scheduler has been out of reach for ``scheduler_failure_timeout``; then it is failed."""
        now = time.monotonic()
        with self._lock:
            first, pause = self._down.get((job_id, generation), (now, self.interval))
            self._down[(job_id, generation)] = (first, min(pause * 2, LOOK_PAUSE_MAX))
            self.down_error = why
        waited = now - first
        if waited >= self.failure_timeout:
            self._forget_submission(job_id, generation)
            message = f"{self.scheduler} could not be reached for {waited:.0f} s to submit the job: {why}"
            log.warning("job %s [%s]: %s", job_id, self.name, message)
            self.hooks.finished(self.name, job_id, None, message=message, generation=generation)
            return
        log.warning("job %s [%s]: %s cannot be reached (%s); nothing was sent, the job waits (sent again in %g s)",
                    job_id, self.name, self.scheduler, why, pause)

        def again():
            if not self._stopping.is_set():  # else submitted after the next start (its intent is recorded)
                self._pool.submit(self._send_again, job_id, generation, submission, meant)
        self.timers.call_later(pause, again)

    def _send_again(self, job_id: str, generation: float, submission, meant: float) -> None:
        with job_context(self.name, job_id), self._submitting.holding(job_id):
            try:
                record = self.hooks.record(self.name, job_id)
                if record is None or record.created != generation or record.terminal:
                    self._forget_submission(job_id, generation)
                    self.hooks.release(self.name, job_id, generation)
                    return
                if record.cancel_requested:  # cancelled while it waited: nothing was ever sent
                    self._forget_submission(job_id, generation)
                    self.hooks.finished(self.name, job_id, None, generation=generation)
                    return
                self._send(job_id, generation, submission, meant)
            except StoreUnavailable:  # the store cannot be read now: try again after the same pause
                self._scheduler_down(job_id, generation, submission, meant, "the job store cannot be read")
            except Exception as exc:  # never lose a job to a bug: say so and fail it
                log.exception("job %s [%s]: submission failed", job_id, self.name)
                self._forget_submission(job_id, generation)
                self.hooks.finished(self.name, job_id, None, message=f"could not submit the job: {exc}",
                                    generation=generation)

    def _accepted(self, job_id: str, generation: float, external_id: str, adopted: bool = False) -> None:
        self._tries.pop((job_id, generation), None)
        tracked = Tracked(job_id, generation, external_id, adopted=adopted)
        self._track(tracked)  # followed before it is recorded: the reconcile pass never sees it unfollowed
        try:
            self._record_accepted(tracked)
        except StoreUnavailable:  # followed meanwhile; its id is recorded once the store can be written
            self.hooks.defer(f"job {job_id}: its {self.scheduler} id", lambda: self._record_accepted(tracked))

    def _record_accepted(self, tracked: Tracked) -> None:
        job_id, external_id = tracked.job_id, tracked.external_id
        if self.hooks.submitted(self.name, job_id, external_id, generation=tracked.generation):
            log.info("job %s [%s]: submitted to %s as %s", job_id, self.name, self.scheduler, external_id)
        else:  # cancelled (or cleaned) while it was being submitted: take it back out
            log.info("job %s [%s]: cancelled while being submitted; deleting %s job %s", job_id, self.name,
                     self.scheduler, external_id)
            tracked.cancel = True
            self._delete(tracked)
