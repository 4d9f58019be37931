import pytest

from pulsar_lite import wire
from pulsar_lite.store import IllegalTransition, Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite"))
    yield s
    s.close()


def test_lifecycle_and_history(store):
    store.create("m", "1", "tool", "1.0")
    store.transition("m", "1", wire.State.QUEUED, launch_config={"command_line": "true"})
    store.transition("m", "1", wire.State.RUNNING, pid=42)
    record = store.transition("m", "1", wire.State.POSTPROCESSING, returncode=0)
    assert record.pid == 42 and record.returncode == 0 and record.launch_config == {"command_line": "true"}
    store.transition("m", "1", wire.State.COMPLETE)
    states = [s for s, _, _ in store.transitions("m", "1")]
    assert states == ["setup", "queued", "running", "postprocessing", "complete"]


def test_terminal_is_a_sink(store):
    store.create("m", "1")
    store.transition("m", "1", wire.State.CANCELLED)
    with pytest.raises(IllegalTransition):
        store.transition("m", "1", wire.State.RUNNING)
    with pytest.raises(IllegalTransition):
        store.transition("m", "1", wire.State.COMPLETE, expect=(wire.State.RUNNING,))


def test_outbox_written_with_the_transition(store):
    store.outbox_enabled = True
    store.create("m", "1")
    store.transition("m", "1", wire.State.QUEUED)
    store.transition("m", "1", wire.State.RUNNING)
    assert [row[3] for row in store.outbox()] == ["running"]  # queued is not published
    seq = store.outbox()[0][0]
    store.outbox_done(seq)
    assert store.outbox() == []


def test_path_of_states_in_one_transaction(store):
    store.outbox_enabled = True
    store.create("m", "1")
    store.transition("m", "1", wire.State.QUEUED)
    store.transition("m", "1", wire.State.RUNNING)
    with pytest.raises(IllegalTransition):  # every step must be allowed, not only the first
        store.transition("m", "1", (wire.State.POSTPROCESSING, wire.State.QUEUED))
    assert store.get("m", "1").state == wire.State.RUNNING  # nothing of the refused path was kept
    record = store.transition("m", "1", (wire.State.POSTPROCESSING, wire.State.FAILED), returncode=3,
                              message="boom")
    assert record.state == wire.State.FAILED and record.returncode == 3 and record.message == "boom"
    history = store.transitions("m", "1")
    assert [s for s, _, _ in history][-2:] == ["postprocessing", "failed"]
    assert history[-2][2] == "boom" and history[-1][2] is None
    assert [row[3] for row in store.outbox()] == ["running", "failed"]  # postprocessing is not published
    store.outbox_done(*(row[0] for row in store.outbox()))
    assert store.outbox() == []


def test_state_survives_reopen(tmp_path):
    path = str(tmp_path / "db.sqlite")
    store = Store(path)
    store.create("m", "1")
    store.transition("m", "1", wire.State.QUEUED)
    store.close()
    again = Store(path)
    assert again.get("m", "1").state == wire.State.QUEUED
    assert [r.job_id for r in again.jobs_in_states([wire.State.QUEUED])] == ["1"]
    again.close()


def _from_disk(store, manager, job_id):
    """The row as a fresh SQLite connection reads it (not through any Store)."""
    import sqlite3
    from pulsar_lite.store import JobRecord
    fresh = sqlite3.connect(store.path)
    fresh.row_factory = sqlite3.Row
    try:
        row = fresh.execute("SELECT * FROM jobs WHERE manager=? AND job_id=?", (manager, job_id)).fetchone()
        return JobRecord.from_row(row) if row else None
    finally:
        fresh.close()


def test_cached_records_are_what_sqlite_holds(store):
    store.create("m", "1", "tool")
    store.transition("m", "1", wire.State.QUEUED, launch_config={"command_line": "true"})
    store.update("m", "1", pid=7)
    with pytest.raises(IllegalTransition):  # rolled back: the cache keeps the committed row
        store.transition("m", "1", wire.State.COMPLETE, expect=(wire.State.RUNNING,))
    cached, disk = store.get("m", "1"), _from_disk(store, "m", "1")
    assert (cached.state, cached.pid, cached.launch_config) == (disk.state, disk.pid, disk.launch_config)
    assert cached.state == wire.State.QUEUED and cached.pid == 7
    store.delete("m", "1")
    assert store.get("m", "1") is None and _from_disk(store, "m", "1") is None


def test_records_built_without_reading_back_equal_the_rows(store):
    """create, transition and update build the new record from the cached one instead of reading the row back:
    every column must come out as SQLite stores it."""
    assert store.create("m", "r", "tool", "1.0") == _from_disk(store, "m", "r")
    steps = [
        (wire.State.QUEUED, {"launch_config": {"command_line": "true", "env": [{"name": "A", "value": "é"}]}}),
        (wire.State.RUNNING, {"pid": 4242, "external_id": "x-1"}),
        ((wire.State.POSTPROCESSING, wire.State.FAILED), {"returncode": -9, "message": "killed",
                                                          "cancel_requested": 1, "stage_out_seconds": 0.25}),
    ]
    for state, fields in steps:
        record = store.transition("m", "r", state, **fields)
        disk = _from_disk(store, "m", "r")
        assert record == disk and record.launch_config == disk.launch_config
        assert store.get("m", "r") is record
    assert record.cancel_requested is True and record.launch_config["env"][0]["value"] == "é"
    store.update("m", "r", launch_config={"command_line": "false"}, pid=None, stage_in_bytes=12)
    record = store.get("m", "r")
    assert record == _from_disk(store, "m", "r") and record.launch_config == {"command_line": "false"}


def test_a_transition_of_an_uncached_job_reads_sqlite(store, monkeypatch):
    monkeypatch.setattr(Store, "CACHE_SIZE", 1)
    store.create("m", "old")
    store.create("m", "new")  # pushes "old" out of the cache
    assert ("m", "old") not in store._cache
    record = store.transition("m", "old", wire.State.QUEUED, launch_config={"command_line": "true"})
    assert record == _from_disk(store, "m", "old") and record.state == wire.State.QUEUED
    with pytest.raises(IllegalTransition):
        store.transition("m", "gone", wire.State.QUEUED)


def test_the_cache_is_bounded_and_misses_read_sqlite(store, monkeypatch):
    monkeypatch.setattr(Store, "CACHE_SIZE", 3)
    for job_id in "abcde":
        store.create("m", job_id)
    assert len(store._cache) == 3
    assert ("m", "a") not in store._cache
    assert store.get("m", "a").state == wire.SETUP  # from SQLite


def test_history_stays_ordered_when_row_ids_are_reused(store):
    store.create("m", "old")
    store.transition("m", "old", wire.State.QUEUED)
    store.create("m", "new")  # its rows follow old's
    store.delete("m", "old")  # the largest ids go; new ids may reuse them
    for state in (wire.State.QUEUED, wire.State.RUNNING, wire.State.POSTPROCESSING, wire.State.COMPLETE):
        store.transition("m", "new", state)
    assert [s for s, _, _ in store.transitions("m", "new")] == [
        "setup", "queued", "running", "postprocessing", "complete"]


def test_a_database_made_with_the_state_index_loses_it(tmp_path):
    import sqlite3
    path = str(tmp_path / "db.sqlite")
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX jobs_state ON jobs(state)")  # as databases made before had it
    db.commit()
    db.close()
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT name FROM sqlite_master WHERE name='jobs_state'").fetchall() == []
    db.close()


def test_a_second_store_on_the_same_state_is_refused_with_the_holders_pid(tmp_path):
    import os
    from pulsar_lite.errors import StateInUse
    path = str(tmp_path / "db.sqlite")
    first = Store(path)
    with pytest.raises(StateInUse, match=f"in use by another pulsar_lite daemon \\(pid {os.getpid()}\\)"):
        Store(path)
    first.close()
    Store(path).close()  # released with the store (and by the kernel when a daemon dies)


def test_a_damaged_store_stops_the_start_with_one_line_naming_the_file(tmp_path):
    from pulsar_lite.errors import StoreOpenError
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not an SQLite database, it was overwritten" * 100)
    with pytest.raises(StoreOpenError) as raised:
        Store(str(path))
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and "not a database" in message
    assert "restore it from a backup, or move it" in message
    Store(str(tmp_path / "other.sqlite")).close()  # the claim on the damaged one was released: no leak


def test_a_store_written_by_a_newer_version_is_refused(tmp_path):
    import sqlite3

    from pulsar_lite.errors import StoreOpenError
    from pulsar_lite.records import SCHEMA_VERSION
    path = str(tmp_path / "db.sqlite")
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreOpenError, match="written by a newer pulsar_lite"):
        Store(path)


def test_a_commit_that_fails_is_rolled_back_and_the_next_write_works(tmp_path):
    """A real COMMIT failure (a deferred constraint checked at COMMIT): the connection must not be left inside
    the transaction, or every later BEGIN fails ('cannot start a transaction within a transaction')."""
    import sqlite3
    import threading

    from pulsar_lite.groupsync import open_database, transaction
    schema = ("CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);"
              "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id) "
              "DEFERRABLE INITIALLY DEFERRED);")
    db, sync = open_database(str(tmp_path / "t.sqlite"), schema, "normal")
    db.execute("PRAGMA foreign_keys = ON")
    lock = threading.Lock()
    with pytest.raises(sqlite3.IntegrityError):
        with transaction(db, lock, sync):
            db.execute("INSERT INTO child(id, parent) VALUES (1, 42)")  # no parent 42: refused at COMMIT
    assert not db.in_transaction
    with transaction(db, lock, sync):
        db.execute("INSERT INTO parent(id) VALUES (42)")
        db.execute("INSERT INTO child(id, parent) VALUES (1, 42)")
    assert db.execute("SELECT count(*) FROM child").fetchone()[0] == 1
    db.close()
