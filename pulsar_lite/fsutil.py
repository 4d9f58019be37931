"""Atomic file writes: write a temporary file, then rename it into place.

A reader (a job, a client download) never sees half a file, and a crash
leaves only a temporary file behind, which start-up sweeps.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from .errors import BadRequest, PayloadTooLarge

CHUNK = 1024 * 1024


@contextmanager
def atomic_target(target: str, tmp_dir: str | None = None, prefix: str = ".partial-") -> Iterator[str]:
    """Yield a temporary path; on success it replaces ``target``, on failure it is removed."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or os.path.dirname(target), prefix=prefix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_stream(target: str, stream: BinaryIO, length: int | None, limit: int = 0,
                 tmp_dir: str | None = None, prefix: str = ".partial-") -> int:
    """Copy ``length`` bytes (or to EOF) from ``stream`` to ``target``, atomically, in 1 MiB chunks."""
    written = 0
    with atomic_target(target, tmp_dir, prefix) as tmp, open(tmp, "wb") as handle:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            handle.write(chunk)
            written += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
            if limit and written > limit:
                raise PayloadTooLarge(f"request body larger than max_upload_size ({limit} bytes)")
        if length is not None and written != length:
            raise BadRequest(f"request body ended after {written} of {length} bytes")
    return written


def write_bytes(target: str, data: bytes, tmp_dir: str | None = None) -> int:
    with atomic_target(target, tmp_dir) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return len(data)


def copy_file(source: str, target: str, tmp_dir: str | None = None) -> int:
    with atomic_target(target, tmp_dir) as tmp:
        shutil.copyfile(source, tmp)
    return os.path.getsize(target)
