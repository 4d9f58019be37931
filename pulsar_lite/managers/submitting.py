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
from dataclasses import dataclass, field

from ..errors import StoreUnavailable
from ..logs import job_context
from ..store import JobRecord
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
#: the longest pause between two looks for a submission whose outcome is unknown
LOOK_PAUSE_MAX = 60.0
#: seconds the scheduler's clock may be behind the daemon's (``clock_skew``): a job submitted that long before
#: the intent, by the scheduler's clock, may still be the intent's
DEFAULT_CLOCK_SKEW = 30.0


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


@dataclass
class Lookup:
    """A submission whose outcome is unknown, looked for at the scheduler by its name until it answers."""
    job_id: str
    generation: float
    name: str
    since: float  # epoch: the intent, less a second (schedulers keep whole seconds)
    why: str  # what made the outcome unknown
    pause: float  # until the next look (doubled after each, to LOOK_PAUSE_MAX)
    empty: int = 0  # answers in a row without the job
    failing_since: float | None = None  # monotonic: since when the scheduler cannot be asked
    given_up: bool = False  # failed in the store meanwhile: a copy found is deleted
    began: float = field(default_factory=time.monotonic)
    at_start: bool = False  # the daemon died while submitting: its down time has passed already


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

    # -- a submission whose outcome is unknown ------------------------------------------------------------
    def _outcome_unknown(self, job_id: str, generation: float, name: str, meant: float, why: str) -> None:
        with self._lock:
            self._tries[(job_id, generation)] = self._tries.get((job_id, generation), 0) + 1
        log.warning("job %s [%s]: %s may or may not have taken it (%s); looking for %s there before anything is "
                    "sent again", job_id, self.name, self.scheduler, why, name)
        self._look_later(Lookup(job_id, generation, name, meant - 1.0, why, pause=self.interval))

    def _find_lost_submission(self, record: JobRecord) -> None:
        """At the start: the daemon died while submitting this job. Look for it as for any unknown outcome."""
        name, meant = parse_submitting_id(record.external_id)
        # from when the submission was meant (recorded with it); a record of the old form has only its last
        # change, which a later cancel may have moved past the submission: the job's creation is safe then
        since = (meant if meant is not None else record.created) - 1.0
        lookup = Lookup(record.job_id, record.created, name, since, "the daemon stopped while submitting it",
                        pause=self.interval, at_start=True)
        with self._lock:
            self._looking[lookup.job_id] = lookup
        self._look(lookup)

    def _look_later(self, lookup: Lookup) -> None:
        with self._lock:
            self._looking[lookup.job_id] = lookup  # its directory is not handed to another job meanwhile
        pause, lookup.pause = lookup.pause, min(lookup.pause * 2, LOOK_PAUSE_MAX)

        def look():
            if not self._stopping.is_set():  # else looked for at the next start
                self._pool.submit(self._look, lookup)
        self.timers.call_later(pause, look)

    def _look(self, lookup: Lookup) -> None:
        with job_context(self.name, lookup.job_id):
            try:
                self._look_once(lookup)
            except StoreUnavailable:
                self.hooks.defer(f"job {lookup.job_id}: the search for its submission",
                                 lambda: self._pool.submit(self._look, lookup))
            except Exception:  # a defect: said, and the job is looked for again (never left without an owner)
                log.exception("job %s [%s]: looking for its submission failed", lookup.job_id, self.name)
                self._look_later(lookup)

    @property
    def clock_skew(self) -> float:
        skew = self.config.values.get("clock_skew")
        return max(float(skew if skew is not None else DEFAULT_CLOCK_SKEW), 0.0)

    def find_submission(self, job_id: str, name: str, since: float) -> list[str]:
        """The scheduler's jobs that may be this submission (``find_submitted``), the one to keep first."""
        return self.find_submitted(name, since)

    def still_submitting(self, job_id: str) -> bool:
        """Whether a submit call for the job that was given up on (its time limit passed) is still running in the
        scheduler's library: it may yet send the job (queued_drmaa: a thread cannot be stopped)."""
        return False

    def _look_once(self, lookup: Lookup) -> None:
        job_id = lookup.job_id
        try:
            found = self.find_submission(job_id, lookup.name, since=lookup.since - self.clock_skew)
        except SchedulerError as exc:
            self._cannot_look(lookup, exc)
            return
        lookup.failing_since = None
        record = self.hooks.record(self.name, job_id)
        current = record is not None and record.created == lookup.generation and not record.terminal
        if found and not current:  # failed, cleaned or set up afresh meanwhile: nothing of it may run
            self._found_after_the_end(lookup, record, found)
            return
        if found:
            self._stop_looking(lookup)
            external_id, *duplicates = found
            for extra in duplicates:  # never two runs of one job: the one that started (else the oldest) is kept
                self._delete_copy(job_id, extra, f"a second submission of it ({external_id} is kept)",
                                  lookup.generation)
            log.info("job %s [%s]: found its submission as %s job %s", job_id, self.name, self.scheduler,
                     external_id)
            self.hooks.adopted(self.name, job_id, lookup.generation)
            self._accepted(job_id, lookup.generation, external_id, adopted=True)
            return
        if current and self.still_submitting(job_id):
            # the call that made the outcome unknown may still send it: never sent again (two copies) nor failed
            # (its copy would run unfollowed) meanwhile; the window is counted from its return
            lookup.empty, lookup.began = 0, time.monotonic()
            self._look_later(lookup)
            return
        lookup.empty += 1
        waited = time.monotonic() - lookup.began
        if lookup.empty < 2 or (not lookup.at_start and waited < self.unknown_outcome_window):
            self._look_later(lookup)  # asked again, a while later: a submission may still be on its way
            return
        self._stop_looking(lookup)
        if not current:
            self._tries.pop((job_id, lookup.generation), None)
            return
        trace = self._trace(job_id)
        if trace is not None:  # it ran, though the scheduler shows no job of its name: never run it again
            code, what = trace
            self._tries.pop((job_id, lookup.generation), None)
            self.hooks.finished(self.name, job_id, code, generation=lookup.generation, message=None
                                if code is not None else f"{self.scheduler} holds no job named {lookup.name}, but "
                                f"the job started ({what}) and left no exit code; it is not submitted again")
            return
        tries = self._tries.get((job_id, lookup.generation), 0)
        if tries >= SUBMIT_TRIES:
            self._tries.pop((job_id, lookup.generation), None)
            self.hooks.finished(self.name, job_id, None, generation=lookup.generation, message=(
                f"could not submit the job: {tries} tries had an unknown outcome and {self.scheduler} holds none "
                f"of them (the last: {lookup.why})"))
            return
        log.info("job %s [%s]: its submission never reached %s (not shown for %.0f s, no trace of a run); "
                 "submitting it now", job_id, self.name, self.scheduler, waited)
        self.hooks.requeue(self.name, job_id, generation=lookup.generation)

    def _trace(self, job_id: str) -> tuple[int | None, str] | None:
        """What the job's own files say of a run of its script: (exit code or None, what was found), or None."""
        code = self._return_code(job_id, refresh=True)
        if code is not None:
            return code, "return_code"
        return (None, "its pid file") if self.hooks.job_directory(self.name, job_id).read_text(
            "pid", limit=32) else None

    def _found_after_the_end(self, lookup: Lookup, record: JobRecord | None, found: list[str]) -> None:
        """A submission of a run that has ended (failed while it was looked for), or of an earlier run of a job id
        set up afresh: deleted, but never the current run's own job (named alike). While the current run is itself
        being submitted, which of the jobs is its own is not known yet: looked at again later."""
        job_id = lookup.job_id
        if record is not None and record.created != lookup.generation and record.external_id \
                and record.external_id.startswith(SUBMITTING):
            self._look_later(lookup)
            return
        self._stop_looking(lookup)
        self._tries.pop((job_id, lookup.generation), None)
        current_id = record.external_id if record is not None and record.created != lookup.generation else None
        with self._lock:
            followed = self._tracked.get(job_id)
        ours = {current_id, followed.external_id if followed is not None and
                followed.generation != lookup.generation else None}
        found = [external_id for external_id in found if external_id not in ours]
        if not found:
            return
        *others, newest = found
        if record is not None and record.created == lookup.generation:  # ended: followed until let go
            log.warning("job %s [%s]: deleting %s job %s, a submission of it found after its end", job_id,
                        self.name, self.scheduler, newest)
            tracked = Tracked(job_id, lookup.generation, newest, cancel=True, given_up=True)
            self._track(tracked)
            self._request_delete(tracked)
        else:
            others.append(newest)
        for external_id in others:
            self._delete_copy(job_id, external_id, "a submission of an ended or earlier run of it",
                              lookup.generation)

    def _cannot_look(self, lookup: Lookup, exc: SchedulerError) -> None:
        now = time.monotonic()
        if lookup.failing_since is None:
            lookup.failing_since = now
        failing = now - lookup.failing_since
        log.warning("job %s [%s]: cannot look for its submission yet (for %.0f s now): %s", lookup.job_id,
                    self.name, failing, exc)
        if failing >= self.failure_timeout and not lookup.given_up:
            lookup.given_up = True  # never stuck; still looked for: a copy found is deleted
            self._tries.pop((lookup.job_id, lookup.generation), None)
            self.hooks.finished(self.name, lookup.job_id, None, generation=lookup.generation, message=(
                f"could not find out whether {self.scheduler} took the job ({lookup.why}): {self.scheduler} "
                f"could not be asked for {failing:.0f} s: {exc}"))
        self._look_later(lookup)

    def _stop_looking(self, lookup: Lookup) -> None:
        with self._lock:
            if self._looking.get(lookup.job_id) is lookup:
                del self._looking[lookup.job_id]

    def _delete_copy(self, job_id: str, external_id: str, what: str, generation: float) -> None:
        """Delete a copy, and follow it (deleted again) until the scheduler lets it go: a copy left queued would
        run the job a second time in its directory."""
        copy = Tracked(job_id, generation, external_id, started=True, cancel=True, given_up=True, copy=True)
        with self._lock:
            self._leftovers.append(copy)
        try:
            self.delete_job(external_id)
            log.warning("job %s [%s]: deleted %s job %s, %s", job_id, self.name, self.scheduler, external_id, what)
        except SchedulerError as exc:
            log.error("job %s [%s]: %s job %s is %s and could not be deleted yet (tried again while it is listed): %s",
                      job_id, self.name, self.scheduler, external_id, what, exc)
        finally:
            copy.last_delete = time.monotonic()
