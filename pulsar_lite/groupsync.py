"""Group commit for an SQLite database in WAL mode.

With ``synchronous=FULL`` SQLite fsyncs the write-ahead log inside every COMMIT, while
holding the write lock: concurrent jobs queue up behind one fsync each. Here the
connection runs with ``synchronous=NORMAL`` (a COMMIT only appends to the log) and a
caller that needs durability waits, after releasing the write lock, until the log has
been fsynced past its commit. One fsync covers every commit appended before it began,
so threads that commit together share it. The log is append-only, so when a commit is
on disk every commit before it is too: the result is as durable as FULL, for every
caller that waits, at a fraction of the fsyncs.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator


class GroupSync:
    def __init__(self, database_path: str):
        # the log exists from the first write of a WAL database and is only removed when the last
        # connection closes; the daemon holds its connection for its whole life
        self._fd = os.open(database_path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        directory = os.open(os.path.dirname(os.path.abspath(database_path)), os.O_RDONLY)
        try:
            os.fsync(directory)  # the log's directory entry
        finally:
            os.close(directory)
        self._cond = threading.Condition()
        self._committed = 0  # commits appended to the log (tickets handed out)
        self._synced = 0  # commits known to be on disk
        self._busy = False
        self.fsyncs = 0  # for tests and metrics

    def committed(self) -> int:
        """Call right after a COMMIT, still under the write lock: the commit's ticket."""
        with self._cond:
            self._committed += 1
            return self._committed

    def wait_committed(self) -> None:
        """Return once every commit made so far is on disk (at once when the last fsync covered them)."""
        with self._cond:
            ticket = self._committed
        self.wait(ticket)

    def wait(self, ticket: int) -> None:
        """Return once the commit with ``ticket`` is on disk (sharing an fsync when one is running)."""
        with self._cond:
            while self._synced < ticket:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                target = self._committed
                self._cond.release()
                try:
                    os.fdatasync(self._fd)  # as SQLite does: data and size, not timestamps
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
                self.fsyncs += 1
                self._synced = max(self._synced, target)

    def close(self) -> None:
        os.close(self._fd)


def open_database(path: str, schema: str, synchronous: str = "full",
                  timeout: float = 30.0) -> tuple[sqlite3.Connection, GroupSync | None]:
    """A connection in WAL mode with ``schema`` applied, and its GroupSync when ``synchronous`` is
    "full" (commits then made durable by group commit, outside COMMIT); None for "normal"."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db, GroupSync(path) if synchronous.upper() == "FULL" else None


@contextmanager
def transaction(db: sqlite3.Connection, lock: threading.Lock, sync: GroupSync | None,
                durable: bool = True, on_commit=None, on_unsynced=None) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT under ``lock`` (then ``on_commit()``, still under it); then, unless
    ``durable`` is False (a commit whose loss only repeats work: a re-routed outbox row, a re-published
    message), wait outside the lock until ``sync`` has the commit on disk (no wait without ``sync``:
    synchronous "normal").

    A COMMIT that fails is rolled back (else the connection would stay inside the transaction and every
    later BEGIN would fail). An fsync that fails after the COMMIT does not undo it: the change is made and
    every reader sees it, so it is not reported as a failed write; ``on_unsynced(exc)`` is told instead
    (without one, the error is raised)."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the first error is the one to report; SQLite may have rolled back itself
            raise
        if on_commit is not None:
            on_commit()
        ticket = sync.committed() if sync is not None else None
    if durable and ticket is not None:
        try:
            sync.wait(ticket)
        except OSError as exc:
            if on_unsynced is None:
                raise
            on_unsynced(exc)
