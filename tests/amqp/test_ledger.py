"""The AMQP ledger and the router (outbox -> per-broker pending messages), without threads."""
import sqlite3
import time

import pytest

from pulsar_lite import wire
from pulsar_lite.amqp.ledger import Ledger, Outgoing
from pulsar_lite.amqp.router import Router
from pulsar_lite.amqp.topology import Topology
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(str(tmp_path / "amqp.sqlite"), "normal")
    yield ledger
    ledger.close()


def test_pending_is_fifo_per_broker_and_routing_is_idempotent(ledger):
    ledger.enqueue([Outgoing("A", "k1", {"n": 1}, source_seq=7), Outgoing("B", "k2", {"n": 2}, source_seq=7)])
    ledger.enqueue([Outgoing("A", "k1", {"n": 1}, source_seq=7)])  # routed twice after a crash: no duplicate
    ledger.enqueue([Outgoing("A", "k3", {"n": 3})])
    assert [(p.routing_key, p.payload["n"]) for p in ledger.pending("A")] == [("k1", 1), ("k3", 3)]
    assert [p.payload["n"] for p in ledger.pending("B")] == [2]
    ledger.sent(ledger.pending("A")[0])
    assert [p.payload["n"] for p in ledger.pending("A")] == [3]
    assert ledger.pending_count() == 2 and ledger.brokers_with_pending() == {"A", "B"}


def test_unacked_clock_starts_when_sent(ledger):
    ledger.enqueue([Outgoing("A", "su", {"job_id": "1"}, ack_uuid="u1")])
    assert ledger.due_republish("A", older_than=1e12) == []  # not sent yet: nothing to republish
    ledger.sent(ledger.pending("A")[0])
    assert [u for u, _, _ in ledger.due_republish("A", older_than=1e12)] == ["u1"]
    assert ledger.due_republish("A", older_than=0) == []
    assert ledger.next_republish("A") is not None
    assert ledger.acknowledged("u1") and not ledger.acknowledged("u1")
    assert ledger.unacked_count() == 0


def test_seen_is_recorded_with_the_reply(ledger):
    assert not ledger.seen("x")
    ledger.enqueue([Outgoing("A", "p_setup_ack", {"acknowledge_uuid_response": "x"})], seen_uuid="x")
    assert ledger.seen("x") and ledger.pending("A")[0].payload == {"acknowledge_uuid_response": "x"}


def test_origins_track_the_last_routed_state(ledger):
    ledger.remember_origin("m", "j1", "A")
    ledger.remember_origin("m", "j2", "B")
    assert ledger.origin("m", "j1") == "A" and ledger.origin("m", "nope") is None
    ledger.enqueue([Outgoing("A", "k", {}, job=("m", "j1", "complete"))])
    assert [row[1] for row in ledger.in_flight()] == ["j2"]
    ledger.remember_origin("m", "j1", "B")  # a new submission of the same id starts over
    assert {row[1] for row in ledger.in_flight()} == {"j1", "j2"}


# -- router -----------------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path):
    config = build_config({"staging_directory": str(tmp_path / "staging"),
                           "persistence_directory": str(tmp_path / "persisted"),
                           "store_synchronous": "normal"})
    engine = JobEngine(config)  # not started: we drive the store by hand
    engine.store.outbox_enabled = True
    yield engine
    engine.stop()


def fake_job(engine, job_id, *states):
    engine.store.create("_default_", job_id)
    engine.job_directory("_default_", job_id).create(None)
    for state in states:
        engine.store.transition("_default_", job_id, state)


def make_router(engine, ledger, acknowledge=False, brokers=("A", "B")):
    woken = []
    router = Router(engine, ledger, Topology(["_default_"], key_prefix="p"), brokers, acknowledge, True,
                    woken.append)
    return router, woken


def test_updates_go_to_the_broker_the_job_came_from(engine, ledger):
    router, woken = make_router(engine, ledger)
    ledger.remember_origin("_default_", "fromA", "A")
    ledger.remember_origin("_default_", "fromB", "B")
    fake_job(engine, "fromA", "queued", "running")
    fake_job(engine, "fromB", "queued", "running", "postprocessing", "complete")
    fake_job(engine, "fromREST", "queued", "running")
    assert router.route_outbox() == 3
    assert engine.store.outbox() == []
    assert [p.payload for p in ledger.pending("A")] == [{"job_id": "fromA", "complete": "false", "status": "running"}]
    assert [p.payload["status"] for p in ledger.pending("B")] == ["running", "complete"]
    complete = ledger.pending("B")[1].payload
    assert complete["complete"] == "true" and "working_directory_contents" in complete
    assert all(p.routing_key == "p_status_update" for p in ledger.pending("B"))
    assert set(woken) == {"A", "B"}


def test_acknowledged_updates_carry_ack_keys(engine, ledger):
    router, _ = make_router(engine, ledger, acknowledge=True)
    ledger.remember_origin("_default_", "j", "A")
    fake_job(engine, "j", "queued", "running")
    router.route_outbox()
    payload = ledger.pending("A")[0].payload
    assert payload["acknowledge_queue"] == "status_update_ack"
    assert payload["acknowledge_submit_queue"] == "status_update"
    assert ledger.pending("A")[0].ack_uuid == payload["acknowledge_uuid"]


def test_a_terminal_update_for_a_job_cleaned_since_is_skipped(engine, ledger):
    router, _ = make_router(engine, ledger)
    ledger.remember_origin("_default_", "j", "A")
    fake_job(engine, "j", "queued", "running", "postprocessing", "complete")
    engine.store.delete("_default_", "j")
    router.route_outbox()
    assert ledger.pending("A") == []


def test_sweep_announces_states_reached_without_an_outbox_row(engine, ledger):
    router, woken = make_router(engine, ledger)
    engine.store.outbox_enabled = False  # e.g. recovery before the face subscribed
    ledger.remember_origin("_default_", "done", "A")
    ledger.remember_origin("_default_", "killed", "A")
    ledger.remember_origin("_default_", "gone", "A")
    fake_job(engine, "done", "queued", "running", "postprocessing", "complete")
    fake_job(engine, "killed", "queued", "cancelled")
    assert router.sweep() == 1
    assert [p.payload["status"] for p in ledger.pending("A")] == ["complete"]
    assert ledger.in_flight() == []  # cancelled and vanished jobs are settled, not published
    assert router.sweep() == 0 and woken == ["A"]


def test_status_reply_for_an_unknown_job_is_lost(engine, ledger):
    router, _ = make_router(engine, ledger)
    reply = router.reply_status("A", "_default_", "never")
    assert reply.payload["status"] == wire.State.LOST and reply.payload["complete"] == "true"
    assert reply.ack_uuid is None and "acknowledge_uuid" not in reply.payload


# -- an OS crash loses the store's non-durable outbox_done ----------------------------------------
def put_back_outbox_rows(store, rows):
    """The outbox as a crash left it: ``outbox_done`` is not waited for, so its delete can be lost while the
    ledger (its own file, durable) kept the routed messages."""
    with sqlite3.connect(store.path) as db:
        db.executemany("INSERT INTO outbox(seq, manager, job_id, state, created) VALUES (?,?,?,?,?)",
                       [(*row, time.time()) for row in rows])


def client_acknowledges(ledger, broker):
    """The publisher republishes what was sent before and sends what is pending; the client acknowledges it."""
    received = [payload for _, _, payload in ledger.due_republish(broker, older_than=1e12)]
    received += [p.payload for p in ledger.pending(broker)]
    ledger.sent(*ledger.pending(broker))
    for payload in received:
        ledger.acknowledged(payload["acknowledge_uuid"])
    return received


@pytest.mark.parametrize("published_before_the_crash", [False, True])
def test_a_rerouted_outbox_row_leaves_nothing_unacknowledged(engine, tmp_path, published_before_the_crash):
    path = str(tmp_path / "amqp.sqlite")
    ledger = Ledger(path, "normal")
    router, _ = make_router(engine, ledger, acknowledge=True)
    ledger.remember_origin("_default_", "j", "A")
    fake_job(engine, "j", "queued", "running")
    rows = engine.store.outbox()
    assert router.route_outbox() == 1
    if published_before_the_crash:
        ledger.sent(*ledger.pending("A"))
    ledger.close()
    put_back_outbox_rows(engine.store, rows)

    ledger = Ledger(path, "normal")  # the daemon starts again
    try:
        router, _ = make_router(engine, ledger, acknowledge=True)
        router.route_outbox()
        assert engine.store.outbox() == [] and ledger.unacked_count() == 1  # the same update, the same row
        received = client_acknowledges(ledger, "A")
        assert [p["status"] for p in received] == ["running"]  # once: no duplicate either
        assert ledger.unacked_count() == 0 and ledger.pending_count() == 0
    finally:
        ledger.close()


def test_a_reused_outbox_seq_is_routed_again(engine, ledger):
    """A crash can lose a routed transition's store commit, and with it its seq: the next update then gets the
    same seq and must not be taken for a re-route."""
    router, _ = make_router(engine, ledger, acknowledge=True)
    ledger.remember_origin("_default_", "a", "A")
    ledger.remember_origin("_default_", "b", "A")
    fake_job(engine, "a", "queued", "running")
    (seq, *_), = engine.store.outbox()
    router.route_outbox()
    engine.store.outbox_enabled = False
    fake_job(engine, "b", "queued", "running")  # its commit took the lost one's seq
    put_back_outbox_rows(engine.store, [(seq, "_default_", "b", "running")])
    router.route_outbox()
    assert [(p.payload["job_id"], p.payload["status"]) for p in ledger.pending("A")] == [
        ("a", "running"), ("b", "running")]


def test_a_ledger_from_before_unacked_source_seq_opens(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE unacked (uuid TEXT PRIMARY KEY, broker TEXT NOT NULL, routing_key TEXT NOT NULL,"
                   " payload TEXT NOT NULL, sent REAL)")
        db.execute("INSERT INTO unacked VALUES ('u', 'A', 'k', '{}', 1.0)")
    ledger = Ledger(path, "normal")
    try:
        ledger.enqueue([Outgoing("A", "k", {"job_id": "j", "status": "running"}, ack_uuid="v", source_seq=3)])
        ledger.enqueue([Outgoing("A", "k", {"job_id": "j", "status": "running"}, ack_uuid="w", source_seq=3)])
        assert ledger.unacked_count() == 2 and ledger.acknowledged("u")
    finally:
        ledger.close()


def test_kills_before_setup_expire_and_are_bounded(ledger, monkeypatch):
    from pulsar_lite.amqp import ledger as ledger_module

    ledger.remember_kill("m", "old")
    assert ledger.killed("m", "old") and not ledger.killed("m", "other") and not ledger.killed("n", "old")
    clock = iter(range(int(time.time()) + ledger_module.KILL_RETENTION + 1, 2**40))
    monkeypatch.setattr(ledger_module.time, "time", lambda: next(clock))
    assert not ledger.killed("m", "old")
    monkeypatch.setattr(ledger_module, "MAX_KILLS", 3)
    for n in range(5):
        ledger.remember_kill("m", f"k{n}")
    assert [ledger.killed("m", f"k{n}") for n in range(5)] == [False, False, True, True, True]  # the newest
    assert ledger._read("SELECT count(*) FROM kills")[0][0] == 3
    ledger.forget_kill("m", "k4")
    assert not ledger.killed("m", "k4")
