"""The search for a submission whose outcome is not known (part of the scheduler base, beside
``submitting.py``): by the job's name among the submitting user's jobs, live and finished, with a growing pause;
a job found is adopted, its copies deleted; one never shown is submitted again only when its directory holds no
trace of a run (submitting.py's docstring tells the whole story)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..errors import StoreUnavailable
from ..logs import job_context
from ..store import JobRecord
from .contract import SchedulerError
from .submitting import LOOK_PAUSE_MAX, SUBMIT_TRIES, SUBMITTING, Tracked, parse_submitting_id

log = logging.getLogger("pulsar_lite.managers.scheduler")

#: seconds the scheduler's clock may be behind the daemon's (``clock_skew``): a job submitted that long before
#: the intent, by the scheduler's clock, may still be the intent's
DEFAULT_CLOCK_SKEW = 30.0


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


class LookingUp:
    """Part of SchedulerManager: looking for submissions."""

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
