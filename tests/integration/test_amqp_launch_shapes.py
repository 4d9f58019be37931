"""Every shape of launch message Pulsar's MQ consumer accepts, over a real RabbitMQ, to a real daemon.

Galaxy's runner always sends ``setup_params``; other MQ clients (Pulsar's own test tooling, scripts) send
a bare ``"setup": true``, leave optional keys out, or set the job up beforehand. The messages are built by
hand here because no released client builds these shapes.
"""
from __future__ import annotations

import pytest

from tests.amqp import RABBIT_URL, Peer, delete_queues, prefixed_names, rabbit_available, unique, wait_for_queues
from tests.conftest import need

from .rest_helpers import rest

pytestmark = pytest.mark.integration

QUICK = "echo ran >> ../outputs/runs; echo out > ../metadata/tool_stdout"


@pytest.fixture(params=[False, True], ids=["plain", "amqp_acknowledge"])
def mq(request, daemon_factory):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    prefix = unique("shape")
    acknowledge = request.param
    daemon = daemon_factory({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix,
                             "amqp_acknowledge": acknowledge, "amqp_ack_republish_time": 2,
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    peer = Peer(RABBIT_URL, prefix)
    try:
        wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
        peer.listen("status_update")
        peer.acknowledge = acknowledge
        yield daemon, peer
    finally:
        peer.close()
        daemon.stop()
        delete_queues(prefixed_names(prefix))


def finish(daemon, peer, job_id, timeout=20):
    """Wait for the job's terminal update; with acknowledgements on, acknowledge every update as Galaxy does
    and make sure none comes twice."""
    def acknowledge_all():
        if peer.acknowledge:
            for body in peer.received["status_update"]:
                uuid = body.get("acknowledge_uuid")
                if uuid and uuid not in acknowledged:
                    acknowledged.add(uuid)
                    peer.send("status_update_ack", {"acknowledge_uuid_response": uuid})

    acknowledged: set[str] = set()
    final = peer.wait_for("status_update", lambda b: b.get("job_id") == job_id and (acknowledge_all() or True)
                          and b["status"] in ("complete", "failed", "lost"), timeout=timeout)
    acknowledge_all()
    peer.pump(2.5 if peer.acknowledge else 0.5)  # past a republish period: nothing may come again
    acknowledge_all()
    return final


def updates(peer, job_id):
    return [b["status"] for b in peer.received["status_update"] if b.get("job_id") == job_id]


def test_bare_setup_true_runs_the_job(mq):
    daemon, peer = mq
    job_id = unique("bare")
    peer.send("setup", {"job_id": job_id, "setup": True,
                        "command_line": f"{QUICK}; echo __PULSAR_JOB_DIRECTORY__ > ../outputs/where"})
    final = finish(daemon, peer, job_id)
    assert final["status"] == "complete" and final["returncode"] == 0 and final["stdout"] == "out\n"
    assert updates(peer, job_id) == ["running", "complete"]  # in order, once each
    outputs = daemon.staging / job_id / "outputs"
    assert (outputs / "runs").read_text() == "ran\n"
    assert (outputs / "where").read_text().strip() == str(daemon.staging / job_id)


@pytest.mark.parametrize("setup_params", [
    {"job_id": "SELF", "tool_id": "cat1", "tool_version": "1.0", "use_metadata": True},  # what Galaxy sends
    {"tool_id": "cat1"},  # no job_id: the message's
    {"job_id": "SELF"},  # no tool
], ids=["galaxy", "without-job-id", "without-tool"])
def test_setup_params_with_or_without_ids(mq, setup_params):
    daemon, peer = mq
    job_id = unique("sp")
    params = {k: (job_id if v == "SELF" else v) for k, v in setup_params.items()}
    peer.send("setup", {"job_id": job_id, "command_line": QUICK, "setup_params": params})
    assert finish(daemon, peer, job_id)["status"] == "complete"
    assert updates(peer, job_id) == ["running", "complete"]


def test_a_job_set_up_beforehand_needs_no_setup_in_the_message(mq):
    daemon, peer = mq
    job_id = unique("pre")
    assert rest(daemon.url, "POST", "/jobs", job_id=job_id)[0] == 200
    peer.send("setup", {"job_id": job_id, "command_line": QUICK})
    assert finish(daemon, peer, job_id)["status"] == "complete"


def test_no_setup_for_an_unknown_job_is_a_clear_failure(mq):
    daemon, peer = mq
    job_id = unique("unknown")
    peer.send("setup", {"job_id": job_id, "command_line": QUICK})
    final = finish(daemon, peer, job_id)
    assert final["status"] == "failed" and f"job {job_id} was not set up" in final["stderr"]
    other = unique("after")  # nothing else is harmed
    peer.send("setup", {"job_id": other, "setup": True, "command_line": QUICK})
    assert finish(daemon, peer, other)["status"] == "complete"


def test_optional_keys_are_read(mq):
    daemon, peer = mq
    job_id = unique("opt")
    peer.send("setup", {
        "job_id": job_id, "setup": True,
        "command_line": 'echo "$SHAPE_TEST" > ../outputs/env_value',
        "env": [{"name": "SHAPE_TEST", "value": "from-env"}],
        "touch_outputs": ["touched.dat"],
        "submit_params": {"native_specification": "-q ignored-by-queued_python"},
        "remote_staging": {}, "dependencies_description": None, "dynamic_file_sources": None,
        "token_endpoint": None,
    })
    assert finish(daemon, peer, job_id)["status"] == "complete"
    outputs = daemon.staging / job_id / "outputs"
    assert (outputs / "env_value").read_text() == "from-env\n"
    assert (outputs / "touched.dat").read_bytes() == b""


def test_a_redelivered_setup_of_a_launched_job_is_ignored(mq):
    daemon, peer = mq
    job_id = unique("dup")
    body = {"job_id": job_id, "setup": True, "command_line": f"sleep 0.5; {QUICK}"}
    peer.send("setup", body)
    peer.wait_for("status_update", lambda b: b.get("job_id") == job_id and b["status"] == "running")
    peer.send("setup", body)
    assert finish(daemon, peer, job_id)["status"] == "complete"
    assert (daemon.staging / job_id / "outputs" / "runs").read_text() == "ran\n"  # ran once


def test_an_invalid_launch_is_refused_with_one_line_and_harms_nothing(mq):
    daemon, peer = mq
    job_id = unique("bad")
    peer.send("setup", {"job_id": job_id, "setup": True, "command_line": QUICK, "env": "PATH=/evil"})
    final = finish(daemon, peer, job_id)
    assert final["status"] == "failed" and "env must be a JSON list" in final["stderr"]
    assert "Traceback" not in daemon.log()
