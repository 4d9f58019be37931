"""The AMQP face's durable bookkeeping, in its own SQLite file next to the job store.

* ``origins``: which broker a job's setup came from, and the last state routed for it.
* ``pending``: messages waiting for a publisher confirm, per broker, in FIFO order
  (status updates moved here from the store outbox, replies to status requests, ack replies).
* ``unacked``: status updates sent with an ``acknowledge_uuid`` and not yet acknowledged.
  A store outbox row is routed at most once while its message is pending or unacknowledged:
  re-routing it (its ``outbox_done`` lost in a crash) adds neither a second message nor a
  second ``unacked`` row, which no client would ever acknowledge.
* ``seen``: ``acknowledge_uuid`` values of messages already handled (redelivery dedupe).
* ``kills``: kill messages for jobs not known yet. Queues are not ordered against each other: a
  setup requeued or redelivered (a failed try, a crash before its ack) can come after its job's
  kill, and must then not run the job.

A row leaves ``pending`` only after the broker confirmed the publish, so a crash at
any point gives a duplicate, never a loss.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Iterable

from .. import wire
from ..groupsync import open_database, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS origins (
    manager TEXT NOT NULL,
    job_id TEXT NOT NULL,
    broker TEXT NOT NULL,
    last_state TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (manager, job_id)
);
CREATE INDEX IF NOT EXISTS origins_last_state ON origins(last_state);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    broker TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    ack_uuid TEXT,
    source_seq INTEGER,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_broker ON pending(broker, id);
DROP INDEX IF EXISTS pending_source;
CREATE INDEX IF NOT EXISTS pending_source_seq ON pending(broker, source_seq) WHERE source_seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS unacked (
    uuid TEXT PRIMARY KEY,
    broker TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    sent REAL,
    source_seq INTEGER
);
CREATE INDEX IF NOT EXISTS unacked_sent ON unacked(broker, sent);
CREATE TABLE IF NOT EXISTS seen (
    uuid TEXT PRIMARY KEY,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_ts ON seen(ts);
CREATE TABLE IF NOT EXISTS kills (
    manager TEXT NOT NULL,
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (manager, job_id)
);
CREATE INDEX IF NOT EXISTS kills_ts ON kills(ts);
"""

#: a kill for a job not known yet is honoured by a setup arriving this long after it
KILL_RETENTION = 7 * 24 * 3600
#: and at most this many are remembered (the newest)
MAX_KILLS = 10000

_TERMINAL = tuple(sorted(wire.TERMINAL_STATES))


@dataclass(frozen=True)
class Outgoing:
    """A message to publish: to ``broker`` with ``routing_key``."""

    broker: str
    routing_key: str
    payload: dict
    ack_uuid: str | None = None
    source_seq: int | None = None  # store outbox seq it came from (routing is idempotent on it)
    job: tuple[str, str, str] | None = None  # (manager, job_id, state) advanced in origins.last_state


@dataclass(frozen=True)
class Pending:
    id: int
    routing_key: str
    payload: dict
    ack_uuid: str | None


class Ledger:
    def __init__(self, path: str, synchronous: str = "full"):
        self.path = path
        self._lock = threading.Lock()
        self._db, self._sync = open_database(path, SCHEMA, synchronous)
        if "source_seq" not in {row[1] for row in self._db.execute("PRAGMA table_info(unacked)")}:
            self._db.execute("ALTER TABLE unacked ADD COLUMN source_seq INTEGER")  # a ledger from before it
        self._db.execute("CREATE INDEX IF NOT EXISTS unacked_source ON unacked(broker, source_seq)"
                         " WHERE source_seq IS NOT NULL")

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._sync is not None:
                self._sync.close()

    def _write(self, statements: Iterable[tuple[str, tuple]], durable: bool = True) -> None:
        """One transaction, on disk when this returns. ``durable=False`` does not wait for the disk
        (when losing the commit only means a duplicate message); the log keeps order, so the next
        durable commit covers it."""
        with transaction(self._db, self._lock, self._sync, durable):
            for sql, args in statements:
                self._db.execute(sql, args)

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- where jobs came from ---------------------------------------------------
    def remember_origin(self, manager: str, job_id: str, broker: str) -> None:
        self._write([(
            "INSERT INTO origins(manager, job_id, broker, last_state, updated) VALUES (?,?,?,NULL,?)"
            " ON CONFLICT(manager, job_id) DO UPDATE SET broker=excluded.broker, last_state=NULL,"
            " updated=excluded.updated", (manager, job_id, broker, time.time()))])

    def origin(self, manager: str, job_id: str) -> str | None:
        rows = self._read("SELECT broker FROM origins WHERE manager=? AND job_id=?", (manager, job_id))
        return rows[0][0] if rows else None

    def in_flight(self) -> list[tuple[str, str, str, str | None]]:
        """(manager, job_id, broker, last_state) of jobs whose final state was not routed yet."""
        marks = ",".join("?" * len(_TERMINAL))
        return self._read(
            f"SELECT manager, job_id, broker, last_state FROM origins"
            f" WHERE last_state IS NULL OR last_state NOT IN ({marks})", _TERMINAL)

    def settle(self, manager: str, job_id: str, state: str) -> None:
        """Record ``state`` as the job's last routed state without publishing anything."""
        self._write([("UPDATE origins SET last_state=?, updated=? WHERE manager=? AND job_id=?",
                      (state, time.time(), manager, job_id))])

    # -- outgoing messages ---------------------------------------------------------
    def enqueue(self, messages: Iterable[Outgoing], seen_uuid: str | None = None) -> None:
        """Add messages for publication, and mark ``seen_uuid`` handled, in one transaction.

        Re-routing a store outbox row whose message is still pending or unacknowledged is a no-op.
        """
        messages = list(messages)
        if not messages and not seen_uuid:
            return
        now = time.time()
        with transaction(self._db, self._lock, self._sync) as db:
            if seen_uuid:
                db.execute("INSERT OR IGNORE INTO seen(uuid, ts) VALUES (?,?)", (seen_uuid, now))
            for m in messages:
                if m.source_seq is not None and _routed(db, m):
                    continue
                text = json.dumps(m.payload)
                db.execute("INSERT INTO pending(broker, routing_key, payload, ack_uuid, source_seq, created)"
                           " VALUES (?,?,?,?,?,?)", (m.broker, m.routing_key, text, m.ack_uuid, m.source_seq, now))
                if m.ack_uuid:
                    db.execute("INSERT OR IGNORE INTO unacked(uuid, broker, routing_key, payload, sent, source_seq)"
                               " VALUES (?,?,?,?,NULL,?)", (m.ack_uuid, m.broker, m.routing_key, text, m.source_seq))
                if m.job:
                    manager, job_id, state = m.job
                    db.execute("UPDATE origins SET last_state=?, updated=? WHERE manager=? AND job_id=?",
                               (state, now, manager, job_id))

    def pending(self, broker: str, limit: int = 100) -> list[Pending]:
        rows = self._read("SELECT id, routing_key, payload, ack_uuid FROM pending WHERE broker=? ORDER BY id LIMIT ?",
                          (broker, limit))
        return [Pending(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def pending_count(self, broker: str | None = None) -> int:
        if broker is None:
            return self._read("SELECT count(*) FROM pending")[0][0]
        return self._read("SELECT count(*) FROM pending WHERE broker=?", (broker,))[0][0]

    def sent(self, *items: Pending) -> None:
        """The broker confirmed ``items``: forget them, and start their acknowledgement clocks (one
        transaction for all of them)."""
        now = time.time()
        statements = []
        for item in items:
            statements.append(("DELETE FROM pending WHERE id=?", (item.id,)))
            if item.ack_uuid:
                statements.append(("UPDATE unacked SET sent=? WHERE uuid=?", (now, item.ack_uuid)))
        if statements:
            self._write(statements, durable=False)  # lost: published again, a duplicate receivers tolerate

    def brokers_with_pending(self) -> set[str]:
        return {r[0] for r in self._read("SELECT DISTINCT broker FROM pending")}

    # -- acknowledgements of what we published ------------------------------------------
    def acknowledged(self, uuid: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM unacked WHERE uuid=?", (uuid,))
        return cursor.rowcount > 0

    def due_republish(self, broker: str, older_than: float, limit: int = 100) -> list[tuple[str, str, dict]]:
        rows = self._read("SELECT uuid, routing_key, payload FROM unacked WHERE broker=? AND sent IS NOT NULL"
                          " AND sent < ? ORDER BY sent LIMIT ?", (broker, older_than, limit))
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def next_republish(self, broker: str) -> float | None:
        """Send time of the oldest unacknowledged update to ``broker`` (None: nothing waits)."""
        rows = self._read("SELECT min(sent) FROM unacked WHERE broker=? AND sent IS NOT NULL", (broker,))
        return rows[0][0] if rows else None

    def republished(self, uuid: str) -> None:
        self._write([("UPDATE unacked SET sent=? WHERE uuid=?", (time.time(), uuid))])

    def unacked_count(self) -> int:
        return self._read("SELECT count(*) FROM unacked")[0][0]

    def forget_unacked(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM unacked").rowcount

    # -- kills that came before their job's setup ---------------------------------------
    def remember_kill(self, manager: str, job_id: str) -> None:
        now = time.time()
        self._write([
            ("INSERT OR REPLACE INTO kills(manager, job_id, ts) VALUES (?,?,?)", (manager, job_id, now)),
            ("DELETE FROM kills WHERE ts < ?", (now - KILL_RETENTION,)),
            ("DELETE FROM kills WHERE rowid IN (SELECT rowid FROM kills ORDER BY ts DESC LIMIT -1 OFFSET ?)",
             (MAX_KILLS,)),
        ])

    def killed(self, manager: str, job_id: str) -> bool:
        """Whether a kill for the job came (within ``KILL_RETENTION``) before the job was known."""
        return bool(self._read("SELECT 1 FROM kills WHERE manager=? AND job_id=? AND ts >= ?",
                               (manager, job_id, time.time() - KILL_RETENTION)))

    def forget_kill(self, manager: str, job_id: str) -> None:
        self._write([("DELETE FROM kills WHERE manager=? AND job_id=?", (manager, job_id))])

    # -- acknowledge_uuid of messages we handled -----------------------------------------
    def seen(self, uuid: str) -> bool:
        return bool(self._read("SELECT 1 FROM seen WHERE uuid=?", (uuid,)))

    def prune(self, seen_before: float) -> None:
        """Drop old dedupe entries, origins of long-finished jobs and expired kills."""
        marks = ",".join("?" * len(_TERMINAL))
        self._write([
            ("DELETE FROM seen WHERE ts < ?", (seen_before,)),
            (f"DELETE FROM origins WHERE updated < ? AND last_state IN ({marks})", (seen_before, *_TERMINAL)),
            ("DELETE FROM kills WHERE ts < ?", (time.time() - KILL_RETENTION,)),
        ])


def _routed(db, m: Outgoing) -> bool:
    """Whether the outbox row ``m`` comes from is already routed: a message for the same row (broker and
    seq, and the same job and state: a commit lost in a crash can hand its seq to another update) still
    waits for its confirm or its acknowledgement."""
    rows = db.execute("SELECT routing_key, payload FROM pending WHERE broker=? AND source_seq=?"
                      " UNION ALL SELECT routing_key, payload FROM unacked WHERE broker=? AND source_seq=?",
                      (m.broker, m.source_seq, m.broker, m.source_seq)).fetchall()
    for routing_key, text in rows:
        payload = json.loads(text)
        if routing_key == m.routing_key and all(payload.get(k) == m.payload.get(k) for k in ("job_id", "status")):
            return True
    return False
