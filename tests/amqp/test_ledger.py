"""The AMQP ledger and the router (outbox -> per-broker pending messages), without threads."""
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
