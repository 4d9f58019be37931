"""The TES tasks' part of the store: filters done in SQL, records kept once a job is gone, and a database made
before these columns opened as it is."""
import json
import sqlite3

import pytest

from pulsar_lite import wire
from pulsar_lite.store import Store
from pulsar_lite.store_tes import ACTIVE

M = "m"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite"), synchronous="normal")
    yield s
    s.close()


def put(store, n, tags=None, name=None, state=None):
    task_id = f"tes-{n:032d}"
    store.create(M, task_id)
    store.put_task(task_id, M, float(n), name if name is not None else f"sample-{n:03d}",
                   {"name": name, "tags": tags or {}, "inputs": []})
    if state is not None:
        store.set_task_states({task_id: state})
    return task_id


def ids(rows):
    return [int(row.id[4:]) for row in rows]


def test_a_page_is_filtered_in_sql_by_name_tags_and_final_state(store):
    for n in range(1, 21):
        put(store, n, tags={"project": f"p{n % 2}", **({"odd": "x"} if n % 2 else {})},
            state="COMPLETE" if n % 3 == 0 else ACTIVE)
    assert ids(store.task_page(None, 5)) == [1, 2, 3, 4, 5]
    assert ids(store.task_page((5.0, f"tes-{5:032d}"), 3)) == [6, 7, 8]  # resumes after (created, id)
    assert ids(store.task_page(None, 50, name_prefix="sample-01")) == list(range(10, 20))
    assert ids(store.task_page(None, 50, tags={"project": "p1"})) == list(range(1, 21, 2))
    assert ids(store.task_page(None, 50, tags={"odd": ""})) == list(range(1, 21, 2))  # any value of the key
    assert ids(store.task_page(None, 50, tags={"project": "p1", "odd": "y"})) == []
    assert ids(store.task_page(None, 50, final_state="COMPLETE")) == [3, 6, 9, 12, 15, 18]
    assert ids(store.task_page(None, 50, final_state=ACTIVE, tags={"project": "p0"}, name_prefix="sample-00")) == [
        2, 4, 8]
    light = store.task_page(None, 1, final_state="COMPLETE", whole=False)[0]
    assert light.document is None and light.final_state == "COMPLETE" and light.manager == M
    assert store.task_page(None, 1)[0].document["tags"] == {"project": "p1", "odd": "x"}


def test_a_retired_task_outlives_its_job_until_it_is_forgotten(store):
    kept, gone = put(store, 1, tags={"a": "1"}), put(store, 2, tags={"a": "1"})
    store.retire_task(kept, {"name": None, "tags": {"a": "1"}, "inputs": []}, "COMPLETE", {"logs": []}, when=100.0)
    store.delete(M, kept)
    store.delete(M, gone)
    assert store.get(M, kept) is None and store.task_row(gone) is None
    row = store.task_row(kept)
    assert row.final_state == "COMPLETE" and row.record == {"logs": []}
    assert ids(store.task_page(None, 9, tags={"a": "1"})) == [1]  # the removed task's tags went with it
    assert store.task_records_before(100.0, 9) == [] and store.task_records_before(101.0, 9) == [kept]
    store.forget_tasks([kept])
    assert store.task_row(kept) is None
    assert store._reader().execute("SELECT count(*) FROM tes_task_tags").fetchone()[0] == 0


def test_tasks_whose_final_state_is_not_recorded_are_found(store):
    done, running, lost = put(store, 1), put(store, 2), put(store, 3)
    final = put(store, 4, state="COMPLETE")
    for task_id in (done, final):
        store.transition(M, task_id, (wire.State.QUEUED, wire.State.RUNNING, wire.State.POSTPROCESSING,
                                      wire.State.COMPLETE), returncode=0)
    store.transition(M, running, wire.State.QUEUED)
    store._db.execute("DELETE FROM jobs WHERE job_id=?", (lost,))
    found = {row[0]: row[3] for row in store.tasks_to_settle(wire.TERMINAL_STATES)}
    assert found == {done: "complete", lost: None}


def test_a_database_made_before_these_columns_opens_and_its_rows_are_to_be_settled(tmp_path):
    path = str(tmp_path / "old.sqlite")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tes_tasks (id TEXT PRIMARY KEY, manager TEXT NOT NULL, created REAL NOT NULL, name TEXT,
                                document TEXT NOT NULL);
        CREATE INDEX tes_tasks_order ON tes_tasks(created, id);
        PRAGMA user_version = 1;""")
    db.execute("INSERT INTO tes_tasks VALUES (?,?,?,?,?)",
               ("tes-" + "1" * 32, M, 1.0, "old", json.dumps({"tags": {"k": "v"}, "inputs": []})))
    db.commit()
    db.close()
    store = Store(path, synchronous="normal")
    try:
        row = store.task_row("tes-" + "1" * 32)
        assert row.final_state is None and row.record is None and row.document["tags"] == {"k": "v"}
        assert [r[0] for r in store.tasks_to_settle(wire.TERMINAL_STATES)] == [row.id]
        store.set_task_states({row.id: "SYSTEM_ERROR"}, {row.id: {"k": "v"}})
        assert ids(store.task_page(None, 9, tags={"k": "v"}, final_state="SYSTEM_ERROR")) == [int("1" * 32)]
        assert store._reader().execute("PRAGMA user_version").fetchone()[0] == 1  # an older version still opens it
    finally:
        store.close()


def test_a_page_is_filtered_by_owner_in_sql_live_or_retired(store):
    for n in range(1, 9):
        store.create(M, f"tes-{n:032d}")
        store.put_task(f"tes-{n:032d}", M, float(n), None,
                       {"tags": {}, "inputs": [], **({"owner": "alice" if n % 2 else "bob"} if n < 7 else {})})
    retired = f"tes-{1:032d}"
    store.retire_task(retired, {"tags": {}, "inputs": [], "owner": "alice"}, "COMPLETE", {"logs": []}, when=5.0)
    store.delete(M, retired)
    assert ids(store.task_page(None, 50, owner="alice")) == [1, 3, 5]  # the retired one still hers
    assert ids(store.task_page(None, 50, owner="bob")) == [2, 4, 6]
    assert ids(store.task_page(None, 2, owner="bob", final_state=ACTIVE, whole=False)) == [2, 4]
    assert ids(store.task_page(None, 50, owner="alice", final_state="COMPLETE")) == [1]
    assert store.task_page(None, 50, owner="") == []  # a caller with no name: none (an admin's tasks have no owner)
    assert ids(store.task_page(None, 50)) == list(range(1, 9))
    plan = " ".join(str(r[-1]) for r in store._reader().execute(
        "EXPLAIN QUERY PLAN SELECT id FROM tes_tasks WHERE owner = ? ORDER BY created, id", ("bob",)))
    assert "tes_tasks_owner" in plan


def test_an_older_versions_rows_get_their_owner_when_the_store_opens(tmp_path):
    path = str(tmp_path / "old.sqlite")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE tes_tasks (id TEXT PRIMARY KEY, manager TEXT NOT NULL, created REAL NOT NULL, name TEXT,
                                document TEXT NOT NULL);
        PRAGMA user_version = 1;""")
    db.execute("INSERT INTO tes_tasks VALUES (?,?,?,?,?)",
               ("tes-" + "1" * 32, M, 1.0, None, json.dumps({"tags": {}, "inputs": [], "owner": "alice"})))
    db.execute("INSERT INTO tes_tasks VALUES (?,?,?,?,?)",
               ("tes-" + "2" * 32, M, 2.0, None, json.dumps({"tags": {}, "inputs": []})))
    db.commit()
    db.close()
    store = Store(path, synchronous="normal")
    try:
        assert ids(store.task_page(None, 9, owner="alice")) == [int("1" * 32)]
        assert store.task_page(None, 9, owner="bob") == [] and len(store.task_page(None, 9)) == 2
    finally:
        store.close()
