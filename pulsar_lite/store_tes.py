"""The TES tasks' part of the store (``Store`` inherits it): what ListTasks filters on, and the records of
tasks whose job is gone.

A task is a row of ``tes_tasks`` (its document as the client sent it, checked), its job the ``jobs`` row of the
same id. Beside the document each row holds:

* ``final_state``: the task's TES state once it is final (COMPLETE, EXECUTOR_ERROR, ...), ``''`` while it is
  not (its state then follows its job's), NULL in a row an older pulsar_lite wrote (the TES service's
  start-up fills it in). Indexed with the creation order, so a ``state`` filter reads only the tasks in
  that state.
* ``owner``: the Basic user who created the task (the document's ``owner``, ``tes/auth.py``), NULL for an
  administrator's. Indexed with the creation order, so a user's ListTasks reads only their own tasks; kept
  in a retired row too.
* ``record``, ``retired``: once the job and its files are removed (``job_retention``), the task's log as it
  was then (JSON) and when that was: the row stays, GET and ListTasks answer from it, until
  ``tes_task_record_retention`` has passed.

A task's tags are rows of ``tes_task_tags`` too (indexed by key and value), so a tag filter is SQL as well.
Tables and columns added here are added to an existing database when it is opened (no data is rewritten;
an older pulsar_lite ignores them).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

#: columns of ``tes_tasks`` added after its first schema: (name, SQL type)
ADDED_TASK_COLUMNS = (("final_state", "TEXT"), ("record", "TEXT"), ("retired", "REAL"), ("owner", "TEXT"))
TASK_SCHEMA = """
CREATE TABLE IF NOT EXISTS tes_task_tags (
    id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tes_task_tags_value ON tes_task_tags(key, value);
CREATE INDEX IF NOT EXISTS tes_tasks_state ON tes_tasks(final_state, created, id);
CREATE INDEX IF NOT EXISTS tes_tasks_owner ON tes_tasks(owner, created, id);
CREATE INDEX IF NOT EXISTS tes_tasks_retired ON tes_tasks(retired) WHERE retired IS NOT NULL;
"""
ACTIVE = ""  # final_state of a task that has not ended


@dataclass(frozen=True)
class TaskRow:
    id: str
    manager: str
    created: float
    document: dict | None  # None: not read (``task_page(whole=False)``)
    final_state: str | None
    record: dict | None


def _row(row) -> TaskRow:
    return TaskRow(row["id"], row["manager"], row["created"], json.loads(row["document"]), row["final_state"],
                   json.loads(row["record"]) if row["record"] else None)


class TaskStore:
    """Mixed into ``Store``: uses its ``_db`` (writes, under ``_writing``), ``_reader()`` and ``_lock``."""

    def _add_task_schema(self) -> None:
        """On open: the columns, table and indexes above, on a database made before them as on a new one."""
        existing = {row[1] for row in self._db.execute("PRAGMA table_info(tes_tasks)")}
        for name, sql_type in ADDED_TASK_COLUMNS:
            if name not in existing:
                self._db.execute(f"ALTER TABLE tes_tasks ADD COLUMN {name} {sql_type}")
        self._db.executescript(TASK_SCHEMA)
        # the owner of the rows an older pulsar_lite wrote (their final_state is NULL until start-up settles it);
        # looked for first: no write (no lock) when there are none
        unowned = ("final_state IS NULL AND owner IS NULL AND json_extract(document, '$.owner') IS NOT NULL")
        if self._db.execute(f"SELECT 1 FROM tes_tasks WHERE {unowned} LIMIT 1").fetchone():
            self._db.execute(f"UPDATE tes_tasks SET owner = json_extract(document, '$.owner') WHERE {unowned}")

    @staticmethod
    def _put_tags(db, task_id: str, tags: dict[str, str]) -> None:
        db.executemany("INSERT OR REPLACE INTO tes_task_tags(id, key, value) VALUES (?,?,?)",
                       [(task_id, key, value) for key, value in tags.items()])

    # -- reading ------------------------------------------------------------------------------------------------
    def task_row(self, task_id: str) -> TaskRow | None:
        row = self._reader().execute("SELECT id, manager, created, document, final_state, record FROM tes_tasks "
                                     "WHERE id=?", (task_id,)).fetchone()
        return _row(row) if row else None

    def task_page(self, after: tuple[float, str] | None, limit: int, name_prefix: str | None = None,
                  tags: dict[str, str] | None = None, final_state: str | None = None,
                  whole: bool = True, owner: str | None = None) -> list[TaskRow]:
        """Tasks in creation order after ``after`` (created, id), at most ``limit``, filtered in SQL: ``owner``'s
        only when given (a Basic user's name; '' matches no task), a name starting with ``name_prefix``, every
        tag of ``tags`` (an empty value: any value of the key), and ``final_state`` (``ACTIVE``: the tasks that
        have not ended). Only the rows returned are read whole, and
        not even those unless ``whole`` (else ``document`` and ``record`` are None: enough for MINIMAL)."""
        clauses, args = [], []
        if after is not None:
            clauses.append("(created, id) > (?, ?)")
            args += [after[0], after[1]]
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if name_prefix:
            clauses.append("substr(name, 1, ?) = ?")
            args += [len(name_prefix), name_prefix]
        if final_state is not None:
            clauses.append("final_state = ?")
            args.append(final_state)
        for key, value in (tags or {}).items():
            if value:
                clauses.append("id IN (SELECT id FROM tes_task_tags WHERE key = ? AND value = ?)")
                args += [key, value]
            else:
                clauses.append("id IN (SELECT id FROM tes_task_tags WHERE key = ?)")
                args.append(key)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        reader = self._reader()
        keys = reader.execute(f"SELECT id, manager, created, final_state FROM tes_tasks{where} ORDER BY created, id "
                              f"LIMIT ?", (*args, limit)).fetchall()
        if not whole or not keys:
            return [TaskRow(r[0], r[1], r[2], None, r[3], None) for r in keys]
        ids = [row[0] for row in keys]
        rows = reader.execute("SELECT id, manager, created, document, final_state, record FROM tes_tasks WHERE id "
                              f"IN ({','.join('?' * len(ids))})", ids).fetchall()
        found = {row["id"]: _row(row) for row in rows}
        return [found[task_id] for task_id in ids if task_id in found]

    def tasks_to_settle(self, terminal: Iterable[str]) -> list[tuple[str, str, str | None, str | None]]:
        """(id, manager, final_state, job state or None) of the tasks whose ``final_state`` is not what it should
        be: NULL (written by an older pulsar_lite), or ``ACTIVE`` while the job is ``terminal`` or gone (the
        daemon stopped between the job's end and its task's; the TES face was off)."""
        terminal = list(terminal)
        rows = self._reader().execute(
            "SELECT t.id, t.manager, t.final_state, j.state FROM tes_tasks t LEFT JOIN jobs j ON j.manager = t.manager "
            "AND j.job_id = t.id WHERE t.final_state IS NULL OR (t.final_state = ? AND (j.state IS NULL OR "
            f"j.state IN ({','.join('?' * len(terminal))})))", (ACTIVE, *terminal)).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def task_records_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of the task records retired before ``cutoff``, oldest first, at most ``limit``."""
        rows = self._reader().execute("SELECT id FROM tes_tasks WHERE retired IS NOT NULL AND retired < ? "
                                      "ORDER BY retired LIMIT ?", (cutoff, limit)).fetchall()
        return [r[0] for r in rows]

    # -- writing ------------------------------------------------------------------------------------------------
    def set_task_states(self, states: dict[str, str], tags: dict[str, dict] | None = None) -> None:
        """Record final states (``{id: state}``, one transaction), and the tags of rows an older pulsar_lite
        wrote (``{id: tags}``). Not waited for: a state lost in a crash is found again at the next start."""
        with self._writing(durable=False):
            self._db.executemany("UPDATE tes_tasks SET final_state=? WHERE id=?",
                                 [(state, task_id) for task_id, state in states.items()])
            for task_id, task_tags in (tags or {}).items():
                self._put_tags(self._db, task_id, task_tags)

    def retire_task(self, task_id: str, document: dict, final_state: str, record: dict,
                    when: float | None = None) -> None:
        """Keep a task whose job is being removed: its document (as small as the caller makes it), final state
        and log, and when; ``Store.delete`` then leaves the row."""
        with self._writing(durable=False):
            self._db.execute("UPDATE tes_tasks SET document=?, final_state=?, record=?, retired=? WHERE id=?",
                             (json.dumps(document), final_state, json.dumps(record),
                              time.time() if when is None else when, task_id))

    def forget_tasks(self, task_ids: list[str]) -> None:
        """Remove task rows (and their tags) for good."""
        with self._writing(durable=False):
            for task_id in task_ids:
                self._forget_task(self._db, task_id, retired_too=True)

    @staticmethod
    def _forget_task(db, task_id: str, retired_too: bool = False, manager: Any = None) -> None:
        """In a writing transaction: remove a task's row (not a retired one unless ``retired_too``) and, with
        it, its tags."""
        query = "DELETE FROM tes_tasks WHERE id=?"
        args: list[Any] = [task_id]
        if manager is not None:
            query += " AND manager=?"
            args.append(manager)
        if not retired_too:
            query += " AND retired IS NULL"
        if db.execute(query, args).rowcount:
            db.execute("DELETE FROM tes_task_tags WHERE id=?", (task_id,))
