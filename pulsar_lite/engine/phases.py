"""Server-side staging before and after a job runs (part of ``JobEngine``): the phases run in the staging
pool and move the job on when their transfers end."""
from __future__ import annotations

import logging

from .. import staging, wire
from ..logs import for_job
from ..store import JobRecord
from .jobdir import JobDirectory
from .stagers import PULSAR_STAGER, MissingStager

log = logging.getLogger(__name__)


class StagingPhases:
    # -- staging phases -----------------------------------------------------
    @for_job
    def _preprocess(self, manager: str, job_id: str) -> None:
        """Run server-side stage-in, then queue the job."""
        record = self.store.get(manager, job_id)
        if record is None or record.state != wire.State.PREPROCESSING:
            return
        try:
            self.preprocessor(manager, self.job_directory(manager, job_id), record)
        except Exception as exc:
            log.warning("job %s: preprocessing failed: %s", job_id, exc)
            with self._lock(manager, job_id):
                if self._current(manager, job_id, record.created) is not None:
                    self._move(manager, job_id, wire.State.FAILED, expect=(wire.State.PREPROCESSING,), returncode=1,
                               message=f"staging inputs failed: {exc}", settled=self.SUPERSEDED)
            return
        with self._lock(manager, job_id):
            moved = self._current(manager, job_id, record.created) is not None and self._move(
                manager, job_id, wire.State.QUEUED, expect=(wire.State.PREPROCESSING,), settled=self.SUPERSEDED)
        if moved:
            self.managers[manager].launch(job_id)

    @for_job
    def _postprocess(self, manager: str, job_id: str) -> None:
        """Run server-side stage-out, then publish the terminal state."""
        record = self.store.get(manager, job_id)
        if record is None or record.state != wire.State.POSTPROCESSING:
            return
        try:
            self.postprocessor(manager, self.job_directory(manager, job_id), record)
            final, message = (wire.State.FAILED if record.message else wire.State.COMPLETE), None
        except Exception as exc:
            log.warning("job %s: postprocessing failed: %s", job_id, exc)
            final, message = wire.State.FAILED, f"staging outputs failed: {exc}"
        with self._lock(manager, job_id):  # a clean (or a new setup) during stage-out came first: nothing to do
            if self._current(manager, job_id, record.created) is not None:
                self._move(manager, job_id, final, expect=(wire.State.POSTPROCESSING,), message=message,
                           settled=self.SUPERSEDED)

    # -- server-side staging ----------------------------------------------------
    def _stager(self, launch: dict | None):
        name = (launch or {}).get("stager")
        if name is None:
            return PULSAR_STAGER
        return self.stagers.get(name) or MissingStager(name)

    def _policy(self, manager: str, phase: str) -> "staging.RetryPolicy":
        policy = staging.RetryPolicy.from_manager(self.manager_config(manager), phase)
        policy.stopping = self.stopping
        if self.metrics is not None:
            policy.on_retry = self.metrics.retries.inc
        return policy

    def preprocessor(self, manager: str, job_dir: JobDirectory, record: JobRecord) -> None:
        policy = self._policy(manager, "preprocess")
        stats = self._stager(record.launch_config).stage_in(job_dir, record, policy)
        if self.metrics is not None:
            self.metrics.staged("in", stats.bytes, stats.seconds)
        self.store.update(manager, job_dir.job_id, stage_in_bytes=stats.bytes, stage_in_seconds=stats.seconds)
        log.info("job %s: staged in %d file(s), %d bytes in %.3fs", job_dir.job_id, stats.files, stats.bytes,
                 stats.seconds)

    def postprocessor(self, manager: str, job_dir: JobDirectory, record: JobRecord) -> None:
        stager = self._stager(record.launch_config)
        if not stager.stages_out(record):
            return
        policy = self._policy(manager, "postprocess")
        stats = stager.stage_out(job_dir, record, policy)
        if self.metrics is not None:
            self.metrics.staged("out", stats.bytes, stats.seconds)
        self.store.update(manager, job_dir.job_id, stage_out_bytes=stats.bytes, stage_out_seconds=stats.seconds)
        if stats.files:
            log.info("job %s: staged out %d file(s), %d bytes in %.3fs", job_dir.job_id, stats.files,
                     stats.bytes, stats.seconds)
