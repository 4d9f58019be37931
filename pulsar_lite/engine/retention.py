"""Retention: jobs that no client cleans up are removed after ``job_retention`` seconds.

Galaxy removes a job from the daemon once it has collected it (its ``cleanup_job`` setting). Some jobs
never get that call: the client was set to ``cleanup_job: never``, the Galaxy job was deleted while
the daemon was unreachable, a job was set up and never submitted. Without a limit such jobs stay for
good, their record in the store and their directory under staging (sites running Pulsar delete them
with cron jobs). With ``job_retention`` set, a sweep on the engine's timer thread removes every job
that has been finished, or set up and never submitted, for longer than that, as a client's clean
would (``debug: true`` keeps the directories, as it does for a clean). Active jobs are never touched.
"""
from __future__ import annotations

import logging
import time

from .. import wire

log = logging.getLogger(__name__)

#: states a job may be swept from: set up and never submitted, or finished
SWEPT_STATES = (wire.SETUP, *sorted(wire.TERMINAL_STATES))
#: the longest pause between two sweeps (seconds)
MAX_SWEEP_INTERVAL = 3600.0
#: jobs removed per sweep at most: the timer thread also escalates kills, which must not wait long behind a
#: backlog (a site turning retention on over years of jobs); a full sweep is followed by another a second later
SWEEP_BATCH = 200


def sweep_interval(retention: float) -> float:
    """A tenth of the retention, between 1 s and an hour: no job outstays it by more than a tenth."""
    return min(MAX_SWEEP_INTERVAL, max(1.0, retention / 10))


class RetentionSweeper:
    def __init__(self, engine, retention: float):
        self.engine = engine
        self.retention = retention
        self.interval = sweep_interval(retention)

    def start(self) -> None:
        self.engine.timers.call_later(self.interval, self._tick)

    def sweep(self, now: float | None = None, limit: int | None = None) -> int:
        """Remove the jobs idle since before ``now - retention`` (at most ``limit``, oldest first); returns
        how many went."""
        cutoff = (time.time() if now is None else now) - self.retention
        removed = 0
        for record in self.engine.store.jobs_updated_before(SWEPT_STATES, cutoff, limit):
            if self.engine.expire(record.manager, record.job_id, cutoff):
                removed += 1
                log.info("job %s [%s]: removed, %s and not cleaned up by its client for %.0f s", record.job_id,
                         record.manager, record.state, time.time() - record.updated)
        return removed

    def _tick(self) -> None:
        if self.engine.stopped:
            return
        delay = self.interval
        try:
            if self.sweep(limit=SWEEP_BATCH) >= SWEEP_BATCH:
                delay = 1.0  # more to do: soon, after whatever else the timer thread has waiting
        finally:
            if not self.engine.stopped:
                self.engine.timers.call_later(delay, self._tick)
