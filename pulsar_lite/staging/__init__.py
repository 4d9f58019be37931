"""Server-side staging: stage-in before a job is queued, stage-out after it ends."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from .. import fsutil
from ..errors import NotSupported
from .actions import PermanentStagingError, stage_in, stage_out
from .collect import candidates
from .mapper import LOCAL_ACTIONS, NO_STAGING_ACTIONS, UNSET, ActionMapper

log = logging.getLogger(__name__)


@dataclass
class RetryPolicy:
    """Pulsar's ``*_action_max_retries`` semantics: -1 none, 0 forever, N times."""

    max_retries: int = -1
    interval_start: float = 2.0
    interval_step: float = 2.0
    interval_max: float = 30.0
    #: called before each retry (metrics); set: transfers stop (the daemon is stopping)
    on_retry: Callable[[], None] | None = None
    stopping: threading.Event | None = None

    @classmethod
    def from_manager(cls, manager_config, phase: str) -> "RetryPolicy":
        return cls(*(getattr(manager_config, f"{phase}_action_{k}") for k in
                     ("max_retries", "interval_start", "interval_step", "interval_max")))

    def run(self, function, *args, describe: str = ""):
        attempt = 0
        while True:
            try:
                return function(*args)
            except (PermanentStagingError, NotSupported, ValueError, OSError):
                raise  # local I/O errors (disk full, permissions) and bad input: retrying cannot help
            except Exception as exc:
                attempt += 1
                if self.max_retries < 0 or (self.max_retries > 0 and attempt > self.max_retries) or \
                        (self.stopping is not None and self.stopping.is_set()):
                    raise
                if self.on_retry is not None:
                    self.on_retry()
                delay = min(self.interval_start + self.interval_step * (attempt - 1), self.interval_max)
                log.warning("%s failed (%s); retry %d in %.1fs", describe, exc, attempt, delay)
                time.sleep(delay)


@dataclass
class StagingStats:
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


def preprocess(job_dir, remote_staging: dict, policy: RetryPolicy) -> StagingStats:
    stats = StagingStats()
    started = time.monotonic()
    ssh_key = (remote_staging.get("action_mapper") or {}).get("ssh_key")
    for entry in remote_staging.get("setup") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("action"), dict):
            raise PermanentStagingError(f"malformed staging entry {entry!r}")
        action = dict(entry["action"])
        if ssh_key and action.get("ssh_key") in (None, UNSET):
            action["ssh_key"] = ssh_key
        if action.get("action_type") in NO_STAGING_ACTIONS | LOCAL_ACTIONS:
            continue
        target = job_dir.calculate_path(entry.get("name"), entry.get("type"))
        stats.bytes += stage_in(action, target, policy, root=job_dir.path)
        stats.files += 1
    stats.seconds = time.monotonic() - started
    return stats


def _tolerated(path_type: str, exc: Exception) -> bool:
    """Failures that do not fail the job.

    Galaxy answering 403 means the dataset was deleted meanwhile; a missing
    ``output_workdir`` file is a tool failure Galaxy reports itself.
    """
    if getattr(exc, "status", None) == 403:
        return True
    return path_type == "output_workdir" and isinstance(exc, (FileNotFoundError, PermanentStagingError))


def postprocess(job_dir, remote_staging: dict, realized_sources: list, policy: RetryPolicy) -> StagingStats:
    """Stage out every output whose action is a remote one. Raises on failure.

    Each output is opened below the job directory (fsutil.opened_below) before it is sent, and sent from
    that descriptor: a symlink the job planted among its outputs is followed only while it stays inside
    the job directory, so a job cannot have the daemon send it (or its user) a file from elsewhere."""
    stats = StagingStats()
    if not remote_staging or not remote_staging.get("action_mapper"):
        return stats
    started = time.monotonic()
    mapper = ActionMapper(remote_staging.get("action_mapper"))
    errors = []
    for candidate in candidates(job_dir, remote_staging.get("client_outputs") or {}, realized_sources):
        action = mapper.action(candidate.client_path, candidate.path_type)
        if action["action_type"] in LOCAL_ACTIONS | NO_STAGING_ACTIONS:
            continue
        try:
            with _opened(job_dir, candidate.server_path) as source:
                stats.bytes += stage_out(action, source, policy, name=candidate.server_path, root=job_dir.path)
            stats.files += 1
        except Exception as exc:
            if _tolerated(candidate.path_type, exc):
                log.warning("output %s not collected (tolerated): %s", candidate.server_path, exc)
                continue
            errors.append(f"{candidate.client_path}: {exc}")
    stats.seconds = time.monotonic() - started
    if errors:
        raise PermanentStagingError("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    return stats


@contextmanager
def _opened(job_dir, path: str) -> Iterator[str]:
    try:
        with fsutil.opened_below(job_dir.path, path) as source:
            yield source
    except FileNotFoundError:
        raise PermanentStagingError(f"output {path} does not exist") from None
