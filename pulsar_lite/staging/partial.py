"""The partial file of a download (``<target>.part``), shared by the http(s) and ftp(s) downloads: appended
to, resumed from, and never opened through a symlink."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat

log = logging.getLogger(__name__)


#: the partial file, appended to (and read for its checksum): never through a symlink; a FIFO does not block
PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_part(part: str, directory: int, fail) -> int:
    """A descriptor to append to ``part`` (created if missing) in the directory open at ``directory``: the
    partial file of an earlier attempt, or a new one when something else is there. ``fail(detail)``: the
    exception to raise when neither can be had."""
    name = os.path.basename(part)
    flags = PART_FLAGS
    for _ in range(2):
        try:
            fd = os.open(name, flags, 0o666, dir_fd=directory)
        except OSError as exc:
            if exc.errno != errno.ELOOP or flags & os.O_EXCL:
                raise fail(f"cannot write {part}: {exc.strerror}") from None
            what = "a symbolic link"
        else:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "a file with other hard links"
            if flags & os.O_EXCL:
                break
        log.warning("%s is %s, not a partial download: removed (not followed); the download starts anew",
                    part, what)
        try:
            os.unlink(name, dir_fd=directory)  # the name only: unlink never follows a symlink
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise fail(f"cannot write {part}: it is {what} and cannot be removed ({exc.strerror})") from None
        flags |= os.O_EXCL  # a file of our own, or a clear failure if something took the name again
    raise fail(f"cannot write {part}: something other than a partial download keeps appearing there")


def sha256(fd: int) -> str:
    """The SHA-256 of the file open at ``fd`` (read with pread: the descriptor's offset is left alone)."""
    digest = hashlib.sha256()
    offset = 0
    while True:
        chunk = os.pread(fd, 1024 * 1024, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)

