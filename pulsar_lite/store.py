"""The durable store: one SQLite database (WAL) for all job state.

A job row, its state transitions and the status outbox are written in one
transaction, so after a crash the database says exactly what happened last.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from . import wire
from .errors import StateInUse, StoreOpenError, StoreUnavailable
from .groupsync import open_database, transaction
from .records import _ADDED_COLUMNS, SCHEMA, SCHEMA_VERSION, IllegalTransition, JobRecord, _changed, _columns
from .store_health import StoreHealth, describe, is_outage
from .store_tes import ACTIVE, TaskStore

__all__ = ["IllegalTransition", "JobRecord", "Store", "claim_state"]

def claim_state(path: str) -> int:
    """Lock ``<path>.lock`` for this process (flock, released when the process ends, however it ends) and
    write its pid there; raise StateInUse naming the holder when another daemon has it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateInUse(f"the job state {path} is in use by another pulsar_lite daemon (pid {holder}); "
                         f"stop it first, or give this one its own persistence_directory") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Store(TaskStore):
    #: job records kept in memory (the most recently written); a read of any other goes to SQLite
    CACHE_SIZE = 4096

    def __init__(self, path: str, synchronous: str = "full", busy_timeout: float = 30.0):
        self.path = path
        self.busy_timeout = busy_timeout
        self._claim = claim_state(path)
        self._lock = threading.Lock()
        # write-through: filled and changed only right after a commit, under the write lock, with the
        # row as committed, so a hit is what SQLite holds; readers never fill it (a reader could
        # otherwise put back a row a writer has just replaced)
        self._cache: dict[tuple[str, str], JobRecord] = {}
        self._local = threading.local()
        self._closed = False
        #: whether writes go through (an outage is survived and reported: store_health.py)
        self.health = StoreHealth(path)
        try:
            self._open(synchronous)
        except BaseException:
            os.close(self._claim)
            raise
        #: set by transports that publish status updates (outbox rows are then written)
        self.outbox_enabled = False

    def _open(self, synchronous: str) -> None:
        """Open the database, or raise StoreOpenError naming the file and what to do."""
        what = "open"
        try:
            if os.path.exists(self.path):
                with open(self.path, "rb") as handle:  # an unreadable file: its own clear error below
                    handle.read(1)
            what = "read"
            probe = sqlite3.connect(f"file:{self.path}?mode=rwc", uri=True, timeout=self.busy_timeout)
            try:
                version = probe.execute("PRAGMA user_version").fetchone()[0]
                probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                probe.close()
            if version > SCHEMA_VERSION:
                raise StoreOpenError(
                    f"the job store {self.path} was written by a newer pulsar_lite (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}): run that version, or give this one another persistence_directory")
            what = "set up"
            self._db, self._sync = open_database(self.path, SCHEMA, synchronous, timeout=self.busy_timeout)
            self._db.row_factory = sqlite3.Row
            existing = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name, sql_type in _ADDED_COLUMNS:
                if name not in existing:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}")
            self._add_task_schema()
            if version < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except StoreOpenError:
            raise
        except PermissionError as exc:
            raise StoreOpenError(f"the job store {self.path} cannot be opened: {exc.strerror}; the daemon's account "
                                 f"must be able to read and write it and its directory") from None
        except (sqlite3.DatabaseError, OSError) as exc:
            error = describe(exc)
            if "not a database" in error or "malformed" in error:
                advice = (f"it is damaged: restore it from a backup, or move it (and {os.path.basename(self.path)}"
                          f"-wal, -shm) aside to start with no jobs")
            elif "readonly" in error or "permission" in error.lower() or "unable to open" in error:
                advice = "the daemon's account must be able to read and write it and its directory"
            else:
                advice = "see the error; the file is left as it is"
            raise StoreOpenError(f"the job store {self.path} cannot be {what}: {error}; {advice}") from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
            if self._sync is not None:
                self._sync.close()
            os.close(self._claim)
            # readers are left to the garbage collector: closing a connection another
            # thread is using at this moment crashes the sqlite3 module

    def _reader(self) -> sqlite3.Connection:
        """A per-thread read connection: with WAL, reads never wait for a commit's fsync."""
        reader = getattr(self._local, "db", None)
        if reader is None:
            if self._closed:
                raise sqlite3.ProgrammingError("store is closed")
            reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                     timeout=self.busy_timeout)
            reader.row_factory = sqlite3.Row
            self._local.db = reader
        return reader

    # -- reading ----------------------------------------------------------
    def get(self, manager: str, job_id: str) -> JobRecord | None:
        cached = self._cache.get((manager, job_id))
        if cached is not None:
            return cached
        row = self._reader().execute("SELECT * FROM jobs WHERE manager=? AND job_id=?", (manager, job_id)).fetchone()
        return JobRecord.from_row(row) if row else None

    def jobs_in_states(self, states: Iterable[str], manager: str | None = None) -> list[JobRecord]:
        states = list(states)
        marks = ",".join("?" * len(states))
        query = f"SELECT * FROM jobs WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if manager is not None:
            query += " AND manager=?"
            args.append(manager)
        query += " ORDER BY created"
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [JobRecord.from_row(r) for r in rows]

    def active_keys(self) -> list[tuple[str, str]]:
        """(manager, job_id) of every unfinished job, oldest first: all a restart reads before it serves."""
        states = [wire.State.PREPROCESSING, wire.State.QUEUED, wire.State.RUNNING, wire.State.POSTPROCESSING]
        with self._lock:
            rows = self._db.execute(f"SELECT manager, job_id FROM jobs WHERE state IN ({','.join('?' * len(states))})"
                                    f" ORDER BY created", states).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get_many(self, keys: list[tuple[str, str]]) -> list[JobRecord]:
        """The records of ``keys`` (those that still exist), in the order given."""
        by_manager: dict[str, list[str]] = {}
        for manager, job_id in keys:
            by_manager.setdefault(manager, []).append(job_id)
        found: dict[tuple[str, str], JobRecord] = {}
        reader = self._reader()
        for manager, job_ids in by_manager.items():
            for first in range(0, len(job_ids), 500):
                chunk = job_ids[first:first + 500]
                rows = reader.execute(f"SELECT * FROM jobs WHERE manager=? AND job_id IN ({','.join('?' * len(chunk))})",
                                      (manager, *chunk)).fetchall()
                for row in rows:
                    found[(row["manager"], row["job_id"])] = JobRecord.from_row(row)
        return [found[key] for key in keys if key in found]

    def tasks_in_job_state(self, state: str) -> list[tuple[str, str, dict]]:
        """(id, manager, document) of the TES tasks whose job is in ``state``."""
        rows = self._reader().execute(
            "SELECT t.id, t.manager, t.document FROM tes_tasks t JOIN jobs j ON j.manager = t.manager AND "
            "j.job_id = t.id WHERE j.state = ? ORDER BY t.created", (state,)).fetchall()
        return [(r["id"], r["manager"], json.loads(r["document"])) for r in rows]

    def jobs_updated_before(self, states: Iterable[str], cutoff: float, limit: int | None = None) -> list[JobRecord]:
        """Jobs in one of ``states`` whose record last changed before ``cutoff`` (a time.time() value), oldest
        first, at most ``limit``."""
        states = list(states)
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) AND updated < ? ORDER BY updated"
                                    f" LIMIT ?", (*states, cutoff, -1 if limit is None else limit)).fetchall()
        return [JobRecord.from_row(r) for r in rows]

    def transitions(self, manager: str, job_id: str) -> list[tuple[str, float, str | None]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, ts, message FROM transitions WHERE manager=? AND job_id=? ORDER BY id",
                (manager, job_id)).fetchall()
        return [(r["state"], r["ts"], r["message"]) for r in rows]

    def outbox(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, manager, job_id, state FROM outbox ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [tuple(r) for r in rows]

    def count_by_state(self) -> dict[tuple[str, str], int]:
        """{(manager, state): number of jobs} (metrics)."""
        rows = self._reader().execute("SELECT manager, state, count(*) FROM jobs GROUP BY manager, state").fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def outbox_count(self) -> int:
        return self._reader().execute("SELECT count(*) FROM outbox").fetchone()[0]

    def outbox_done(self, *seqs: int) -> None:
        """Forget routed outbox rows (one transaction for all of them)."""
        if not seqs:
            return
        with self._writing(durable=False):  # lost: re-routed, and the router dedupes
            self._db.executemany("DELETE FROM outbox WHERE seq=?", [(seq,) for seq in seqs])

    # -- writing ----------------------------------------------------------
    def create(self, manager: str, job_id: str, tool_id: str | None = None, tool_version: str | None = None,
               durable: bool = True) -> JobRecord:
        """Create (or reset) a job row in state ``setup`` (``durable=False``: without waiting for the disk)."""
        now = time.time()
        with self._writing(durable) as written:
            self._db.execute("DELETE FROM jobs WHERE manager=? AND job_id=?", (manager, job_id))
            self._db.execute(
                "INSERT INTO jobs(manager, job_id, state, created, updated, tool_id, tool_version)"
                " VALUES (?,?,?,?,?,?,?)", (manager, job_id, wire.SETUP, now, now, tool_id, tool_version))
            self._db.execute("INSERT INTO transitions(manager, job_id, state, ts) VALUES (?,?,?,?)",
                             (manager, job_id, wire.SETUP, now))
            # the row as just inserted (every other column NULL, cancel_requested 0), without reading it back
            record = written[(manager, job_id)] = JobRecord(
                manager, job_id, wire.SETUP, now, now, tool_id, tool_version, launch_config_json=None,
                external_id=None, pid=None, returncode=None, cancel_requested=False, message=None)
        return record

    def update(self, manager: str, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        fields = _columns(fields)
        assignments = ", ".join(f"{k}=?" for k in fields)
        now = time.time()
        with self._writing() as written:
            self._db.execute(f"UPDATE jobs SET {assignments}, updated=? WHERE manager=? AND job_id=?",
                             (*fields.values(), now, manager, job_id))
            written[(manager, job_id)] = self._updated(manager, job_id, updated=now, **fields)

    def transition(self, manager: str, job_id: str, new_state: str | tuple[str, ...],
                   expect: Iterable[str] | None = None, message: str | None = None, durable: bool = True,
                   **fields: Any) -> JobRecord:
        """Move a job to ``new_state`` (with extra field updates) atomically.

        ``expect`` lists the states the job may be in; by default the
        lifecycle table in :mod:`wire` decides. A tuple of states moves through
        each of them in order, in the same transaction (each step recorded and
        published, one commit). Raises IllegalTransition. ``durable=False``: return without waiting for
        the commit to reach the disk (the next durable commit takes it along).
        """
        path = new_state if isinstance(new_state, tuple) else (new_state,)
        new_state = path[-1]
        fields = _columns(fields)
        now = time.time()
        with self._writing(durable) as written:
            # under the write lock the cached record is the committed row: read it instead of SQLite
            cached = self._cache.get((manager, job_id))
            if cached is not None:
                current = cached.state
            else:
                row = self._db.execute("SELECT state FROM jobs WHERE manager=? AND job_id=?",
                                       (manager, job_id)).fetchone()
                if row is None:
                    raise IllegalTransition(f"job {job_id} does not exist", None)
                current = row["state"]
            allowed = set(expect) if expect is not None else wire.TRANSITIONS.get(current, set())
            if expect is not None and current not in allowed:
                raise IllegalTransition(f"job {job_id} is {current}, expected one of {sorted(allowed)}", current)
            if expect is None and path[0] not in allowed:
                raise IllegalTransition(f"job {job_id} cannot move from {current} to {path[0]}", current)
            for before, after in zip(path, path[1:]):
                if after not in wire.TRANSITIONS.get(before, set()):
                    raise IllegalTransition(f"job {job_id} cannot move from {before} to {after}", current)
            if message is not None:
                fields["message"] = message
            assignments = "".join(f", {k}=?" for k in fields)
            self._db.execute(f"UPDATE jobs SET state=?, updated=?{assignments} WHERE manager=? AND job_id=?",
                             (new_state, now, *fields.values(), manager, job_id))
            for state in path:
                self._db.execute("INSERT INTO transitions(manager, job_id, state, ts, message) VALUES (?,?,?,?,?)",
                                 (manager, job_id, state, now, message if state == path[0] else None))
                if self.outbox_enabled and state in wire.PUBLISHED_STATES:
                    self._db.execute("INSERT INTO outbox(manager, job_id, state, created) VALUES (?,?,?,?)",
                                     (manager, job_id, state, now))
            record = written[(manager, job_id)] = self._updated(manager, job_id, state=new_state, updated=now,
                                                                **fields)
        return record

    def delete(self, manager: str, job_id: str, durable: bool = True) -> None:
        """Forget a job. ``durable=False`` suits a finished job: losing the delete in a crash only brings
        back its terminal record, which nothing acts on. Either way, what the delete removes is on disk
        before it is removed (so a crash cannot bring back the job as it was before it finished)."""
        if not durable and self._sync is not None:
            self._sync.wait_committed()  # at once, unless the job's last commit is being synced right now
        with self._writing(durable) as written:
            written[(manager, job_id)] = None
            self._db.execute("DELETE FROM jobs WHERE manager=? AND job_id=?", (manager, job_id))
            self._db.execute("DELETE FROM transitions WHERE manager=? AND job_id=?", (manager, job_id))
            self._forget_task(self._db, job_id, manager=manager)  # a TES task's record stays once retired

    # -- TES tasks -------------------------------------------------------------
    def put_task(self, task_id: str, manager: str, created: float, name: str | None, document: dict) -> None:
        """Record a TES task's document (not waited for: its job's submit, durable, comes next)."""
        with self._writing(durable=False):
            self._db.execute("INSERT INTO tes_tasks(id, manager, created, name, document, final_state, owner) "
                             "VALUES (?,?,?,?,?,?,?)", (task_id, manager, created, name, json.dumps(document), ACTIVE,
                                                        document.get("owner")))
            self._put_tags(self._db, task_id, document.get("tags") or {})

    def get_task(self, task_id: str) -> tuple[str, float, dict] | None:
        """(manager, created, document) of a TES task."""
        row = self._reader().execute("SELECT manager, created, document FROM tes_tasks WHERE id=?",
                                     (task_id,)).fetchone()
        return (row["manager"], row["created"], json.loads(row["document"])) if row else None

    def tasks_after(self, after: tuple[float, str] | None, limit: int, name_prefix: str | None = None,
                    owner: str | None = None) -> list[tuple[str, str, float, dict]]:
        """TES tasks in creation order after ``after`` (created, id): (id, manager, created, document); only
        ``owner``'s when given (the row's ``owner``, the document's: store_tes.py). ListTasks reads
        ``task_page``."""
        query = "SELECT id, manager, created, document FROM tes_tasks"
        clauses, args = [], []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if after is not None:
            clauses.append("(created > ? OR (created = ? AND id > ?))")
            args += [after[0], after[0], after[1]]
        if name_prefix:
            clauses.append("substr(name, 1, ?) = ?")
            args += [len(name_prefix), name_prefix]
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._reader().execute(query + " ORDER BY created, id LIMIT ?", (*args, limit)).fetchall()
        return [(r["id"], r["manager"], r["created"], json.loads(r["document"])) for r in rows]

    # -- file cache tokens --------------------------------------------------
    def cache_claim(self, token: str) -> bool:
        """Record a cache token; True when it is new (the caller should upload)."""
        with self._writing(durable=False):
            cursor = self._db.execute("INSERT OR IGNORE INTO file_cache(token, created) VALUES (?,?)",
                                      (token, time.time()))
        return cursor.rowcount == 1

    # -- helpers -----------------------------------------------------------
    def probe(self) -> None:
        """A small real write (raises StoreUnavailable while the store cannot be written): how the engine
        finds out that an outage is over when nothing else writes."""
        with self._writing(durable=True):
            self._db.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, data BLOB)")
            self._db.execute("INSERT OR REPLACE INTO probe(id, data) VALUES (1, randomblob(8192))")

    def _updated(self, manager: str, job_id: str, **columns: Any) -> JobRecord | None:
        """The job's row after an UPDATE of ``columns`` in this (writing) transaction: built from the cached
        record (under the write lock it is the committed row), read back only for a job not cached."""
        cached = self._cache.get((manager, job_id))
        return _changed(cached, **columns) if cached is not None else self._select(manager, job_id)

    def _select(self, manager: str, job_id: str) -> JobRecord | None:
        """The job's row as this (writing) transaction sees it."""
        row = self._db.execute("SELECT * FROM jobs WHERE manager=? AND job_id=?", (manager, job_id)).fetchone()
        return JobRecord.from_row(row) if row else None

    @contextmanager
    def _writing(self, durable: bool = True) -> Iterator[dict]:
        """A write transaction; the records put in the yielded dict (None: gone) replace the cached ones
        once it has committed."""
        written: dict[tuple[str, str], JobRecord | None] = {}

        def remember():
            cache = self._cache
            for key, record in written.items():
                cache.pop(key, None)
                if record is not None:
                    cache[key] = record
            while len(cache) > self.CACHE_SIZE:
                del cache[next(iter(cache))]

        unsynced: list[BaseException] = []
        try:
            with transaction(self._db, self._lock, self._sync, durable, on_commit=remember,
                             on_unsynced=unsynced.append):
                yield written
        except Exception as exc:
            if self._closed or not is_outage(exc):
                raise
            self.health.failed(exc)
            raise StoreUnavailable(f"the job store cannot be written: {describe(exc)}") from exc
        if unsynced:  # committed (every reader sees it) but maybe not on disk: an outage to report, not undo
            self.health.failed(unsynced[0], unsynced=True)
        else:
            self.health.succeeded(synced=durable or self._sync is None)
