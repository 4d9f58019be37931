"""Recycled job directory trees.

Every job needs the same bare tree of directories (:data:`TREE` under its job
directory), and a clean removes it again: nine directories made and nine
removed per job. Directory creation is one of the dearest things a job costs
the filesystem: on NFS each ``mkdir``/``rmdir`` is a synchronous round trip,
and on ext4 without a journal every inode allocation scans the inodes freed in
the last minute (measured: half of the daemon's CPU per job under load).

So a cleaned job's directory is not deleted (unless something of its job may still write there:
``discard``). It is renamed away from its job id
at once, every file and every extra directory in it is removed, the standard
directories get their fresh permissions back, and the bare tree waits in
``<staging>/.recycle/`` (at most ``size`` of them) to become the next job's
directory with a single rename. A tree that cannot be emptied completely is
deleted instead. Nothing in the pool is trusted across a restart: start-up
deletes it.
"""
from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading

from .. import wire

log = logging.getLogger(__name__)

#: the directories every job directory holds from its setup on
TREE = wire.JOB_SUBDIRS + ("tmp", "home")
POOL_DIRECTORY = ".recycle"


def current_umask() -> int:
    """The process umask, read without changing it (Linux /proc; 0o022 where unreadable)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


class DirectoryPool:
    def __init__(self, staging_directory: str, size: int, mode: int | None = None):
        """``size``: trees kept at most (the ``recycled_job_directories`` key; its default is in the schema)."""
        self.root = os.path.join(staging_directory, POOL_DIRECTORY)
        self.size = size
        self.mode = mode if mode is not None else 0o777 & ~current_umask()
        self._ready: list[str] = []
        self._lock = threading.Lock()
        self._names = itertools.count()

    def reset(self) -> None:
        """Start-up: forget and delete whatever an earlier run left in the pool."""
        with self._lock:
            self._ready.clear()
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)

    def __len__(self) -> int:
        return len(self._ready)

    def take(self, target: str) -> bool:
        """Move a bare tree to ``target`` (which must not exist); False when there is none."""
        with self._lock:
            if not self._ready:
                return False
            tree = self._ready.pop()
        try:
            os.rename(tree, target)
            return True
        except OSError as exc:
            log.debug("recycled tree %s not usable for %s: %s", tree, target, exc)
            shutil.rmtree(tree, ignore_errors=True)
            return False

    def give(self, path: str) -> None:
        """Take ``path`` away from its job at once; keep its emptied tree or delete it."""
        if self.size <= 0 or len(self._ready) >= self.size or not os.path.isdir(self.root):
            shutil.rmtree(path, ignore_errors=True)
            return
        holding = self._take_away(path, "emptying")
        if holding is None:
            return
        if holding == path:
            shutil.rmtree(path, ignore_errors=True)
            return
        try:
            self._empty(holding)
            ready = holding[: -len(".emptying")]
            os.rename(holding, ready)
        except OSError as exc:
            log.debug("not recycling %s: %s", path, exc)
            shutil.rmtree(holding, ignore_errors=True)
            return
        with self._lock:
            self._ready.append(ready)

    def discard(self, path: str) -> None:
        """Take ``path`` away from its job at once and delete it, never to be reused: what a process of the job
        still writes there is deleted with it (or by the next start's reset, when it writes faster than this
        deletes)."""
        holding = self._take_away(path, "discarded")
        if holding is not None:
            shutil.rmtree(holding, ignore_errors=True)

    def _take_away(self, path: str, suffix: str) -> str | None:
        """Rename ``path`` into the pool's directory (its job id is free again at once); where it is now (``path``
        itself when it could not be moved), or None when it is gone."""
        holding = os.path.join(self.root, f"{next(self._names)}.{suffix}")
        try:
            os.rename(path, holding)
        except FileNotFoundError:
            return None
        except OSError:
            return path
        return holding

    def _empty(self, tree: str) -> None:
        """Leave exactly :data:`TREE`, empty and with fresh permissions, or raise OSError."""
        present = set()
        with os.scandir(tree) as entries:
            for entry in entries:
                if entry.name in TREE and entry.is_dir(follow_symlinks=False):
                    present.add(entry.name)
                    os.chmod(entry.path, self.mode)
                    _remove_children(entry.path)
                else:
                    _remove(entry)
        for name in TREE:
            if name not in present:
                os.mkdir(os.path.join(tree, name), self.mode)
        os.chmod(tree, self.mode)


def _remove(entry: os.DirEntry) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)


def _remove_children(directory: str) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            _remove(entry)
