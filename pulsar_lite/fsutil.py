"""Atomic file writes: write a temporary file, then rename it into place.

A reader (a job, a client download) never sees half a file, and a crash
leaves only a temporary file behind, which start-up sweeps.
"""
from __future__ import annotations

import os
import random
import shutil
import stat
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from .errors import BadRequest, PayloadTooLarge, RequestTimeout

CHUNK = 1024 * 1024
_TEMPORARY_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: for reading files a job may have replaced: a FIFO in their place must not block the reader
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def _create_temporary(directory: str, prefix: str, mode: int = 0o600) -> tuple[int, str]:
    """Create and open a new file with a random name in ``directory`` (made if missing), with ``mode``."""
    for _ in range(100):
        # unique, not secret: O_EXCL refuses a name that exists (then the next is tried), O_NOFOLLOW a
        # symlink planted there (and the random module needs no system call, unlike secrets)
        path = os.path.join(directory, f"{prefix}{random.getrandbits(48):012x}")
        try:
            return os.open(path, _TEMPORARY_FLAGS, mode), path
        except FileExistsError:
            continue
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
    raise FileExistsError(f"no free temporary name in {directory}")


@contextmanager
def atomic_target(target: str, tmp_dir: str | None = None, prefix: str = ".partial-",
                  durable: bool = False, mode: int = 0o600) -> Iterator[tuple[int, str]]:
    """Yield an open descriptor and the path of a temporary file; on success it replaces ``target``
    (the descriptor is closed either way), on failure it is removed. ``durable``: the file's data is on
    disk before its name appears (so an OS crash or power cut cannot leave ``target`` empty or short
    under a commit that came after it). ``mode``: the file's permissions (less the umask)."""
    fd, tmp = _create_temporary(tmp_dir or os.path.dirname(target), prefix, mode)
    try:
        try:
            yield fd, tmp
            if durable:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_stream(target: str, stream: BinaryIO, length: int | None, limit: int = 0,
                 tmp_dir: str | None = None, prefix: str = ".partial-", durable: bool = False) -> int:
    """Copy ``length`` bytes (or to EOF) from ``stream`` to ``target``, atomically, in 1 MiB chunks."""
    written = 0
    with atomic_target(target, tmp_dir, prefix, durable) as (fd, _tmp):
        remaining = length
        while remaining is None or remaining > 0:
            try:
                chunk = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
            except TimeoutError:
                raise RequestTimeout("request body stalled: the client sent nothing for web_io_timeout "
                                     "seconds; the upload was dropped") from None
            except OSError as exc:
                raise BadRequest(f"request body could not be read after {written} bytes ({exc}); "
                                 f"the upload was dropped") from None
            if not chunk:
                break
            _write_all(fd, chunk)
            written += len(chunk)
            if remaining is not None:
                remaining -= len(chunk)
            if limit and written > limit:
                raise PayloadTooLarge(f"request body larger than max_upload_size ({limit} bytes)")
        if length is not None and written != length:
            raise BadRequest(f"request body ended after {written} of {length} bytes")
    return written


def pread_exactly(fd: int, size: int, offset: int = 0) -> bytes:
    """Up to ``size`` bytes from ``offset`` (fewer only at the end of the file)."""
    parts = []
    while size > 0:
        chunk = os.pread(fd, min(size, CHUNK), offset)
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def open_regular(path: str) -> tuple[int, int] | None:
    """A read-only descriptor on the regular file at ``path`` (the caller closes it) and its size; None
    when it cannot be opened or is something else (a directory, a FIFO, a device a job left there)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info.st_size


def read_bytes(path: str, limit: int | None = None, tail: int = 0, marker: bytes = b"") -> bytes | None:
    """A small regular file's content (None when it cannot be read), at the cost of open, fstat, read(s),
    close (a Python file object adds an fstat, an ioctl and a read at the end). A file longer than
    ``limit`` gives its first ``limit - tail`` bytes, then ``marker`` and its last ``tail`` bytes."""
    opened = open_regular(path)
    if opened is None:
        return None
    fd, size = opened
    try:
        if limit is None or size <= limit:
            return pread_exactly(fd, size)
        head = pread_exactly(fd, limit - tail)
        return head + marker + (pread_exactly(fd, tail, size - tail) if tail else b"")
    except OSError:
        return None
    finally:
        os.close(fd)


def write_bytes(target: str, data: bytes, tmp_dir: str | None = None, durable: bool = False,
                mode: int = 0o600) -> int:
    with atomic_target(target, tmp_dir, durable=durable, mode=mode) as (fd, _tmp):
        _write_all(fd, data)
    return len(data)


def copy_file(source: str, target: str, tmp_dir: str | None = None, durable: bool = False) -> int:
    with atomic_target(target, tmp_dir, durable=durable) as (_fd, tmp):
        shutil.copyfile(source, tmp)  # through its own descriptor: the fdatasync on ours covers the inode
    return os.path.getsize(target)
