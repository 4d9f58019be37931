"""Job directory layout and the safe mapping of client names to paths.

Every path a client names is checked here: no NUL, no ``..`` component, no
absolute name, and the resolved path (symlinks followed) must stay inside
the directory of its type. Violations raise :class:`BadRequest`.

Files the daemon reads from a job directory (a download, a stream, a dynamic
file source: the job may have replaced any of them with a symlink) are not
checked and opened later but opened below the job directory by
:func:`pulsar_lite.fsutil.open_below`: a symlink is followed only while it
stays inside the job directory (a tool's output that links to its input is
served, a link to anything else is refused).
"""
from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from typing import BinaryIO

from .. import fsutil, wire
from ..errors import BadRequest, NotFound
from .dirpool import TREE, DirectoryPool


def check_job_id(job_id: str | None) -> str:
    if not job_id:
        raise BadRequest("missing parameter: job_id")
    if "\x00" in job_id or not wire.valid_job_id(job_id):
        raise BadRequest(f"invalid job id {job_id!r}: use letters, digits, '_', '-' and '.' only")
    return job_id


def clean_name(name: str | None) -> list[str]:
    """Split a client (POSIX) name into safe components or raise BadRequest."""
    if name is None or name == "":
        raise BadRequest("missing parameter: name")
    if "\x00" in name:
        raise BadRequest("invalid file name: contains a NUL byte")
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise BadRequest(f"invalid file name {name!r}: absolute paths are not allowed")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadRequest(f"invalid file name {name!r}: '..' is not allowed")
    if not parts:
        raise BadRequest(f"invalid file name {name!r}")
    return parts


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` (``directory`` joined with clean components) resolves, symlinks followed, to
    ``directory`` or below it. Without a symlink from ``directory`` down it does (one lstat per existing
    component); with one, both sides are resolved in full."""
    if _no_symlink_below(path, directory):
        return True
    real_dir = os.path.realpath(directory)
    real = os.path.realpath(path)
    return real == real_dir or real.startswith(real_dir + os.sep)


def _no_symlink_below(path: str, directory: str) -> bool:
    if path != directory and not path.startswith(directory + os.sep):
        return False
    current = directory
    for part in [""] + path[len(directory) + 1:].split(os.sep):
        if part:
            current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return False
        except FileNotFoundError:
            return True  # nothing exists from here down, so nothing can point elsewhere
        except OSError:
            return False
    return True


class JobDirectory:
    """The on-disk directory of one job: ``<staging>/<job_id>/``."""

    def __init__(self, staging_directory: str, job_id: str, pool: DirectoryPool | None = None):
        self.staging_directory = staging_directory
        self.job_id = check_job_id(job_id)
        self.path = os.path.join(staging_directory, job_id)
        self.pool = pool

    # standard locations ----------------------------------------------------
    def sub(self, name: str) -> str:
        return os.path.join(self.path, name) if name else self.path

    @property
    def working(self) -> str:
        return self.sub("working")

    @property
    def metadata(self) -> str:
        return self.sub("metadata")

    @property
    def outputs(self) -> str:
        return self.sub("outputs")

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def create(self, mode: int | None = None) -> None:
        """Make sure the job directory and its standard tree exist (a recycled tree when there is one)."""
        if not (self.pool is not None and not os.path.lexists(self.path) and self.pool.take(self.path)):
            try:
                os.mkdir(self.path)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(self.path, exist_ok=True)
            for sub in TREE:
                try:
                    os.mkdir(self.sub(sub))
                except FileExistsError:
                    pass
        if mode is not None:
            for sub in ("",) + TREE:
                os.chmod(self.sub(sub), mode)

    def remove(self, recycle: bool = True) -> None:
        """Take the directory away from the job id at once; its tree goes to the pool (``recycle``) or is
        deleted. Not recycled while something of the job may still write there: a deleted tree cannot
        receive another job's files, a recycled one would."""
        if os.path.lexists(self.path):
            # the job id was validated: this is always a child of staging
            if self.pool is None:
                shutil.rmtree(self.path, ignore_errors=True)
            elif recycle:
                self.pool.give(self.path)
            else:
                self.pool.discard(self.path)

    def write_metadata(self, name: str, text: str) -> None:
        fsutil.write_bytes(self.sub(name), text.encode("utf-8"))

    def read_text(self, relative: str, limit: int | None = None) -> str | None:
        """A small file below the job directory (None when missing, unreadable or leading out of it)."""
        data = fsutil.read_bytes(relative, limit, root=self.path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def return_code(self) -> int | None:
        """The exit code the job script wrote at its end (None: not written, or not a number)."""
        text = self.read_text("return_code", limit=64)
        try:
            return int(text.strip()) if text is not None else None
        except ValueError:
            return None

    # client name -> path ---------------------------------------------------
    def type_directory(self, file_type: str | None) -> tuple[str, bool]:
        if not file_type:
            raise BadRequest("missing parameter: type")
        try:
            sub, nested = wire.FILE_TYPES[file_type]
        except KeyError:
            known = ", ".join(sorted(wire.FILE_TYPES))
            raise BadRequest(f"unknown file type {file_type!r} (known: {known})") from None
        return self.sub(sub), nested

    def calculate_path(self, name: str | None, file_type: str | None, create_parents: bool = True) -> str:
        """Where an upload (or server-side staging) of ``name`` goes."""
        directory, nested = self.type_directory(file_type)
        parts = clean_name(name)
        if not nested:
            parts = parts[-1:]
        if file_type in wire.GLOB_TYPES and any(c in "/".join(parts) for c in "*?["):
            return self._glob(directory, "/".join(parts))
        target = os.path.join(directory, *parts)
        parent = os.path.dirname(target)
        if create_parents and not os.path.isdir(parent):
            os.makedirs(directory, exist_ok=True)
            ancestor = parent
            while not os.path.lexists(ancestor):
                ancestor = os.path.dirname(ancestor)
            if not _inside(ancestor, directory):
                raise BadRequest(f"invalid file name {name!r}: resolves outside the job directory")
            os.makedirs(parent, exist_ok=True)
        if not _inside(target, directory):
            raise BadRequest(f"invalid file name {name!r}: resolves outside the job directory")
        return target

    def _glob(self, directory: str, pattern: str) -> str:
        names: list[str] = []
        _list_files(directory, "", names)
        for relative in names:
            if fnmatch.fnmatch(relative, pattern):
                path = os.path.join(directory, relative)
                if _inside(path, directory):
                    return path
        raise NotFound(f"no file matches {pattern!r}")

    def output_relative(self, name: str | None, file_type: str | None) -> str:
        """Where ``download_output`` reads ``name`` from, relative to the job directory (to open it with
        :meth:`open_regular`)."""
        return os.path.join(wire.DOWNLOAD_DIRS.get(file_type or "output", "outputs"), *clean_name(name))

    def output_path(self, name: str | None, file_type: str | None) -> str:
        """Where ``download_output`` reads ``name`` from (the ``path`` route's answer)."""
        directory = self.sub(wire.DOWNLOAD_DIRS.get(file_type or "output", "outputs"))
        target = self.sub(self.output_relative(name, file_type))
        if not _inside(target, directory):
            raise BadRequest(f"invalid file name {name!r}: resolves outside the job directory")
        return target

    def open_regular(self, relative: str) -> tuple[int, int] | None:
        """A read-only descriptor (the caller closes it) on the regular file ``relative`` below the job
        directory and its size, None when there is none; BadRequest when a symlink leads out of the job
        directory. Opened by :func:`fsutil.open_below`: a symlink the job swaps in meanwhile changes nothing."""
        return fsutil.open_regular(relative, root=self.path)

    # streaming writes ---------------------------------------------------------
    def partial_directory(self) -> str:
        """Where uploads are written before their rename (made by start-up, or by the first write)."""
        return os.path.join(self.staging_directory, ".partial")

    def write_stream(self, target: str, stream: BinaryIO, length: int | None, limit: int = 0,
                     durable: bool = False) -> int:
        """Stream ``length`` bytes into ``target`` atomically (temp file in .partial, then rename; ``durable``:
        on disk before the rename)."""
        return fsutil.write_stream(target, stream, length, limit, tmp_dir=self.partial_directory(),
                                   prefix=f"{self.job_id}.", durable=durable)

    def copy_in(self, source: str, target: str, durable: bool = False) -> None:
        fsutil.copy_file(source, target, tmp_dir=self.partial_directory(), durable=durable)

    # listings -----------------------------------------------------------------
    def listing(self, sub: str, recursive: bool = True) -> list[str]:
        """Names of the files below ``sub`` relative to it, as ``os.walk`` orders them (each directory's
        files sorted, then its subdirectories in order; symlinked directories are not entered)."""
        directory = self.sub(sub)
        if not recursive:
            try:
                return sorted(os.listdir(directory))
            except OSError:
                return []
        result: list[str] = []
        _list_files(directory, "", result)
        return result


def _list_files(directory: str, prefix: str, result: list[str]) -> None:
    files, subdirs = [], []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    files.append(entry.name)
                elif not entry.is_symlink():
                    subdirs.append(entry.name)
    except OSError:
        return
    files.sort()
    result.extend(prefix + name for name in files)
    for name in sorted(subdirs):
        _list_files(os.path.join(directory, name), prefix + name + os.sep, result)
