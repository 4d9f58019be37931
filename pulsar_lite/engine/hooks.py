"""What managers call: the hooks that report a job's progress (part of ``JobEngine``)."""
from __future__ import annotations

import logging

from .. import wire
from ..logs import for_job
from ..store import JobRecord

log = logging.getLogger(__name__)


class ManagerHooks:
    # -- manager hooks ------------------------------------------------------
    # Every hook that moves a job takes the job's lock, as the user's actions (cancel, clean, setup) do:
    # whichever comes first wins and the other sees its result. A hook may carry the ``generation`` that
    # ``runnable`` handed out (the record's creation time): an event of an earlier run of a job id that
    # was cleaned or set up afresh meanwhile is then ignored instead of moving the new job.

    #: states in which a manager's event finds its job when a user's cancel, clean or new setup came first
    SUPERSEDED = frozenset({None, wire.SETUP, *wire.TERMINAL_STATES})

    def runnable(self, manager: str, job_id: str) -> float | None:
        """The job's generation when it is still queued and wanted (check before starting it), else None."""
        if self.stopped:
            return None
        record = self.store.get(manager, job_id)
        if record is None or record.state != wire.State.QUEUED or record.cancel_requested:
            return None
        return record.created

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

    @for_job
    def started(self, manager: str, job_id: str, pid: int | None = None, external_id: str | None = None,
                generation: float | None = None) -> bool:
        """The job is running. False: it was cancelled, cleaned or set up afresh meanwhile; stop it."""
        fields = {}
        if pid is not None:
            fields["pid"] = pid
        if external_id is not None:
            fields["external_id"] = external_id
        with self._lock(manager, job_id):
            if self._current(manager, job_id, generation) is None:
                return False
            # not waited for: lost in a crash, the job is queued again at the restart, and recovery treats a
            # queued job like a running one (adopts its process from the pid it wrote, or reads its exit code)
            return self._move(manager, job_id, wire.State.RUNNING, expect=(wire.State.QUEUED,), durable=False,
                              settled=self.SUPERSEDED, **fields) is not None

    @for_job
    def submitted(self, manager: str, job_id: str, external_id: str, generation: float | None = None) -> bool:
        """A scheduler took the job (still queued there) under ``external_id``: recorded durably before the
        answer. False: the job was cancelled, cleaned or set up afresh meanwhile; delete it from the scheduler."""
        with self._lock(manager, job_id):
            record = self._current(manager, job_id, generation)
            if record is None or record.state != wire.State.QUEUED or record.cancel_requested:
                return False
            self.store.update(manager, job_id, external_id=external_id)
            return True

    @for_job
    def finished(self, manager: str, job_id: str, returncode: int | None, message: str | None = None,
                 generation: float | None = None) -> None:
        if self.stopped:
            return
        with self._lock(manager, job_id):
            record = self._current(manager, job_id, generation)
            if record is None or record.state not in (wire.State.QUEUED, wire.State.RUNNING):
                return
            if record.cancel_requested:
                self._move(manager, job_id, wire.State.CANCELLED, expect=wire.ACTIVE_STATES, returncode=returncode)
                return
            if not self._stager(record.launch_config).stages_out(record):
                # nothing to transfer: through postprocessing to the end in one transaction (one commit,
                # every step still recorded and published)
                failed = message if message is not None else record.message
                final = wire.State.FAILED if failed else wire.State.COMPLETE
                self._move(manager, job_id, (wire.State.POSTPROCESSING, final),
                           expect=(wire.State.QUEUED, wire.State.RUNNING), returncode=returncode, message=message)
                return
            moved = self._move(manager, job_id, wire.State.POSTPROCESSING,
                               expect=(wire.State.QUEUED, wire.State.RUNNING), returncode=returncode,
                               message=message)
        if moved is not None:
            self.staging_pool.submit(self._postprocess, manager, job_id)

    @for_job
    def requeue(self, manager: str, job_id: str, generation: float | None = None) -> None:
        """Recovery found a job that never really started: put it back in the queue."""
        with self._lock(manager, job_id):
            if self._current(manager, job_id, generation) is None:
                return
            moved = self._move(manager, job_id, wire.State.QUEUED, expect=(wire.State.QUEUED, wire.State.RUNNING),
                               settled=self.SUPERSEDED, pid=None, external_id=None)
        if moved is not None:
            self.managers[manager].launch(job_id)
