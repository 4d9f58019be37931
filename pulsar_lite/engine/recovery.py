"""Recovery after a restart, in the background: the daemon answers at once, whatever the number of jobs held.

At start the engine reads only the keys of its unfinished jobs (one query), then this thread brings them
to their true state a batch at a time: a queued job goes back to its manager's queue (no write: the store
already says queued), a running one is adopted or resolved by its manager, a staging phase is run again.
Until its batch is reached a job is answered from its stored record, which is never ahead of the truth,
so no client sees a state go backwards. Users' cancels and cleans meanwhile are seen by the batch (it reads
each record afresh) or by the manager's hooks (which check the record under the job's lock).
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

BATCH = 500


class Recovery:
    def __init__(self, engine):
        self.engine = engine
        self.total = 0
        self.done = 0
        self.finished = threading.Event()
        self.started = time.monotonic()
        self.seconds: float | None = None
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
        try:
            for first in range(0, len(keys), BATCH):
                if self.engine.stopped:
                    return
                for record in self.engine.store.get_many(keys[first:first + BATCH]):
                    if record.terminal or record.state not in self.engine.RECOVERED_STATES:
                        continue  # cancelled or cleaned meanwhile, or done by a hook already
                    try:
                        self.engine.recover_job(record)
                    except Exception:
                        log.exception("job %s: recovery failed", record.job_id)
                self.done = min(self.total, first + BATCH)
        finally:
            self.seconds = time.monotonic() - self.started
            self.done = self.total if not self.engine.stopped else self.done
            self.finished.set()
            if self.total:
                log.info("recovery: %d unfinished job(s) brought to their true state in %.2f s", self.total,
                         self.seconds)
