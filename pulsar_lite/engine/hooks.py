"""What managers call: the hooks that report a job's progress (part of ``JobEngine``).

Every hook that moves a job takes the job's lock, as the user's actions (cancel, clean, setup) do: whichever
comes first wins and the other sees its result. A hook carries the ``generation`` that ``claim`` handed out
(the record's creation time): an event of an earlier run of a job id that was cleaned or set up afresh
meanwhile is ignored instead of moving the new job.

**One owner per start.** ``claim`` gives a queued job to one worker or submission only (under the job's
lock, with its generation); the claim is held until the job's end is recorded, so the same job id queued
twice (a recovery racing a launch, a requeue) starts once.

**A store that cannot be written loses no report.** The hooks never raise StoreUnavailable: what they
could not record is kept by ``engine/deferred.py`` and recorded, in order, once the store can be written.
"""
from __future__ import annotations

import logging
from typing import Callable

from .. import wire
from ..errors import StoreUnavailable
from ..logs import for_job
from ..store import JobRecord

log = logging.getLogger(__name__)


class ManagerHooks:
    #: states in which a manager's event finds its job when a user's cancel, clean or new setup came first
    SUPERSEDED = frozenset({None, wire.SETUP, *wire.TERMINAL_STATES})
    #: a late ``started`` (kept during an outage) may find the job anywhere past queued
    LATE_START = frozenset({*SUPERSEDED, wire.State.RUNNING, wire.State.POSTPROCESSING})

    # -- ownership ------------------------------------------------------------
    def claim(self, manager: str, job_id: str) -> float | None:
        """Take the job's start: its generation when it is queued, not cancelled, not already with a scheduler
        and not claimed by another worker or submission; else None. A queued job whose cancel was recorded
        (a restart put it back in the queue) ends ``cancelled`` here."""
        if self.stopped:
            return None
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            if record is None or record.state != wire.State.QUEUED or record.external_id:
                return None
            key = (manager, job_id, record.created)
            if key in self._claims:
                log.info("job %s [%s]: already being started; this second start is dropped", job_id, manager)
                return None
            if record.cancel_requested:
                self._cancel_queued(manager, job_id, record.created)
                return None
            self._claims.add(key)
            return record.created

    def _cancel_queued(self, manager: str, job_id: str, generation: float) -> None:
        """End a queued job whose cancel was recorded (now, or once the store can be written)."""
        def cancel():
            with self._lock(manager, job_id):
                if self._current(manager, job_id, generation) is not None:
                    self._move(manager, job_id, wire.State.CANCELLED, expect=(wire.State.QUEUED,),
                               settled=self.SUPERSEDED)
        try:
            cancel()
        except StoreUnavailable:
            self.deferred.add(f"job {job_id}: its cancel", cancel)

    def adopted(self, manager: str, job_id: str, generation: float) -> None:
        """Recovery found the job's process (or scheduler job) still there: it is claimed, not to start again."""
        self._claims.add((manager, job_id, generation))

    def release(self, manager: str, job_id: str, generation: float) -> None:
        """Give back a claim without an end (the start could not be recorded; it is launched again later)."""
        self._claims.discard((manager, job_id, generation))

    def defer(self, what: str, retry: Callable[[], None]) -> None:
        """Make ``retry()`` again once the store can be written (for a manager's own steps)."""
        self.deferred.add(what, retry)

    # -- reading --------------------------------------------------------------
    def record(self, manager: str, job_id: str) -> JobRecord | None:
        return self.store.get(manager, job_id)

    def active_jobs(self, manager: str) -> list[JobRecord]:
        return self.store.jobs_in_states((wire.State.QUEUED, wire.State.RUNNING), manager=manager)

    def _current(self, manager: str, job_id: str, generation: float | None) -> JobRecord | None:
        """The job's record, unless it is gone or is a later run than ``generation``."""
        record = self.store.get(manager, job_id)
        if record is None or (generation is not None and record.created != generation):
            if record is not None:
                log.info("job %s [%s]: an event of an earlier run of this job id was ignored", job_id, manager)
            return None
        return record

    # -- events ----------------------------------------------------------------
    @for_job
    def started(self, manager: str, job_id: str, pid: int | None = None, external_id: str | None = None,
                generation: float | None = None) -> bool:
        """The job is running. False: it was cancelled, cleaned or set up afresh meanwhile; stop it. True while
        the daemon stops (the job is left running, to be adopted at the next start) and while the store cannot
        be written (the start is recorded later)."""
        if self.stopped:
            return True
        fields = {}
        if pid is not None:
            fields["pid"] = pid
        if external_id is not None:
            fields["external_id"] = external_id
        try:
            return self._record_started(manager, job_id, generation, fields, self.SUPERSEDED)
        except StoreUnavailable:
            self.deferred.add(f"job {job_id}: its start",
                              lambda: self._record_started(manager, job_id, generation, fields, self.LATE_START))
            return True

    def _record_started(self, manager, job_id, generation, fields, settled) -> bool:
        with self._lock(manager, job_id):
            if self.stopped:
                return True  # stopping while this start was in flight: left running, adopted at the next start
            record = self._current(manager, job_id, generation)
            if record is None:
                return False
            if record.state != wire.State.QUEUED:
                # cancelled (or ended) first: stop what was started. Decided from the record as it is, before
                # any write: a store that cannot be written never turns a cancelled job into one that runs.
                # Recorded late (kept during an outage): the job has moved on meanwhile, nothing to do.
                if settled is not self.LATE_START and record.state not in self.SUPERSEDED:
                    log.warning("job %s [%s]: started while it is %s; stopping it", job_id, manager, record.state)
                return False
            # not waited for: lost in a crash, the job is queued again at the restart, and recovery treats a
            # queued job like a running one (adopts its process from the pid it wrote, or reads its exit code)
            return self._move(manager, job_id, wire.State.RUNNING, expect=(wire.State.QUEUED,), durable=False,
                              settled=settled, **fields) is not None

    @for_job
    def submitted(self, manager: str, job_id: str, external_id: str, generation: float | None = None) -> bool:
        """A scheduler took the job (still queued there) under ``external_id``: recorded durably before the
        answer. False: the job was cancelled, cleaned or set up afresh meanwhile; delete it from the scheduler.
        Raises StoreUnavailable (the caller knows whether to retry or to submit later)."""
        with self._lock(manager, job_id):
            record = self._current(manager, job_id, generation)
            if record is None or record.cancel_requested:
                return False
            if record.external_id == external_id:
                return True  # recorded already (its start, coming first after an outage, took the id along)
            if record.state != wire.State.QUEUED:
                return False
            self.store.update(manager, job_id, external_id=external_id)
            return True

    @for_job
    def finished(self, manager: str, job_id: str, returncode: int | None, message: str | None = None,
                 generation: float | None = None) -> None:
        """The job's process (or scheduler job) ended: recorded now, or once the store can be written."""
        if self.stopped:
            return
        try:
            self._record_finished(manager, job_id, returncode, message, generation)
        except StoreUnavailable:
            self.deferred.add(f"job {job_id}: its end",
                              lambda: self._record_finished(manager, job_id, returncode, message, generation))

    def _record_finished(self, manager, job_id, returncode, message, generation) -> None:
        if self.stopped:
            return
        moved = None
        with self._lock(manager, job_id):
            record = self._current(manager, job_id, generation)
            if record is not None and record.state in (wire.State.QUEUED, wire.State.RUNNING):
                moved = self._end(manager, job_id, record, returncode, message)
            self._claims.discard((manager, job_id, generation if generation is not None else
                                  (record.created if record is not None else None)))
        if moved is not None and moved.state == wire.State.POSTPROCESSING:
            self.staging_pool.submit(self._postprocess, manager, job_id)

    def _end(self, manager, job_id, record, returncode, message) -> JobRecord | None:
        if record.cancel_requested:
            return self._move(manager, job_id, wire.State.CANCELLED, expect=wire.ACTIVE_STATES, returncode=returncode)
        if not self._stager(record.launch_config).stages_out(record):
            # nothing to transfer: through postprocessing to the end in one transaction (one commit,
            # every step still recorded and published)
            failed = message if message is not None else record.message
            final = wire.State.FAILED if failed else wire.State.COMPLETE
            return self._move(manager, job_id, (wire.State.POSTPROCESSING, final),
                              expect=(wire.State.QUEUED, wire.State.RUNNING), returncode=returncode, message=message)
        return self._move(manager, job_id, wire.State.POSTPROCESSING, expect=(wire.State.QUEUED, wire.State.RUNNING),
                          returncode=returncode, message=message)

    @for_job
    def requeue(self, manager: str, job_id: str, generation: float | None = None) -> None:
        """Recovery found a job that never really started: put it back in the queue (a job whose cancel was
        recorded ends ``cancelled`` instead)."""
        try:
            self._requeue(manager, job_id, generation)
        except StoreUnavailable:
            self.deferred.add(f"job {job_id}: its return to the queue",
                              lambda: self._requeue(manager, job_id, generation))

    def _requeue(self, manager, job_id, generation) -> None:
        with self._lock(manager, job_id):
            record = self._current(manager, job_id, generation)
            if record is None:
                return
            self._claims.discard((manager, job_id, record.created))
            if record.cancel_requested:
                self._move(manager, job_id, wire.State.CANCELLED, expect=(wire.State.QUEUED, wire.State.RUNNING),
                           settled=self.SUPERSEDED)
                return
            moved = self._move(manager, job_id, wire.State.QUEUED, expect=(wire.State.QUEUED, wire.State.RUNNING),
                               settled=self.SUPERSEDED, pid=None, external_id=None)
        if moved is not None:
            self.managers[manager].launch(job_id)
