"""Work in flight, counted by key: "is something being done for this job right now?".

A job's directory is not handed to another job while something may still write into it: a staging phase, a
worker starting its script, a submission to a scheduler. Each marks its job here for as long as it runs;
two at once for one key count as two, so the second to end does not unmark the first.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Hashable, Iterator


class InFlight:
    def __init__(self):
        self._counts: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._counts

    @contextmanager
    def holding(self, key: Hashable) -> Iterator[None]:
        """``key`` is in flight until the block ends."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._counts.pop(key) - 1
                if left:
                    self._counts[key] = left
