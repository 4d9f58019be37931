"""Stagers: who moves a job's files before and after it runs (Pulsar's remote_staging; the TES face
registers its own in ``JobEngine.stagers``, named by a job's launch config ``stager``)."""
from __future__ import annotations

from .. import staging
from ..store import JobRecord
from .jobdir import JobDirectory
from .status import realized_dynamic_file_sources


class PulsarStager:
    """Pulsar's remote_staging: actions that pull inputs before the job and send outputs after it."""

    @staticmethod
    def needs_preprocessing(launch: dict) -> bool:
        remote_staging = launch.get("remote_staging") or {}
        return bool(isinstance(remote_staging, dict) and remote_staging.get("setup"))

    @staticmethod
    def stages_out(record: JobRecord) -> bool:
        """Whether postprocessing may have transfers to do: an action mapper came with the launch, and
        it can resolve some path to a remote action."""
        remote_staging = (record.launch_config or {}).get("remote_staging") or {}
        if not (isinstance(remote_staging, dict) and remote_staging.get("action_mapper")):
            return False
        try:
            return staging.ActionMapper(remote_staging["action_mapper"]).acts_on_server()
        except Exception:  # let postprocessing report what is wrong with it
            return True

    @staticmethod
    def stage_in(job_dir: JobDirectory, record: JobRecord, policy) -> "staging.StagingStats":
        return staging.preprocess(job_dir, (record.launch_config or {}).get("remote_staging") or {}, policy)

    @staticmethod
    def stage_out(job_dir: JobDirectory, record: JobRecord, policy) -> "staging.StagingStats":
        launch = record.launch_config
        realized = realized_dynamic_file_sources(job_dir, launch.get("dynamic_file_sources"))
        return staging.postprocess(job_dir, launch["remote_staging"], realized, policy)


PULSAR_STAGER = PulsarStager()


class MissingStager:
    """A job of a face that is switched off now: its staging fails the job with the reason."""

    def __init__(self, name: str):
        self.name = name

    def needs_preprocessing(self, launch: dict) -> bool:
        return True

    def stages_out(self, record: JobRecord) -> bool:
        return True

    def stage_in(self, job_dir, record, policy):
        raise RuntimeError(f"the job's stager {self.name!r} is not available (is its face switched off?)")

    stage_out = stage_in
