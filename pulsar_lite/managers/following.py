"""What the scheduler base (``scheduler.py``) concludes from the scheduler's word on one job, each poll: it
runs, waits, is held (``held_job_grace``), ran away, has ended (its ``return_code`` waited for through
filesystem lag), or the scheduler could not be asked (``scheduler_failure_timeout``); and how a job the daemon
gives up on is ended here and deleted there until the scheduler lets it go."""
from __future__ import annotations

import logging
import time

from .contract import Observed, SchedulerError
from .submitting import DELETE_RETRY, Tracked

log = logging.getLogger("pulsar_lite.managers.scheduler")


class Following:
    """Part of SchedulerManager: one job's news from one poll."""

    def _runaway(self, tracked: Tracked, seen: Observed) -> None:
        """The live queue no longer lists the job, and the scheduler's record of finished jobs says it is still
        queued or running (Slurm's "runaway" jobs: its controller lost them, its accounting did not hear the
        end). Nothing will end it there: it counts as missing, and its return_code file decides."""
        tracked.missing += 1
        if tracked.missing < 2:
            return
        self._ran_out(tracked, None, f"{self.scheduler} no longer lists job {tracked.external_id}, though its "
                                     f"accounting still says {seen.state or seen.phase} (a runaway job), and the job "
                                     f"left no exit code")

    def _held(self, tracked: Tracked, seen: Observed) -> None:
        """The scheduler keeps the job without running it. An operator may release it within ``held_job_grace``;
        after that (at once for a state nothing brings back) it is failed with the scheduler's reason, and
        deleted there (followed until the scheduler lets it go, as a cancelled job)."""
        now = time.monotonic()
        if tracked.held_at is None:
            tracked.held_at = now
            if seen.wait and self.held_job_grace > 0:
                log.warning("job %s [%s]: %s holds job %s (%s); it is failed unless released within %g s",
                            tracked.job_id, self.name, self.scheduler, tracked.external_id, seen.failure,
                            self.held_job_grace)
        held_for = max(now - tracked.held_at, seen.held_for or 0.0)
        if seen.wait and held_for < self.held_job_grace:
            return
        what = f"held by {self.scheduler} for {held_for:.0f} s" if seen.wait and self.held_job_grace > 0 \
            else f"held by {self.scheduler}"
        self._give_up(tracked, None, f"{self.scheduler} job {tracked.external_id} {what}, not released: "
                                     f"{seen.failure or seen.state}")

    def _follow(self, tracked: Tracked, seen: Observed | None) -> None:
        if seen is None:
            tracked.missing += 1
            if tracked.missing < 2:
                return  # ask once more before concluding
            self._ran_out(tracked, None, f"{self.scheduler} no longer knows job {tracked.external_id} and the job "
                                         f"left no exit code (it may have been removed, or lost with its node)")
            return
        if seen.phase == Observed.UNKNOWN:
            return  # its record could not be read: no news (the plugin says 'not listed' after a few rounds)
        tracked.missing = 0
        if seen.phase == Observed.ENDED:
            if tracked.cancel:  # however it ended, it ends cancelled
                code = self._return_code(tracked.job_id)
                self._end(tracked, code if code is not None else seen.exit_code, None)
            elif seen.failure is not None:
                self._end(tracked, self._return_code(tracked.job_id),
                          f"{self.scheduler} ended job {tracked.external_id}: {seen.failure}")
            else:
                self._ran_out(tracked, seen.exit_code, f"{self.scheduler} job {tracked.external_id} ended "
                                                       f"({seen.state}) but the job script left no exit code")
            return
        tracked.ended_at = tracked.ended = None  # back in the queue (requeued): a new end is waited for afresh
        if seen.phase != Observed.HELD:
            tracked.held_at = None  # released: a new hold is waited out afresh
        elif not tracked.cancel:
            self._held(tracked, seen)
            return
        if tracked.cancel and time.monotonic() - tracked.last_delete >= max(self.interval, DELETE_RETRY):
            self._request_delete(tracked)  # the scheduler has not let it go yet: ask again
        if seen.phase == Observed.RUNNING and not tracked.started:
            tracked.started = True
            if not self.hooks.started(self.name, tracked.job_id, external_id=tracked.external_id,
                                      generation=tracked.generation):
                tracked.cancel = True
                self._request_delete(tracked)

    def _ran_out(self, tracked: Tracked, scheduler_code: int | None, message: str) -> None:
        """The script's run is over (not ended by the scheduler): its exit code is its ``return_code`` file,
        waited for through filesystem lag for ``return_code_grace`` seconds; then the scheduler's exit code if
        it has one, or ``failed`` with ``message``."""
        if tracked.ended is not None:  # the first word of the end is kept: later polls may only miss the job
            scheduler_code = scheduler_code if scheduler_code is not None else tracked.ended[0]
            message = tracked.ended[1]
        code = self._return_code(tracked.job_id, refresh=True)
        if code is None and scheduler_code is not None and scheduler_code != 0:
            code = scheduler_code  # the script's own exit code, which the file would say too (or it never started)
        if code is not None:
            self._end(tracked, code, None)
            return
        now = time.monotonic()
        if tracked.ended_at is None:
            tracked.ended_at, tracked.ended = now, (scheduler_code, message)
            log.info("job %s [%s]: %s job %s has ended; its return_code file is not visible yet: waiting up to "
                     "%g s for it", tracked.job_id, self.name, self.scheduler, tracked.external_id,
                     self.return_code_grace)
        if now - tracked.ended_at < self.return_code_grace:
            return  # looked for again at the next poll
        if scheduler_code is not None and not tracked.adopted:
            log.warning("job %s [%s]: no return_code file %g s after %s job %s ended; %s's exit code %d is used",
                        tracked.job_id, self.name, self.return_code_grace, self.scheduler, tracked.external_id,
                        self.scheduler, scheduler_code)
            self._end(tracked, scheduler_code, None)
        else:
            self._end(tracked, None, f"{message} (waited {self.return_code_grace:g} s for it)")

    def _end(self, tracked: Tracked, code: int | None, message: str | None) -> None:
        with self._lock:
            if self._tracked.get(tracked.job_id) is tracked:
                del self._tracked[tracked.job_id]
            self._leftovers = [t for t in self._leftovers if t is not tracked]
        if tracked.copy:
            return  # a second copy let go: the job's own run reports its end
        if message:
            log.warning("job %s [%s]: %s", tracked.job_id, self.name, message)
        self.hooks.finished(self.name, tracked.job_id, code, message=message, generation=tracked.generation)

    def _query_failed(self, jobs: list[Tracked], exc: SchedulerError) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        failing = now - self._failing_since
        self._query_error = str(exc)
        log.warning("[%s] %s cannot be asked about %d job(s) (for %.0f s now): %s", self.name, self.scheduler,
                    len(jobs), failing, exc)
        if failing < self.failure_timeout:
            return
        for tracked in jobs:  # never stuck: after scheduler_failure_timeout, say why and end them
            if tracked.given_up:
                continue
            why = f"{self.scheduler} could not be asked about job {tracked.external_id} for {failing:.0f} s: {exc}"
            code = self._return_code(tracked.job_id, refresh=True)
            if code is not None:  # the job script has run to its end: that is the job's end
                self._give_up(tracked, code, None, f"{why}; its return_code file says it ended with {code}")
            else:
                self._give_up(tracked, None, why)
        self._failing_since = None

    def _give_up(self, tracked: Tracked, code: int | None, message: str | None, why: str | None = None) -> None:
        """End the job in the store without the scheduler's word that it has ended (``message``: why it failed;
        None: it ends with ``code``), and go on following it, deleting it, until the scheduler lets it go: until
        then its directory is not handed to another job."""
        log.warning("job %s [%s]: %s", tracked.job_id, self.name, why or message)
        tracked.given_up = tracked.cancel = True
        self.hooks.finished(self.name, tracked.job_id, code, message=message, generation=tracked.generation)
        self._request_delete(tracked)
