"""Changes the store could not record during an outage, made as soon as it can be written again.

A manager's report (a job started, ended, was accepted by a scheduler) must never be lost to a store that
cannot be written for a while (a full disk, a lock held past the busy timeout, an I/O error), and no thread
may die of it. Such a report is kept here, in order, and made again: right after any write succeeds (the
store's health says the outage is over), or when a small probe write every ``interval`` seconds goes
through. A report that fails again waits for the next try. A daemon that stops meanwhile loses nothing the
next start cannot find again: the store still holds the job as it was, and recovery reads the truth from the
job's files and its scheduler.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

from ..errors import StoreUnavailable

log = logging.getLogger(__name__)

#: seconds between two probe writes while the store cannot be written
PROBE_INTERVAL = 2.0


class Deferred:
    def __init__(self, store, timers, interval: float = PROBE_INTERVAL):
        self.store = store
        self.timers = timers
        self.interval = interval
        self.stopped = False
        self._pending: deque[tuple[str, Callable[[], None]]] = deque()
        self._lock = threading.Lock()
        self._probing = False
        self._running = threading.Lock()  # one retry pass at a time, so the order of reports is kept
        store.health.on_recovered = self._recovered

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, what: str, retry: Callable[[], None]) -> None:
        """Make ``retry()`` again once the store can be written (it may raise StoreUnavailable again)."""
        log.debug("%s is recorded once the job store can be written again", what)
        with self._lock:
            self._pending.append((what, retry))
            start_probe = not self._probing
            self._probing = True
        if start_probe:
            self.timers.call_later(self.interval, self._probe)

    def _recovered(self) -> None:
        if self._pending:
            self.timers.call_later(0, self.run)  # not on the writer's thread: it may hold a job's lock

    def _probe(self) -> None:
        if self.stopped:
            return
        if self._pending:
            try:
                self.store.probe()
            except StoreUnavailable:
                self.timers.call_later(self.interval, self._probe)
                return
            except Exception:  # a closed store at shutdown, or a defect: never a reason to stop retrying
                log.exception("job store probe failed")
                self.timers.call_later(self.interval, self._probe)
                return
            self.run()
        with self._lock:
            if self._pending:
                self.timers.call_later(self.interval, self._probe)
            else:
                self._probing = False

    def run(self) -> None:
        """Make every kept report once, in order; the ones that fail again are kept for the next try."""
        if self.stopped or not self._running.acquire(blocking=False):
            return
        try:
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            for index, (what, retry) in enumerate(batch):
                if self.stopped:
                    return
                try:
                    retry()
                except StoreUnavailable:
                    with self._lock:  # it and every later report wait, in their order, before any newer one
                        self._pending.extendleft(reversed(batch[index:]))
                    return
                except Exception:
                    log.exception("%s could not be recorded", what)
        finally:
            self._running.release()
            with self._lock:
                if self._pending and not self._probing:
                    self._probing = True
                    self.timers.call_later(self.interval, self._probe)
