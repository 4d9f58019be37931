"""Server side of Pulsar's experimental input cache (``file_cache_dir``).

A client asks whether it should upload a path (``PUT /cache``), uploads it
once (``POST /cache``), and later stages it into jobs with ``cache_token``.
Tokens are ``sha256("IP:<ip>:<path>")`` so two clients never share entries.
"""
from __future__ import annotations

import hashlib
import os
import re

from .. import fsutil
from ..errors import BadRequest, NotFound

_TOKEN = re.compile(r"^[0-9a-f]{64}$")


class FileCache:
    def __init__(self, directory: str, store, durable: bool = True):
        self.directory = directory
        self.store = store
        self.durable = durable  # entries on disk before they are ready (jobs copy them in as inputs)
        os.makedirs(directory, exist_ok=True)

    @staticmethod
    def token(ip: str, path: str) -> str:
        return hashlib.sha256(f"IP:{ip}:{path}".encode()).hexdigest()

    def _path(self, token: str) -> str:
        if not _TOKEN.match(token or ""):
            raise BadRequest(f"invalid cache token {token!r}")
        return os.path.join(self.directory, token)

    def status(self, ip: str, path: str) -> dict:
        token = self.token(ip, path)
        return {"token": token, "ready": os.path.exists(self._path(token))}

    def required(self, ip: str, path: str) -> bool:
        return self.store.cache_claim(self.token(ip, path))

    def insert(self, ip: str, path: str, stream, length: int) -> None:
        fsutil.write_stream(self._path(self.token(ip, path)), stream, length, tmp_dir=self.directory,
                            durable=self.durable)

    def cached_path(self, token: str) -> str:
        path = self._path(token)
        if not os.path.exists(path):
            raise NotFound(f"nothing is cached under token {token}")
        return path
