"""The AMQP face end to end in one process: real engine, kombu ``memory://`` broker."""
import time

import kombu.message
import pytest

from tests.amqp import Harness, Peer, setup_body, unique

QUICK = "echo 'stdout output' > ../metadata/tool_stdout; exit 3"


@pytest.fixture
def prefix():
    return unique("mem")


@pytest.fixture
def harness(tmp_path, prefix):
    harnesses = []

    def make(**app):
        app.setdefault("amqp_key_prefix", prefix)
        app.setdefault("status_outbox_drain_interval", 60)  # prove the publisher is woken, not ticking
        h = Harness(tmp_path / f"h{len(harnesses)}", **app)
        harnesses.append(h)
        return h

    yield make
    for h in harnesses:
        h.stop()


@pytest.fixture
def peer(prefix):
    peer = Peer("memory://", prefix)
    peer.listen("status_update", "setup_ack", "kill_ack")
    yield peer
    peer.close()


def is_(job_id, status):
    return lambda body: body.get("job_id") == job_id and body.get("status") == status


def test_setup_runs_the_job_and_publishes_running_then_complete(harness, peer):
    h = harness().start()
    started = time.time()
    peer.send("setup", setup_body("j1", QUICK, env=[{"name": "X", "value": "1"}], submit_params={}))
    complete = peer.wait_for("status_update", is_("j1", "complete"), timeout=10)
    assert time.time() - started < 5  # the safety re-drain is 60 s: this was event-driven
    assert peer.updates("j1") == ["running", "complete"]
    assert complete["complete"] == "true" and complete["returncode"] == 3
    assert complete["stdout"] == "stdout output\n"
    assert "acknowledge_uuid" not in complete
    assert complete["job_directory"] == str(h.root / "staging" / "j1")
    running = peer.wait_for("status_update", is_("j1", "running"))
    assert running == {"job_id": "j1", "complete": "false", "status": "running"}


def test_messages_are_consumed_from_a_named_manager(tmp_path):
    manager = unique("named")
    h = Harness(tmp_path, managers={manager: {"num_concurrent_jobs": 2}})
    peer = Peer("memory://", f"pulsar_{manager}_")
    peer.listen("status_update")
    try:
        h.start()
        peer.send("setup", setup_body("n1", QUICK))
        peer.wait_for("status_update", is_("n1", "complete"))
        assert h.state("n1", manager) == "complete"
    finally:
        peer.close()
        h.stop()


@pytest.mark.parametrize("send, reason", [
    (lambda p: p.send_raw("setup", "{not json"), "undecodable"),
    (lambda p: p.send_raw("setup", "plain words", content_type="text/plain"), "undecodable"),
    (lambda p: p.send("setup", ["a", "list"]), "not an object"),
    (lambda p: p.send("setup", {"command_line": "true"}), "missing job_id"),
    (lambda p: p.send("setup", setup_body("../etc")), "invalid job_id"),
    (lambda p: p.send("setup", setup_body("big", "true", padding="x" * 5000)), "amqp_max_message_size"),
    (lambda p: p.send("kill", {}), "missing job_id"),
    (lambda p: p.send("status", {"job_id": None}), "missing job_id"),
])
def test_malformed_messages_are_rejected_and_consuming_goes_on(harness, peer, caplog, send, reason):
    h = harness(amqp_max_message_size=4096).start()
    send(peer)
    peer.send("setup", setup_body("after", QUICK))
    peer.wait_for("status_update", is_("after", "complete"))
    assert reason in caplog.text
    assert h.state("big") is None


def test_an_oversized_message_is_never_decoded(harness, peer, monkeypatch):
    """The size limit guards the JSON parser: the consumer takes deliveries undecoded and checks them first."""
    decoded = []
    original = kombu.message.Message.decode

    def decode(message):
        decoded.append(len(message.body))
        return original(message)

    monkeypatch.setattr(kombu.message.Message, "decode", decode)
    h = harness(amqp_max_message_size=4096).start()
    peer.send("setup", setup_body("big", "true", padding="x" * 50_000))
    peer.send("setup", setup_body("after", QUICK))
    peer.wait_for("status_update", is_("after", "complete"))
    assert h.state("big") is None
    assert decoded and max(decoded) < 4096


def test_setup_without_command_line_reports_failed(harness, peer, caplog):
    harness().start()
    peer.send("setup", setup_body("nocmd", command_line=""))
    failed = peer.wait_for("status_update", is_("nocmd", "failed"))
    assert failed["complete"] == "true" and "command_line" in failed["stderr"]
    assert "rejected: missing command_line" in caplog.text


def test_engine_refusal_is_rejected_and_reported(harness, peer, caplog):
    h = harness().start()
    peer.send("setup", setup_body("old", "echo __PULSAR_JOBS_DIRECTORY__"))
    failed = peer.wait_for("status_update", is_("old", "failed"))
    assert "__PULSAR_JOBS_DIRECTORY__" in failed["stderr"]
    assert h.state("old") in (None, "setup")


def test_unexpected_error_is_rejected_with_a_failed_update(harness, peer, monkeypatch, caplog):
    h = harness().start()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(h.engine, "submit", broken)
    peer.send("setup", setup_body("boom", QUICK))
    failed = peer.wait_for("status_update", is_("boom", "failed"))
    assert "disk on fire" in failed["stderr"] and "disk on fire" in caplog.text


def test_duplicate_setup_does_not_rerun_and_reannounces(harness, peer):
    h = harness().start()
    peer.send("setup", setup_body("dup", QUICK))
    peer.wait_for("status_update", is_("dup", "complete"))
    runs = [s for s, _, _ in h.engine.store.transitions("_default_", "dup")].count("running")
    peer.send("setup", setup_body("dup", QUICK))  # a redelivery after the job finished
    peer.wait_for("status_update", lambda b: b.get("job_id") == "dup" and peer.updates("dup").count("complete") == 2)
    assert [s for s, _, _ in h.engine.store.transitions("_default_", "dup")].count("running") == runs


def test_kill_cancels_a_running_job_and_ignores_unknown_ones(harness, peer, caplog):
    caplog.set_level("INFO", logger="pulsar_lite")
    h = harness().start()
    peer.send("kill", {"job_id": "never-seen"})
    peer.send("setup", setup_body("long", "sleep 30"))
    peer.wait_for("status_update", is_("long", "running"))
    peer.send("kill", {"job_id": "long"})
    h.wait_state("long", "cancelled")
    assert "kill for an unknown job" in caplog.text
    peer.pump(0.3)
    assert peer.updates("long") == ["running"]  # cancelled is not published (Pulsar)


def test_status_requests_answer_with_the_current_status(harness, peer):
    harness(amqp_acknowledge=True).start()
    peer.send("status", {"request": "status", "job_id": "ghost", "force_noack": True})
    lost = peer.wait_for("status_update", is_("ghost", "lost"))
    assert lost["complete"] == "true" and lost["returncode"] is None
    assert "acknowledge_uuid" not in lost  # replies to status requests are never acknowledged
    peer.send("setup", setup_body("st", "sleep 30"))
    peer.wait_for("status_update", is_("st", "running"))
    peer.send("setup", {"request": "status", "job_id": "st"})  # pre-0.16 clients asked on setup
    peer.wait_for("status_update", lambda b: b.get("job_id") == "st" and "acknowledge_uuid" not in b)
    peer.send("kill", {"job_id": "st"})


def test_rest_jobs_are_not_published(harness, peer):
    h = harness().start()
    h.engine.setup("_default_", "rest1")
    h.engine.submit("_default_", "rest1", {"command_line": "true"})
    h.wait_state("rest1", "complete")
    peer.send("setup", setup_body("mq1", QUICK))
    peer.wait_for("status_update", is_("mq1", "complete"))
    assert peer.updates("rest1") == []


def test_updates_made_while_the_face_was_down_are_published_at_start(harness, peer):
    h = harness()
    h.start()
    peer.send("setup", setup_body("slow", "sleep 0.5"))
    peer.wait_for("status_update", is_("slow", "running"))
    h.stop_face()  # e.g. a restart of the face; the outbox keeps what happens meanwhile
    h.wait_state("slow", "complete")
    assert h.engine.store.outbox() != []
    h.start_face()
    peer.wait_for("status_update", is_("slow", "complete"))
    assert h.engine.store.outbox() == []


def test_states_reached_before_the_outbox_was_enabled_are_swept(harness, peer):
    h = harness()
    h.start()
    peer.send("setup", setup_body("rec", "sleep 0.5"))
    peer.wait_for("status_update", is_("rec", "running"))
    h.stop_face()
    h.engine.store.outbox_enabled = False  # as during engine.start() recovery, before start_amqp
    h.wait_state("rec", "complete")
    assert h.engine.store.outbox() == []
    h.start_face()
    peer.wait_for("status_update", is_("rec", "complete"))


# -- application-level acknowledgements (amqp_acknowledge) ------------------------------------------
def test_acknowledge_protocol(harness, peer, prefix):
    h = harness(amqp_acknowledge=True, amqp_ack_republish_time=0.3).start()
    body = setup_body("ack1", "sleep 0.3", acknowledge_uuid="u-setup-1", acknowledge_queue="setup_ack",
                      acknowledge_submit_queue="setup")
    peer.send("setup", body)
    assert peer.wait_for("setup_ack", lambda b: True) == {"acknowledge_uuid_response": "u-setup-1"}
    running = peer.wait_for("status_update", is_("ack1", "running"))
    assert running["acknowledge_queue"] == "status_update_ack"
    assert running["acknowledge_submit_queue"] == "status_update"
    # acknowledge "running" only: "complete" is republished with force_noack until acknowledged
    peer.send("status_update_ack", {"acknowledge_uuid_response": running["acknowledge_uuid"]})
    first = peer.wait_for("status_update", lambda b: is_("ack1", "complete")(b) and "force_noack" not in b)
    again = peer.wait_for("status_update", lambda b: is_("ack1", "complete")(b) and b.get("force_noack"), timeout=5)
    assert again["acknowledge_uuid"] == first["acknowledge_uuid"]
    assert not any(b.get("force_noack") for b in peer.received["status_update"] if b["status"] == "running")
    peer.send("status_update_ack", {"acknowledge_uuid_response": first["acknowledge_uuid"]})
    deadline = time.time() + 5
    while h.face.ledger.unacked_count() and time.time() < deadline:
        time.sleep(0.05)
    assert h.face.ledger.unacked_count() == 0
    count = len(peer.updates("ack1"))
    peer.pump(0.8)
    assert len(peer.updates("ack1")) == count  # no more republishing
    # the client republishes the setup (it missed our ack): acknowledged again, not run again
    peer.send("setup", dict(body, force_noack=True))
    peer.wait_for("setup_ack", lambda b: len(peer.received["setup_ack"]) == 2)
    assert [s for s, _, _ in h.engine.store.transitions("_default_", "ack1")].count("queued") == 1


def test_rejected_messages_are_still_acknowledged(harness, peer):
    harness().start()
    peer.send("kill", {"acknowledge_uuid": "u-kill", "acknowledge_queue": "kill_ack"})  # no job_id
    assert peer.wait_for("kill_ack", lambda b: True) == {"acknowledge_uuid_response": "u-kill"}


def test_unacked_updates_are_not_republished_once_acks_are_off(harness, peer, prefix):
    h = harness(amqp_acknowledge=True, amqp_ack_republish_time=60).start()
    peer.send("setup", setup_body("a2", QUICK))
    peer.wait_for("status_update", is_("a2", "complete"))
    assert h.face.ledger.unacked_count() == 2
    h.stop()
    again = Harness(h.root, amqp_key_prefix=prefix, amqp_acknowledge=False)
    try:
        again.start()
        assert again.face.ledger.unacked_count() == 0
    finally:
        again.stop()


def test_publish_options_reach_the_broker(harness, peer):
    harness(amqp_publish_retry=True, amqp_publish_priority=7, amqp_publish_delivery_mode=1).start()
    peer.send("setup", setup_body("opts", QUICK))
    peer.wait_for("status_update", is_("opts", "complete"))
    properties = peer.properties["status_update"][-1]
    assert properties["priority"] == 7 and properties["delivery_mode"] == 1


def test_face_health_and_stop_are_quick(harness):
    h = harness().start()
    health = h.face.health()
    assert health["brokers"][0]["publisher_connected"] and health["brokers"][0]["consuming"]
    started = time.time()
    h.stop_face()
    assert time.time() - started < 3


def test_start_amqp_without_url_is_none(tmp_path):
    from pulsar_lite.amqp import start_amqp

    h = Harness(tmp_path, url=None)
    assert start_amqp(None, h.config) is None
