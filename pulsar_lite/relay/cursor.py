"""Where the consumer is in each topic: the id of the last message handled, on disk.

The file (``<persistence_directory>/relay-cursor-<relay>.json``, one per relay) is replaced atomically
and synced after each batch of handled messages, never before: a crash replays the batch (each setup is
recognised by its job's state, each kill and status request is harmless twice), it never skips one.

A topic seen for the first time starts at the moment the cursor file was made (``<ms>-0``, a Redis/Valkey
stream id), so a first start does not replay a relay's history; messages published while the daemon was
stopped are read at its next start. (A relay on in-memory storage does not know that id and answers with
what it holds from the start of the topic: harmless duplicates.)
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time


class Cursor:
    def __init__(self, directory: str, relay_url: str, synchronous: bool = True):
        digest = hashlib.sha256(relay_url.rstrip("/").encode()).hexdigest()[:12]
        self.path = os.path.join(directory, f"relay-cursor-{digest}.json")
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self.topics: dict[str, str] = {}
        self.origin = f"{int(time.time() * 1000)}-0"
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            self.topics = {str(k): str(v) for k, v in (data.get("topics") or {}).items()}
            self.origin = str(data.get("origin") or self.origin)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            self._write({"url": relay_url, "origin": self.origin, "topics": {}})
        except ValueError:
            # a torn file cannot happen (atomic replace); a hand-edited one: start from its mtime
            self.origin = f"{int(os.path.getmtime(self.path) * 1000)}-0"

    def since(self, topics) -> dict[str, str]:
        with self._lock:
            return {t: self.topics.get(t, self.origin) for t in topics}

    def advance(self, positions: dict[str, str]) -> None:
        """Record handled messages' ids (topic -> last handled id) durably."""
        if not positions:
            return
        with self._lock:
            self.topics.update(positions)
            data = {"origin": self.origin, "topics": dict(self.topics)}
            self._write(data)

    def _write(self, data: dict) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            if self.synchronous:
                os.fdatasync(handle.fileno())
        os.replace(tmp, self.path)
        if self.synchronous:
            fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
