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
import threading


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
