"""A relay with its own rate limits on (120 publishes a minute per address, in memory): a burst of status
updates larger than that is neither lost nor reordered; what the relay throttles goes out in bulk."""
import time

import pytest

from tests.amqp import Harness
from tests.conftest import free_port, need
from tests.relay import ADMIN, ADMIN_PASSWORD, Peer, RelayProcess, relay_installed, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_throttled_burst_arrives_whole_and_in_order(tmp_path):
    need(relay_installed(), "pulsar-relay is not installed (scripts/ci/relay-up.sh)")
    relay = RelayProcess(free_port(), tmp_path / "relay", rate_limit=True).start()
    prefix = unique("plt")
    h = Harness(tmp_path / "d", url=relay.url, message_queue_username=ADMIN, message_queue_password=ADMIN_PASSWORD,
                relay_topic_prefix=prefix, relay_long_poll_timeout=5, message_queue_publish_capabilities=False,
                managers={"_default_": {"type": "queued_python", "num_concurrent_jobs": 8}})
    try:
        h.start()
        peer = Peer(relay.url, prefix=prefix)
        peer.start_at_beginning("job_status_update")
        # spend this address's single-publish budget first (the daemon shares it): the daemon's first publish is
        # answered 429 whatever the timing (before, a burst that happened to go out in bulk met no limit at all)
        import requests

        for spent in range(400):
            try:
                peer.send("spend", {"n": spent})
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 429:
                    break
                raise
        else:
            pytest.fail("the relay never said 429: its rate limit is not on")
        face = h.face
        (label,) = face.publishers
        jobs = [f"b{index:03d}" for index in range(130)]  # 260 updates: over the relay's 120 a minute
        for job_id in jobs:  # as if each setup had come from the relay (the test's own publishes are not spent)
            face.ledger.remember_origin("_default_", job_id, label)
            h.engine.submit("_default_", job_id, {"command_line": "true", "setup": True})
        deadline = time.time() + 150  # the relay's window is a minute
        while time.time() < deadline and not all(peer.updates(j)[-1:] == ["complete"] for j in jobs):
            peer.poll("job_status_update", timeout=2)
        for job_id in jobs:
            assert peer.updates(job_id) == ["running", "complete"], (job_id, peer.updates(job_id))
        publisher = face.publishers[label]
        assert publisher.throttled >= 1  # the relay did say 429
        assert publisher.requests < len(jobs) * 2  # and what piled up went in bulk
    finally:
        h.stop()
        relay.stop()
