"""Changes the store could not record during an outage, made as soon as it can be written again.

A manager's report (a job started, ended, was accepted by a scheduler) must never be lost to a store that
cannot be written for a while (a full disk, a lock held past the busy timeout, an I/O error), and no thread
may die of it. Such a report is kept here, in order, and made again once the store can be written.

One thread of its own (a probe may wait up to ``store_busy_timeout``: never on the timers thread, whose kill
escalations must not wait behind it) watches every outage, however it was noticed (a request's write counts
too): while the store's health says it fails, it makes a small probe write every ``interval`` seconds; when
one goes through (or any other write does), the episode is over and the kept reports are made, in order. A
report that fails again waits, with every later one, for the next try. A daemon that stops meanwhile loses
nothing the next start cannot find again: the store still holds the job as it was, and recovery reads the
truth from the job's files and its scheduler.
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
    def __init__(self, store, timers=None, interval: float = PROBE_INTERVAL):
        self.store = store
        self.interval = interval
        self.stopped = False
        self._pending: deque[tuple[str, Callable[[], None]]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        store.health.on_failed = self._wake
        store.health.on_recovered = self._wake

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, what: str, retry: Callable[[], None]) -> None:
        """Make ``retry()`` again once the store can be written (it may raise StoreUnavailable again)."""
        log.debug("%s is recorded once the job store can be written again", what)
        with self._cond:
            self._pending.append((what, retry))
        self._wake()

    def stop(self) -> None:
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        with self._cond:
            if self._thread is None and not self.stopped:
                self._thread = threading.Thread(target=self._run, name="pulsar-lite-deferred", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        health = self.store.health
        while not self.stopped:
            with self._cond:
                if not self._pending and not health.failing:
                    self._thread = None  # nothing to watch: the next outage or report starts another
                    return
            if health.failing:
                try:
                    self.store.probe()
                except Exception as exc:
                    if not isinstance(exc, StoreUnavailable) and not self.stopped:
                        log.exception("job store probe failed")
                    with self._cond:
                        self._cond.wait(self.interval)
                    continue
            if not self._flush():
                with self._cond:
                    self._cond.wait(self.interval)

    def _flush(self) -> bool:
        """Make every kept report once, in order; False when the store refused one (it and every later one wait
        for the next try)."""
        with self._cond:
            batch = list(self._pending)
            self._pending.clear()
        for index, (what, retry) in enumerate(batch):
            if self.stopped:
                return True
            try:
                retry()
            except StoreUnavailable:
                with self._cond:  # before any report kept meanwhile: the order of each job's reports is kept
                    self._pending.extendleft(reversed(batch[index:]))
                return False
            except Exception:
                log.exception("%s could not be recorded", what)
        return True
