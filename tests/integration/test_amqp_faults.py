"""Broker and daemon faults while jobs flow: every job still reaches its final state on the client side.

The client is the real pulsar-galaxy-lib 0.16.0 exchange (setup publishing, status_update
consumer with its own reconnect loop). Faults: all connections closed by the broker,
the broker application stopped and started, the broker down when the daemon starts,
and the daemon killed with -9 and restarted.
"""
import json
import subprocess
import threading
import time

import pytest

from tests.amqp import (
    CHECK_DRIVER,
    FLOOD_DRIVER,
    RABBIT_URL,
    delete_queues,
    ensure_client_kombu,
    have_rabbitmqctl,
    prefixed_names,
    rabbit_available,
    rabbitmqctl,
    unique,
    wait_for_broker,
    wait_for_queues,
)
from tests.conftest import CHECK_RUN_DEFAULTS, need

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def client(client_python_016):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(have_rabbitmqctl(), "rabbitmqctl is needed to inject broker faults")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    return client_python_016


@pytest.fixture
def prefix():
    prefix = unique("plf")
    yield prefix
    ensure_broker_running()
    delete_queues(prefixed_names(prefix))


def ensure_broker_running():
    """Whatever happened in a test, leave the shared broker up."""
    if not rabbit_available():
        rabbitmqctl("start_app")
        if not wait_for_broker(timeout=20):
            subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
            wait_for_broker(timeout=90)


def start_daemon(daemon_factory, prefix, **app):
    settings = {"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix, "amqp_heartbeat": 10,
                "managers": {"_default_": {"num_concurrent_jobs": 4}}, **app}
    return daemon_factory(settings).start()


def start_flood(python, prefix, jobs, command, pace=0.05, timeout=150, pause_before=None, pause_dir=None, hold=None):
    """The client publishing ``jobs``; it stops before job number ``pause_before`` until ``pause_dir``/resume
    exists, and before any job while the file ``hold`` exists."""
    config = {"url": RABBIT_URL, "manager_kwargs": {"amqp_key_prefix": prefix, "amqp_publish_retry": True},
              "jobs": jobs, "command": command, "pace": pace, "timeout": timeout,
              "pause_before": pause_before, "pause_dir": str(pause_dir), "hold": str(hold) if hold else None}
    return subprocess.Popen([str(python), "-c", FLOOD_DRIVER, json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_flood(process, daemon, timeout=170):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    summary = out.strip().splitlines()[-1] if out.strip() else "{}"
    if process.returncode != 0:
        missing = json.loads(summary).get("missing", []) if summary.startswith("{") else []
        server_log = daemon.log()
        traces = "\n".join(line for line in server_log.splitlines()
                           if any(f"job {job_id} " in line for job_id in missing))
        pytest.fail(f"not every job finished: {summary}\n--- client stdout\n{out[-3000:]}\n"
                    f"--- client stderr\n{err[-4000:]}\n--- server log lines of the missing jobs\n{traces}\n"
                    f"--- server log\n{server_log[-6000:]}")
    return json.loads(summary)


def test_jobs_survive_connection_drops_and_a_broker_restart(client, daemon_factory, prefix, tmp_path):
    """The broker drops every connection, stops and starts while jobs flow in both directions. The client
    holds its setup messages while the broker acts: pulsar-galaxy-lib publishes without confirms, so a setup
    written into a connection at the instant the broker closes it is lost by the client, never seen by the
    daemon (a clean-clone CI run lost one that way). Everything already sent, queued, running or waiting to
    be reported must come through."""
    daemon = start_daemon(daemon_factory, prefix, amqp_acknowledge=True, amqp_ack_republish_time=3)
    wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
    jobs = [f"f{index:03d}" for index in range(60)]
    hold = tmp_path / "hold"
    flood = start_flood(client, prefix, jobs, "sleep 0.8; echo done > ../metadata/tool_stdout", pace=0.08, hold=hold)

    def breaking(*command):
        hold.touch()
        time.sleep(0.3)  # a setup the client is writing reaches the broker first
        try:
            return rabbitmqctl(*command)
        finally:
            hold.unlink()

    faults = []
    try:
        time.sleep(2.0)
        faults.append(breaking("close_all_connections", "test"))
        time.sleep(2.5)
        faults.append(breaking("stop_app"))
        time.sleep(3.0)
        faults.append(rabbitmqctl("start_app"))
        time.sleep(2.0)
        faults.append(breaking("close_all_connections", "test"))
        summary = finish_flood(flood, daemon)
    finally:
        ensure_broker_running()
    assert all(f.returncode == 0 for f in faults), [f.stderr for f in faults]
    assert summary["final"] == len(jobs) and summary["missing"] == [] and summary["not_complete"] == []
    log = daemon.log()
    assert "reconnecting" in log and log.count("AMQP consumer: consuming") >= 3
    assert "Traceback" not in log
    daemon.stop()


def test_broker_down_when_the_daemon_starts(client, daemon_factory, prefix):
    stopped = rabbitmqctl("stop_app")
    try:
        assert stopped.returncode == 0, stopped.stderr
        daemon = start_daemon(daemon_factory, prefix)  # does not wait for the broker
        time.sleep(1.5)
        assert "cannot reach" in daemon.log()
    finally:
        rabbitmqctl("start_app")
        ensure_broker_running()
    wait_for_queues([f"{prefix}_setup", f"{prefix}_status", f"{prefix}_kill", f"{prefix}_status_update"],
                    timeout=30)
    options = dict(CHECK_RUN_DEFAULTS, job_id=unique("late"), manager_url=RABBIT_URL,
                   jobs_directory=str(daemon.staging), default_file_action="remote_copy")
    result = subprocess.run([str(client), "-c", CHECK_DRIVER, json.dumps(options),
                             json.dumps({"amqp_key_prefix": prefix})], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "CHECK OK" in result.stdout, (
        f"{result.stderr[-4000:]}\n--- server log\n{daemon.log()[-4000:]}")


def test_daemon_killed_mid_flow_loses_no_status_update(client, daemon_factory, prefix):
    daemon = start_daemon(daemon_factory, prefix)
    wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
    jobs = [f"k{index:03d}" for index in range(30)]
    flood = start_flood(client, prefix, jobs, "sleep 0.6; echo done > ../metadata/tool_stdout", pace=0.05)
    restarted = threading.Event()

    def kill_and_restart():
        time.sleep(2.5)
        daemon.kill9()  # running jobs keep running; queued ones wait in the store; updates in the outbox
        time.sleep(1.0)
        daemon.start()
        restarted.set()

    killer = threading.Thread(target=kill_and_restart)
    killer.start()
    summary = finish_flood(flood, daemon)
    killer.join()
    assert restarted.is_set()
    assert summary["missing"] == [] and summary["not_complete"] == []
    daemon.stop()


def test_jobs_survive_a_full_broker_stop_and_start(client, daemon_factory, prefix, tmp_path):
    """100 jobs; the whole broker (the Erlang node) is stopped and started while 40 of them are queued or
    running in the daemon, so their status updates wait in the outbox for the broker to come back."""
    need(subprocess.run(["which", "rabbitmq-server"], capture_output=True).returncode == 0,
         "rabbitmq-server is needed to restart the broker")
    daemon = start_daemon(daemon_factory, prefix)
    wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
    jobs = [f"s{index:03d}" for index in range(100)]
    flood = start_flood(client, prefix, jobs, "sleep 0.5; echo done > ../metadata/tool_stdout", pace=0.02,
                        timeout=200, pause_before=40, pause_dir=tmp_path)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "paused").exists() and flood.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "paused").exists(), "the client did not publish its first 40 jobs"
        stopped = rabbitmqctl("stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        unfinished = daemon.unfinished_jobs()
        time.sleep(2.0)
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
        assert wait_for_broker(timeout=90), "the broker did not come back"
        (tmp_path / "resume").touch()
        summary = finish_flood(flood, daemon, timeout=230)
    finally:
        ensure_broker_running()
    assert summary["final"] == len(jobs) and summary["missing"] == [] and summary["not_complete"] == []
    assert unfinished, "no job was still queued or running in the daemon while the broker was down"
    assert daemon.process.poll() is None  # the daemon never needed a restart
    daemon.stop()
