"""Whether the job store can be written: a write that fails is an outage the daemon survives and reports.

The store tells this object about every write: a failure (disk full, "database is locked" past the busy
timeout, an I/O error, an fsync that failed after a commit) opens an *episode*, logged once with its cause;
the first write that succeeds afterwards closes it, logged once with its length. ``/readyz`` answers 503
while an episode is open, ``/metrics`` counts the failures, and the engine retries what it could not record
(``engine/deferred.py``) until a write goes through.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time

log = logging.getLogger("pulsar_lite.store")

#: sqlite3 errors that are the caller's, not the store's health (a duplicate key, a closed store, misuse)
_NOT_AN_OUTAGE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def is_outage(exc: BaseException) -> bool:
    """True for an error that means the store could not write (and may be able to later)."""
    if isinstance(exc, _NOT_AN_OUTAGE):
        return False
    return isinstance(exc, (sqlite3.DatabaseError, OSError))


def is_unwritable(exc: BaseException) -> bool:
    """The job store (StoreUnavailable) or another SQLite file of the daemon's (an SQLite error: locked, full,
    an I/O error) cannot be written just now. Not any OSError: a bad file name in a message, a broker's
    timeout are not outages of the store."""
    from .errors import StoreUnavailable

    return isinstance(exc, StoreUnavailable) or (isinstance(exc, sqlite3.DatabaseError) and is_outage(exc))


def describe(exc: BaseException) -> str:
    """One line naming the error (sqlite3's own words, or the OS error's)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


class StoreHealth:
    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        #: time.time() when the open episode began; None while writes succeed
        self.failing_since: float | None = None
        #: the last failure's description (kept after the episode for doctor/diagnostics)
        self.error: str | None = None
        #: failed writes since start (the metric)
        self.failures = 0
        #: failures of the current episode
        self.episode_failures = 0
        #: an fsync failed after its commit: only a write that is synced again ends the episode
        self._unsynced = False
        #: called with no argument when an episode begins and when it ends (engine/deferred.py watches them)
        self.on_failed = None
        self.on_recovered = None

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, exc: BaseException, unsynced: bool = False) -> None:
        with self._lock:
            self.failures += 1
            self.episode_failures += 1
            self.error = describe(exc)
            self._unsynced = self._unsynced or unsynced
            if self.failing_since is not None:
                return
            self.failing_since = time.time()
        log.error("the job store %s cannot be written: %s. Jobs keep running; their changes are recorded as soon "
                  "as it can be written again (/readyz answers 503 until then)", self.path, self.error)
        callback = self.on_failed
        if callback is not None:
            callback()

    def succeeded(self, synced: bool) -> None:
        """A write committed (``synced``: and reached the disk, or needed not to)."""
        if self.failing_since is None:
            return
        with self._lock:
            if self.failing_since is None or (self._unsynced and not synced):
                return
            seconds = time.time() - self.failing_since
            failures = self.episode_failures
            self.failing_since = None
            self.episode_failures = 0
            self._unsynced = False
        log.warning("the job store %s can be written again after %.1f s (%d write(s) failed meanwhile)", self.path,
                    seconds, failures)
        callback = self.on_recovered
        if callback is not None:
            callback()

    def status(self) -> dict:
        return {"writable": not self.failing, "failing_since": self.failing_since, "error": self.error,
                "failures": self.failures}
