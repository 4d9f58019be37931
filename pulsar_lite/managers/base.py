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
    def runnable(self, manager: str, job_id: str) -> bool:
        """The job is still queued and wanted (check before starting it)."""

    def started(self, manager: str, job_id: str, pid: int | None = None, external_id: str | None = None) -> bool:
        """The job is running. False means the job was cancelled meanwhile: stop it."""

    def finished(self, manager: str, job_id: str, returncode: int | None, message: str | None = None) -> None:
        """The job script ended (returncode None = unknown)."""

    def requeue(self, manager: str, job_id: str) -> None:
        """Recovery found a job that never really started: put it back in the queue."""

    def job_directory(self, manager: str, job_id: str) -> JobDirectory:
        ...


class Manager:
    """Base class; subclasses implement launch/kill/recover."""

    def __init__(self, config: ManagerConfig, hooks: ManagerHooks, timers: Timers):
        self.name = config.name
        self.config = config
        self.hooks = hooks
        self.timers = timers

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def launch(self, job_id: str) -> None:
        raise NotImplementedError

    def kill(self, record: JobRecord) -> None:
        raise NotImplementedError

    def recover(self, record: JobRecord) -> None:
        """Reconcile a job the store says is queued or running with reality."""
        raise NotImplementedError
