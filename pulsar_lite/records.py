"""What the store holds: its SQL schema and a job's record as the engine and managers see it.

``store.py`` reads and writes these; a ``JobRecord`` instance is never changed in place (``_changed``
makes the next one), so a reader may keep one without a lock.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from . import wire

#: the schema's version, in the database's ``PRAGMA user_version``: a store written by a newer pulsar_lite
#: (a larger number) is refused at start instead of being misread
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    manager TEXT NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    tool_id TEXT,
    tool_version TEXT,
    launch_config TEXT,
    external_id TEXT,
    pid INTEGER,
    returncode INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    PRIMARY KEY (manager, job_id)
);
-- no index on state: only start-up looks jobs up by state, and a scan of the live jobs is cheap there;
-- an index would cost a page write at every transition (databases made before still have it: dropped)
DROP INDEX IF EXISTS jobs_state;
-- id: SQLite's rowid (the next is the largest + 1), increasing within a job's history, which is all
-- that orders; AUTOINCREMENT would write its counter page at every transition
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    manager TEXT NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    ts REAL NOT NULL,
    message TEXT
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions(manager, job_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    manager TEXT NOT NULL,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS file_cache (
    token TEXT PRIMARY KEY,
    created REAL NOT NULL
);
-- GA4GH TES tasks: the task document as the client sent it (checked); its job is the jobs row of the same id
CREATE TABLE IF NOT EXISTS tes_tasks (
    id TEXT PRIMARY KEY,
    manager TEXT NOT NULL,
    created REAL NOT NULL,
    name TEXT,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tes_tasks_order ON tes_tasks(created, id);
"""

_UPDATABLE = {"launch_config", "external_id", "pid", "returncode", "cancel_requested", "message",
              "tool_id", "tool_version", "stage_in_bytes", "stage_in_seconds", "stage_out_bytes",
              "stage_out_seconds"}
#: columns added after the first schema: (name, SQL type); added on open when missing
_ADDED_COLUMNS = (("stage_in_bytes", "INTEGER"), ("stage_in_seconds", "REAL"), ("stage_out_bytes", "INTEGER"),
                  ("stage_out_seconds", "REAL"))


class IllegalTransition(Exception):
    """A transition the lifecycle (or the caller's ``expect``) does not allow from the job's current state;
    ``current`` is that state (None: no such job)."""

    def __init__(self, message: str, current: str | None = None):
        super().__init__(message)
        self.current = current


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as the columns an UPDATE sets (the launch config as JSON); ValueError for a column that is
    not updatable."""
    bad = set(fields) - _UPDATABLE
    if bad:
        raise ValueError(f"cannot update {bad}")
    if fields.get("launch_config") is not None:
        fields = {**fields, "launch_config": json.dumps(fields["launch_config"])}
    return fields


def _changed(record: "JobRecord", **columns: Any) -> "JobRecord":
    """``record`` with ``columns`` set as an UPDATE of those columns stores them (a new instance: the
    store's cached instances never change)."""
    if "launch_config" in columns:
        columns["launch_config_json"] = columns.pop("launch_config")
    if "cancel_requested" in columns:
        columns["cancel_requested"] = bool(columns["cancel_requested"])
    return replace(record, **columns)


@dataclass
class JobRecord:
    manager: str
    job_id: str
    state: str
    created: float
    updated: float
    tool_id: str | None
    tool_version: str | None
    launch_config_json: str | None
    external_id: str | None
    pid: int | None
    returncode: int | None
    cancel_requested: bool
    message: str | None
    stage_in_bytes: int | None = None
    stage_in_seconds: float | None = None
    stage_out_bytes: int | None = None
    stage_out_seconds: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state in wire.TERMINAL_STATES

    @property
    def launch_config(self) -> dict | None:
        """Parsed on first use: status polls never need it."""
        if self.launch_config_json is None:
            return None
        parsed = self.__dict__.get("_launch")
        if parsed is None:
            parsed = self.__dict__["_launch"] = json.loads(self.launch_config_json)
        return parsed

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "JobRecord":
        data = dict(row)
        data["launch_config_json"] = data.pop("launch_config")
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)
