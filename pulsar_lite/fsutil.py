"""Atomic file writes: write a temporary file, then rename it into place; and reads below a directory
whose contents a job controls.

A reader (a job, a client download) never sees half a file, and a crash
leaves only a temporary file behind, which start-up sweeps. A file the daemon
reads from a job directory is opened one component at a time below the job
directory (:func:`open_below`), so a symlink the job planted cannot make the
daemon read (and hand out) a file from elsewhere.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import stat
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from .errors import BadRequest, PayloadTooLarge, RequestTimeout

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
_TEMPORARY_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: for reading files a job may have replaced: a FIFO in their place must not block the reader
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
#: a directory on the way down: O_PATH needs only search permission, as the kernel's own walk does
_WALK_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: symlinks followed in one lookup before it fails with ELOOP (the kernel's own limit)
MAX_SYMLINKS = 40


def _create_temporary(directory: str, prefix: str, mode: int = 0o600,
                      dir_fd: int | None = None) -> tuple[int, str]:
    """Create and open a new file with a random name in ``directory`` (made if missing), with ``mode``.
    With ``dir_fd``: in the directory open there, the name returned relative to it (``directory`` only
    names it in an error)."""
    for _ in range(100):
        # unique, not secret: O_EXCL refuses a name that exists (then the next is tried), O_NOFOLLOW a
        # symlink planted there (and the random module needs no system call, unlike secrets)
        name = f"{prefix}{random.getrandbits(48):012x}"
        path = name if dir_fd is not None else os.path.join(directory, name)
        try:
            return os.open(path, _TEMPORARY_FLAGS, mode, dir_fd=dir_fd), path
        except FileExistsError:
            continue
        except FileNotFoundError:
            if dir_fd is not None:
                raise
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


class PathEscapes(BadRequest):
    """A name below a directory leads out of it (through a symlink or '..'): the file is not opened."""


def _components(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


def open_below(root: str, relative: str, flags: int = READ_FLAGS) -> int:
    """A descriptor (the caller closes it) on ``relative`` below the directory ``root`` (or on an absolute
    path that names ``root`` or a path below it), never on a file outside ``root``, whatever symlinks the
    owner of the files below ``root`` plants or swaps in meanwhile.

    Each component is opened with O_NOFOLLOW relative to the descriptor of its parent (``root`` itself is
    trusted and opened by name), so the kernel never follows a symlink below ``root``. A symlink met on the
    way is read and followed here, one component at a time as well, while it stays below ``root``: a
    relative one from where it is, an absolute one if it names ``root`` (or ``root``'s real path) or a
    path below it; '..' never climbs above ``root``. Anything else raises :class:`PathEscapes` (a
    BadRequest); a missing component raises FileNotFoundError, as ``os.open`` does."""
    real_root: str | None = None
    if relative.startswith("/"):
        below = _path_below(relative, root)
        if below is None:
            raise PathEscapes(f"{relative!r} is not below {root}")
        relative = below
    pending = _components(relative)
    stack = [os.open(root, _WALK_FLAGS & ~os.O_NOFOLLOW)]  # the directories walked so far, root first
    links = 0
    try:
        while True:
            if not pending:  # ``relative`` names root itself, or ended in '..'
                return os.open(".", flags, dir_fd=stack[-1])
            part = pending.pop(0)
            if part == "..":
                if len(stack) == 1:
                    raise PathEscapes(f"{relative!r} leads outside {root}")
                os.close(stack.pop())
                continue
            try:
                fd = os.open(part, (flags if not pending else _WALK_FLAGS) | os.O_NOFOLLOW, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                try:
                    target = os.readlink(part, dir_fd=stack[-1])
                except OSError:
                    raise exc from None  # not a symlink: a file where a directory was named
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), relative) from None
                if target.startswith("/"):
                    inside = _path_below(target, root)
                    if inside is None:
                        real_root = real_root or os.path.realpath(root)
                        inside = _path_below(target, real_root)
                    if inside is None:
                        raise PathEscapes(f"{relative!r} leads outside {root} "
                                          f"(symbolic link {part!r} -> {target!r})") from None
                    while len(stack) > 1:
                        os.close(stack.pop())
                    target = inside
                pending[:0] = _components(target)
                continue
            if not pending:
                return fd
            stack.append(fd)
    finally:
        for fd in stack:
            os.close(fd)


def _path_below(path: str, directory: str) -> str | None:
    """``path`` relative to ``directory`` when it is ``directory`` or below it (by name), else None."""
    directory = directory.rstrip("/") or "/"
    if path == directory or path.rstrip("/") == directory:
        return ""
    prefix = directory if directory == "/" else directory + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def open_regular(path: str, root: str | None = None) -> tuple[int, int] | None:
    """A read-only descriptor on the regular file at ``path`` (the caller closes it) and its size; None
    when it cannot be opened or is something else (a directory, a FIFO, a device a job left there).
    With ``root``, ``path`` is below it (relative to it, or absolute) and opened by :func:`open_below`:
    PathEscapes when it leads out of ``root``."""
    try:
        fd = os.open(path, READ_FLAGS) if root is None else open_below(root, path)
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


@contextmanager
def opened_below(root: str, path: str) -> Iterator[str]:
    """For code that opens a file by name itself (libcurl, shutil): the regular file at ``path`` (below
    ``root``), opened by :func:`open_below`, as a name that reaches the file already opened and nothing
    else (``/proc/self/fd/N``, valid until the block ends). FileNotFoundError when it is missing or not a
    regular file, PathEscapes when it leads out of ``root``."""
    fd = open_below(root, path)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def read_bytes(path: str, limit: int | None = None, tail: int = 0, marker: bytes = b"",
               root: str | None = None) -> bytes | None:
    """A small regular file's content (None when it cannot be read), at the cost of open, fstat, read(s),
    close (a Python file object adds an fstat, an ioctl and a read at the end). A file longer than
    ``limit`` gives its first ``limit - tail`` bytes, then ``marker`` and its last ``tail`` bytes. With
    ``root``: ``path`` below it, opened by :func:`open_below` (None, and a warning, when it leads out)."""
    try:
        opened = open_regular(path, root)
    except PathEscapes as exc:
        log.warning("not read: %s", exc)
        return None
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


def open_directory(path: str, root: str | None = None) -> int:
    """A descriptor (the caller closes it) on the directory ``path``, to open, create, rename and remove
    files in by name relative to it (``dir_fd=``): a directory on the way swapped for a symlink afterwards
    cannot send those calls elsewhere. With ``root``: ``path`` is below it, opened by :func:`open_below`
    (PathEscapes when it leads out); without, ``path`` is opened by name (its caller vouches for the way).
    NotADirectoryError when it is something else."""
    if root is None:
        return os.open(path, _WALK_FLAGS & ~os.O_NOFOLLOW)
    return open_below(root, path, _WALK_FLAGS)


def write_bytes_at(dir_fd: int, name: str, data: bytes, mode: int = 0o600) -> int:
    """Replace ``name`` in the directory open at ``dir_fd`` (:func:`open_directory`) with a file holding
    ``data``, atomically: a new file (O_CREAT | O_EXCL | O_NOFOLLOW) renamed over ``name``, which replaces
    whatever is there, a symlink included, and never writes through it."""
    fd, tmp = _create_temporary(f"the directory of {name}", ".partial-", mode, dir_fd=dir_fd)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    return len(data)


def write_bytes(target: str, data: bytes, tmp_dir: str | None = None, durable: bool = False,
                mode: int = 0o600) -> int:
    with atomic_target(target, tmp_dir, durable=durable, mode=mode) as (fd, _tmp):
        _write_all(fd, data)
    return len(data)


def copy_file(source: str, target: str, tmp_dir: str | None = None, durable: bool = False) -> int:
    with atomic_target(target, tmp_dir, durable=durable) as (_fd, tmp):
        shutil.copyfile(source, tmp)  # through its own descriptor: the fdatasync on ours covers the inode
    return os.path.getsize(target)
