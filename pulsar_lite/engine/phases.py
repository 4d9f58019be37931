"""Server-side staging before and after a job runs (part of ``JobEngine``): the phases run in the staging
pool and move the job on when their transfers end."""
from __future__ import annotations

import logging

from .. import staging, wire
from ..errors import StoreUnavailable
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
        with self._staging.holding((manager, job_id)):
            self._stage_in(manager, job_id)

    def _stage_in(self, manager: str, job_id: str) -> None:
        record = self.store.get(manager, job_id)
        if record is None or record.state != wire.State.PREPROCESSING:
            return
        try:
            self.preprocessor(manager, self.job_directory(manager, job_id), record)
        except Exception as exc:
            log.warning("job %s: preprocessing failed: %s", job_id, exc)
            self._after_phase(manager, job_id, record.created, wire.State.PREPROCESSING, wire.State.FAILED,
                              message=f"staging inputs failed: {exc}", returncode=1)
            return
        self._after_phase(manager, job_id, record.created, wire.State.PREPROCESSING, wire.State.QUEUED)

    @for_job
    def _postprocess(self, manager: str, job_id: str) -> None:
        """Run server-side stage-out, then publish the terminal state."""
        with self._staging.holding((manager, job_id)):
            self._stage_out(manager, job_id)

    def _stage_out(self, manager: str, job_id: str) -> None:
        record = self.store.get(manager, job_id)
        if record is None or record.state != wire.State.POSTPROCESSING:
            return
        if self.live_output is not None:  # the rest of the live output, before the final status is built
            try:
                self.live_output.flush(manager, job_id)
            except Exception:  # a defect: said; the final status carries the streams
                log.exception("job %s: live output's last post failed", job_id)
        try:
            self.postprocessor(manager, self.job_directory(manager, job_id), record)
            final, message = (wire.State.FAILED if record.message else wire.State.COMPLETE), None
        except Exception as exc:
            log.warning("job %s: postprocessing failed: %s", job_id, exc)
            final, message = wire.State.FAILED, f"staging outputs failed: {exc}"
        self._after_phase(manager, job_id, record.created, wire.State.POSTPROCESSING, final, message=message)

    def _after_phase(self, manager: str, job_id: str, generation: float, phase: str, state: str,
                     **fields) -> None:
        """Move the job on from a staging phase; a store that cannot be written records it later (the phase's
        work is not repeated). A clean (or a new setup) during the phase came first: nothing to do."""
        try:
            self._phase_done(manager, job_id, generation, phase, state, fields)
        except StoreUnavailable:
            self.deferred.add(f"job {job_id}: the end of {phase}",
                              lambda: self._phase_done(manager, job_id, generation, phase, state, fields))

    def _phase_done(self, manager, job_id, generation, phase, state, fields) -> None:
        with self._lock(manager, job_id):
            moved = self._current(manager, job_id, generation) is not None and self._move(
                manager, job_id, state, expect=(phase,), settled=self.SUPERSEDED, **fields)
        if moved and state == wire.State.QUEUED:
            self.managers[manager].launch(job_id)

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

    def _note_stats(self, manager: str, job_id: str, **stats) -> None:
        """Record a phase's transfer figures: for information only, so a store that cannot be written skips them."""
        try:
            self.store.update(manager, job_id, **stats)
        except StoreUnavailable:
            log.debug("job %s: staging figures not recorded (the job store cannot be written)", job_id)

    def preprocessor(self, manager: str, job_dir: JobDirectory, record: JobRecord) -> None:
        policy = self._policy(manager, "preprocess")
        stats = self._stager(record.launch_config).stage_in(job_dir, record, policy)
        if self.metrics is not None:
            self.metrics.staged("in", stats.bytes, stats.seconds)
        self._note_stats(manager, job_dir.job_id, stage_in_bytes=stats.bytes, stage_in_seconds=stats.seconds)
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
        self._note_stats(manager, job_dir.job_id, stage_out_bytes=stats.bytes, stage_out_seconds=stats.seconds)
        if stats.files:
            log.info("job %s: staged out %d file(s), %d bytes in %.3fs", job_dir.job_id, stats.files,
                     stats.bytes, stats.seconds)
