"""Submission to a scheduler, for the scheduler base (``scheduler.py``): one owner per submission, the intent
recorded before the scheduler's submit command, and the search for a submission a daemon died in the middle of.

Before the submit command the job's ``external_id`` becomes ``submitting:@<epoch>:<job name>`` (the intent and
when it was made); after it, the scheduler's id. A daemon killed between the two finds the job at the restart
by its name, among jobs submitted since the intent: neither lost nor submitted twice (a second copy found is
deleted). A store that cannot record the intent sends nothing (the job is submitted once it can); one that
cannot record the scheduler's id leaves the job followed meanwhile and records the id later.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..errors import StoreUnavailable
from ..logs import job_context
from ..store import JobRecord
from .contract import SchedulerError

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


class Submitting:
    """Part of SchedulerManager: the submission steps."""

    def _submit(self, job_id: str) -> None:
        with job_context(self.name, job_id):
            self._submit_job(job_id)

    def _submit_job(self, job_id: str) -> None:
        with self._lock:
            self._submitting.add(job_id)  # from now on its directory is not handed to another job
        try:
            self._claim_and_submit(job_id)
        finally:
            with self._lock:
                self._submitting.discard(job_id)

    def _claim_and_submit(self, job_id: str) -> None:
        generation = self.hooks.claim(self.name, job_id)
        if generation is None:
            return  # cancelled, cleaned or already submitted while it waited
        try:
            record = self.hooks.record(self.name, job_id)
            submission = self.submission(job_id, (record.launch_config if record else None) or {})
            try:
                intent = self.hooks.submitted(self.name, job_id, submitting_id(submission.name, time.time()),
                                              generation=generation)
            except StoreUnavailable:
                # nothing was sent: give the job back and submit it once its intent can be recorded
                self.hooks.release(self.name, job_id, generation)
                self.hooks.defer(f"job {job_id}: its submission", lambda: self.launch(job_id))
                return
            if not intent:
                return
            try:
                external_id = self.submit_job(submission)
            except SchedulerError as exc:
                log.warning("job %s [%s]: %s refused it: %s", job_id, self.name, self.scheduler, exc)
                self.hooks.finished(self.name, job_id, None, message=f"{self.scheduler} refused the job: {exc}",
                                    generation=generation)
                return
            self._accepted(job_id, generation, external_id)
        except Exception as exc:  # never lose a job to a bug: say so and fail it
            log.exception("job %s [%s]: submission failed", job_id, self.name)
            self.hooks.finished(self.name, job_id, None, message=f"could not submit the job: {exc}",
                                generation=generation)

    def _accepted(self, job_id: str, generation: float, external_id: str) -> None:
        tracked = Tracked(job_id, generation, external_id)
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

    def _find_lost_submission(self, record: JobRecord) -> None:
        try:
            self._look_for_submission(record)
        except StoreUnavailable:
            self.hooks.defer(f"job {record.job_id}: the search for its submission",
                             lambda: self._pool.submit(self._find_lost_submission, record))
        except Exception:  # a defect: said, and the job is looked for again (never left without an owner)
            log.exception("job %s [%s]: looking for its submission failed", record.job_id, self.name)
            self.timers.call_later(max(self.interval, DELETE_RETRY),
                                   lambda: self._pool.submit(self._find_lost_submission, record))

    def _look_for_submission(self, record: JobRecord) -> None:
        """The daemon died while submitting this job: adopt what the scheduler took, or submit it now."""
        name, intended = parse_submitting_id(record.external_id)
        # from when the submission was meant (recorded with it); a record of the old form has only its last
        # change, which a later cancel may have moved past the submission: the job's creation is safe then
        since = (intended if intended is not None else record.created) - 1.0
        try:
            found = self.find_submitted(name, since=since)
        except SchedulerError as exc:
            log.warning("job %s [%s]: cannot look for its submission yet: %s", record.job_id, self.name, exc)
            self.timers.call_later(self.interval, lambda: self._pool.submit(self._find_lost_submission, record))
            return
        if not found:
            log.info("job %s [%s]: its submission never reached %s; submitting it now", record.job_id, self.name,
                     self.scheduler)
            self.hooks.requeue(self.name, record.job_id, generation=record.created)
            return
        *duplicates, external_id = found
        for extra in duplicates:  # never two runs of one job: the newest is adopted, the others deleted
            try:
                self.delete_job(extra)
                log.warning("job %s [%s]: deleted %s job %s, a second submission of it", record.job_id, self.name,
                            self.scheduler, extra)
            except SchedulerError as exc:
                log.error("job %s [%s]: %s job %s is a second submission of it and could not be deleted: %s",
                          record.job_id, self.name, self.scheduler, extra, exc)
        log.info("job %s [%s]: found its submission as %s job %s", record.job_id, self.name, self.scheduler,
                 external_id)
        self.hooks.adopted(self.name, record.job_id, record.created)
        self._accepted(record.job_id, record.created, external_id)
