"""Recovery after a restart, in the background: the daemon answers at once, whatever the number of jobs held.

At start the engine reads only the keys of its unfinished jobs (one query), then this thread brings them
to their true state a batch at a time: a queued job goes back to its manager's queue (no write: the store
already says queued), a running one is adopted or resolved by its manager, a staging phase is run again.
Until its batch is reached a job is answered from its stored record, which is never ahead of the truth,
so no client sees a state go backwards. Each job is recovered under its lock from its record as it is then
(``engine.recover_job``), so a user's cancel or clean meanwhile is never overwritten by the batch's copy.

A store that cannot be read or written stops nothing for good: the job at hand is tried again (every
``RETRY`` seconds) until it goes through, and recovery counts as finished (``/readyz``) only once every job
held at the start has really been brought to its true state.
"""
from __future__ import annotations

import logging
import threading
import time

from ..errors import StoreUnavailable

log = logging.getLogger(__name__)

BATCH = 500
#: seconds between two tries of a job whose recovery the store refused
RETRY = 2.0


class Recovery:
    def __init__(self, engine):
        self.engine = engine
        self.total = 0
        self.done = 0
        self.finished = threading.Event()
        self.started = time.monotonic()
        self.seconds: float | None = None
        #: why recovery is waiting (the store refused it), else None
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, background: bool = True) -> None:
        keys = self.engine.store.active_keys()
        self.total = len(keys)
        if not background:
            self._run(keys)
            return
        self._thread = threading.Thread(target=self._run, args=(keys,), name="pulsar-lite-recovery", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    @property
    def remaining(self) -> int:
        return self.total - self.done

    def _run(self, keys: list[tuple[str, str]]) -> None:
        stopping = self.engine.stopping
        try:
            first = 0
            while first < len(keys):
                if self.engine.stopped:
                    return
                try:
                    records = self.engine.store.get_many(keys[first:first + BATCH])
                except Exception as exc:
                    self._failed(f"reading jobs {first + 1}-{min(len(keys), first + BATCH)}", exc)
                    stopping.wait(RETRY)
                    continue
                for record in records:
                    while not self._recover(record):
                        if stopping.wait(RETRY):
                            return
                first += BATCH
                self.done = min(self.total, first)
            self.error = None
            self.finished.set()
        finally:
            self.seconds = time.monotonic() - self.started
            if self.total and self.finished.is_set():
                log.info("recovery: %d unfinished job(s) brought to their true state in %.2f s", self.total,
                         self.seconds)

    def _recover(self, record) -> bool:
        """Recover one job; False when the store refused it (to be tried again)."""
        if record.terminal or record.state not in self.engine.RECOVERED_STATES:
            return True  # cancelled or cleaned meanwhile, or done by a hook already
        try:
            self.engine.recover_job(record)
        except StoreUnavailable as exc:
            self._failed(f"job {record.job_id}", exc)
            return False
        except Exception:
            log.exception("job %s: recovery failed", record.job_id)
        if self.error is not None:
            log.warning("recovery goes on: the job store can be used again")
            self.error = None
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        """Say once (until it works again) that recovery waits for the store."""
        if self.error is None:
            log.error("recovery waits for the job store (%s: %s); it goes on by itself once the store can be "
                      "used again", what, exc)
        self.error = f"{what}: {exc}"
