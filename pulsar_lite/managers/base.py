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
    neither side's event is lost to the other. ``generation`` (from :meth:`claim`, or a recovered
    record's ``created``) ties an event to one run of a job id: an event of an earlier run is ignored. No hook
    but ``submitted`` raises StoreUnavailable: what cannot be recorded yet is recorded later."""

    def claim(self, manager: str, job_id: str) -> float | None:
        """Take the job's start (one worker or submission only): its generation, or None when the job is not
        to be started (not queued, cancelled, already claimed, already with a scheduler)."""

    def adopted(self, manager: str, job_id: str, generation: float) -> None:
        """Recovery found the job's process still running: it is claimed and must not start again."""

    def release(self, manager: str, job_id: str, generation: float) -> None:
        """Give a claim back without an end (the job will be launched again)."""

    def defer(self, what: str, retry) -> None:
        """Call ``retry()`` again once the store can be written (it may raise StoreUnavailable again)."""

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

    def may_write(self, job_id: str) -> bool:
        """Whether something this manager started for the job (a process, a scheduler job, a start or a
        submission in flight) may still write into its directory. While it may, the directory is never given
        to another job. A manager that cannot tell says True."""
        return True

    def recover(self, record: JobRecord) -> None:
        """Reconcile a job the store says is queued or running with reality."""
        raise NotImplementedError
