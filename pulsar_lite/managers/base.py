"""The contract between the job engine and a manager (a way to run jobs).

The engine owns state; a manager only runs job scripts and reports through
:class:`ManagerHooks`. Managers never write the store themselves.
"""
from __future__ import annotations

from typing import Protocol

from ..config import ManagerConfig
from ..engine.jobdir import JobDirectory
from ..engine.timers import Timers
from ..store import JobRecord


class ManagerHooks(Protocol):
    """What a manager tells the engine. Each hook takes the job's lock, as users' cancels and cleans do, so
    neither side's event is lost to the other. ``generation`` (from :meth:`runnable`, or a recovered
    record's ``created``) ties an event to one run of a job id: an event of an earlier run is ignored."""

    def runnable(self, manager: str, job_id: str) -> float | None:
        """The job's generation while it is still queued and wanted (check before starting it), else None."""

    def started(self, manager: str, job_id: str, pid: int | None = None, external_id: str | None = None,
                generation: float | None = None) -> bool:
        """The job is running. False means the job was cancelled meanwhile: stop it."""

    def submitted(self, manager: str, job_id: str, external_id: str, generation: float | None = None) -> bool:
        """A scheduler holds the job under ``external_id`` (recorded). False: cancelled meanwhile, delete it."""

    def finished(self, manager: str, job_id: str, returncode: int | None, message: str | None = None,
                 generation: float | None = None) -> None:
        """The job script ended (returncode None = unknown; a message makes the job ``failed``)."""

    def requeue(self, manager: str, job_id: str, generation: float | None = None) -> None:
        """Recovery found a job that never really started: put it back in the queue."""

    def job_directory(self, manager: str, job_id: str) -> JobDirectory:
        ...

    def record(self, manager: str, job_id: str) -> JobRecord | None:
        """The job's stored record (read only)."""

    def active_jobs(self, manager: str) -> list[JobRecord]:
        """The manager's jobs the store holds as queued or running (read only; for reconcile passes)."""

    def recovered(self) -> bool:
        """Whether the recovery after the start has brought every job held to its true state."""


class Manager:
    """Base class; subclasses implement launch/kill/recover."""

    def __init__(self, config: ManagerConfig, hooks: ManagerHooks, timers: Timers):
        self.name = config.name
        self.config = config
        self.hooks = hooks
        self.timers = timers

    def start(self) -> None:
        """Before recovery: make what ``launch`` and ``recover`` need."""

    def start_monitoring(self) -> None:
        """After every job was recovered: start following jobs (start-up order: store, managers, recovery,
        monitoring, then the transports)."""

    def script_headers(self, job_id: str, job_directory: str, launch: dict) -> str:
        """Lines placed right after the job script's ``#!`` line (a scheduler's directives)."""
        return ""

    def stop(self) -> None:
        pass

    def launch(self, job_id: str) -> None:
        raise NotImplementedError

    def kill(self, record: JobRecord) -> None:
        raise NotImplementedError

    def recover(self, record: JobRecord) -> None:
        """Reconcile a job the store says is queued or running with reality."""
        raise NotImplementedError
