"""The relay face in this process (engine + message face) against the real pulsar-relay that
scripts/ci/relay-up.sh runs on Redis: setup, status request, kill, duplicates, the capability snapshot,
and a restart of the face that neither replays nor skips a message."""
import json

import pytest

from tests.amqp import Harness, setup_body
from tests.conftest import need
from tests.relay import ADMIN, ADMIN_PASSWORD, RELAY_URL, Peer, relay_available, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix():
    need(relay_available(), f"pulsar-relay is not reachable at {RELAY_URL} (scripts/ci/relay-up.sh)")
    return unique("plr")


def harness(tmp_path, prefix, **app):
    return Harness(tmp_path, url=RELAY_URL, message_queue_username=ADMIN, message_queue_password=ADMIN_PASSWORD,
                   relay_topic_prefix=prefix, relay_long_poll_timeout=5, **app)


def test_setup_runs_and_its_updates_come_back(tmp_path, prefix):
    h = harness(tmp_path, prefix).start()
    peer = Peer(prefix=prefix)
    try:
        peer.start_at_beginning("job_status_update")
        peer.send("job_setup", setup_body("r1"))
        final = peer.wait_for("job_status_update", lambda p: p["job_id"] == "r1" and p["status"] == "complete")
        assert final["returncode"] == 0 and final["complete"] == "true"
        assert peer.updates("r1")[-1] == "complete"
        # a status request is answered with the current status
        peer.send("job_status_request", {"job_id": "r1"})
        peer.wait_for("job_status_update", lambda p: p["job_id"] == "r1" and len(peer.updates("r1")) >= 3)
        # a duplicate setup does not run the job again: the state is re-announced
        peer.send("job_setup", setup_body("r1"))
        peer.wait_for("job_status_update", lambda p: p["job_id"] == "r1" and len(peer.updates("r1")) >= 4)
        assert set(peer.updates("r1")) <= {"running", "complete"}
        caps = Peer(prefix=prefix)
        caps.start_at_beginning("pulsar_capabilities")
        snapshot = caps.wait_for("pulsar_capabilities", lambda p: True)
        assert snapshot["schema_version"] == 1 and snapshot["manager_name"] == "_default_"
        health = h.face.health()["brokers"]
        assert health[0]["broker"] == f"relay:{RELAY_URL}" and health[0]["pending"] == 0
    finally:
        h.stop()


def test_kill_and_named_manager_topics(tmp_path, prefix):
    h = harness(tmp_path, prefix, managers={"big": {"type": "queued_python", "num_concurrent_jobs": 1}}).start()
    peer = Peer(prefix=prefix)
    try:
        peer.start_at_beginning("job_status_update", "big")
        peer.send("job_setup", setup_body("k1", "sleep 30"), manager="big")
        h.wait_state("k1", "running", manager="big")
        peer.send("job_kill", {"job_id": "k1"}, manager="big")
        h.wait_state("k1", "cancelled", manager="big")
        # a kill before its setup: the setup does not run the job
        peer.send("job_kill", {"job_id": "k2"}, manager="big")
        peer.send("job_setup", setup_body("k2", "sleep 30"), manager="big")
        peer.wait_for("job_status_update", lambda p: p["job_id"] == "k2" and p["status"] == "cancelled",
                      manager="big")
    finally:
        h.stop()


def test_a_restarted_face_neither_replays_nor_skips(tmp_path, prefix):
    h = harness(tmp_path, prefix).start()
    peer = Peer(prefix=prefix)
    try:
        peer.start_at_beginning("job_status_update")
        peer.send("job_setup", setup_body("a1"))
        peer.wait_for("job_status_update", lambda p: p["job_id"] == "a1" and p["status"] == "complete")
        h.stop_face()
        peer.send("job_setup", setup_body("a2"))  # while the face is down
        cursor = next((tmp_path / "persisted").glob("relay-cursor-*.json"))
        assert f"{prefix}_job_setup" in json.loads(cursor.read_text())["topics"]
        h.start_face()
        peer.wait_for("job_status_update", lambda p: p["job_id"] == "a2" and p["status"] == "complete")
        assert peer.updates("a1").count("complete") == 1  # a1's setup was not handled again
    finally:
        h.stop()


def test_wrong_credentials_are_said_and_retried(tmp_path, prefix):
    h = Harness(tmp_path, url=RELAY_URL, message_queue_username=ADMIN, message_queue_password="wrong",
                relay_topic_prefix=prefix, relay_long_poll_timeout=5)
    h.start_engine()
    h.start_face(wait=False)
    try:
        import time

        deadline = time.time() + 10
        while not h.face.not_ready() or "RelayAuthFailed" not in " ".join(h.face.not_ready()):
            assert time.time() < deadline, h.face.not_ready()
            time.sleep(0.1)
        assert not h.face.ready()
        assert f"relay:{RELAY_URL} is not connected (RelayAuthFailed: login to" in h.face.not_ready()[0]
    finally:
        h.stop()
