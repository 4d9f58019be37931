"""The real Pulsar clients (pulsar-galaxy-lib 0.15.16 and 0.16.0, through their RelayClientManager) against
pulsar_lite over a real pulsar-relay on Redis (scripts/ci/relay-up.sh), and faults while jobs flow: the relay
restarted (on Redis: nothing lost) and the daemon killed with -9. Every job ends once, complete."""
import json
import subprocess

import pytest

from tests.conftest import CHECK_RUN_DEFAULTS, need
from tests.relay import (
    ADMIN,
    ADMIN_PASSWORD,
    RELAY_CHECK_DRIVER,
    RELAY_FLOOD_DRIVER,
    RELAY_URL,
    RelayProcess,
    relay_available,
    relay_installed,
    unique,
)

pytestmark = pytest.mark.integration

REDIS_PORT = 6391


def client_kwargs(url, prefix, **extra):
    """What Galaxy's Pulsar runner passes to build_client_manager for a relay destination."""
    return {"relay_url": url, "relay_username": ADMIN, "relay_password": ADMIN_PASSWORD,
            "relay_topic_prefix": prefix, **extra}


def daemon_app(url, prefix, **extra):
    return {"message_queue_url": url, "message_queue_username": ADMIN, "message_queue_password": ADMIN_PASSWORD,
            "relay_topic_prefix": prefix, "relay_long_poll_timeout": 10, **extra}


@pytest.fixture
def relay():
    need(relay_available(), f"pulsar-relay is not reachable at {RELAY_URL} (scripts/ci/relay-up.sh)")
    return RELAY_URL


def run_check(python, staging, job_id, manager_kwargs, timeout=150, **options):
    values = dict(CHECK_RUN_DEFAULTS, job_id=job_id, jobs_directory=str(staging),
                  default_file_action="remote_copy", **options)
    return subprocess.run([str(python), "-c", RELAY_CHECK_DRIVER, json.dumps(values), json.dumps(manager_kwargs)],
                          capture_output=True, text=True, timeout=timeout)


def assert_ok(result, daemon):
    assert result.returncode == 0 and "CHECK OK" in result.stdout, (
        f"check.run over the relay failed ({result.returncode})\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-6000:]}\n--- server log\n{daemon.log()[-5000:]}")


@pytest.mark.parametrize("options", [
    {"test_env": True},
    {"test_unicode": True, "test_rewrite_action": True},
], ids=["env", "unicode-rewrite"])
def test_check_remote_copy(client_python, relay, daemon_factory, options):
    prefix = unique("plc")
    daemon = daemon_factory(daemon_app(relay, prefix, managers={"_default_": {"num_concurrent_jobs": 2}})).start()
    result = run_check(client_python, daemon.staging, unique("job"), client_kwargs(relay, prefix), **options)
    assert_ok(result, daemon)
    assert "accepted from relay:" in daemon.log()


def test_check_named_manager(client_python_016, relay, daemon_factory):
    prefix, manager = unique("plc"), unique("m")
    daemon = daemon_factory(daemon_app(relay, prefix, managers={manager: {"num_concurrent_jobs": 2}})).start()
    result = run_check(client_python_016, daemon.staging, unique("job"),
                       client_kwargs(relay, prefix, manager=manager))
    assert_ok(result, daemon)


def start_flood(python, url, prefix, staging, jobs, command="echo JOB > ../metadata/tool_stdout", pace=0.05,
                timeout=150):
    config = {"manager_kwargs": client_kwargs(url, prefix), "jobs": jobs, "command": command, "pace": pace,
              "timeout": timeout, "jobs_directory": str(staging)}
    return subprocess.Popen([str(python), "-c", RELAY_FLOOD_DRIVER, json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_flood(process, daemon, timeout=200):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    summary = out.strip().splitlines()[-1] if out.strip() else "{}"
    assert process.returncode == 0, (f"not every job finished: {summary}\n--- client stderr\n{err[-4000:]}\n"
                                     f"--- server log\n{daemon.log()[-6000:]}")
    result = json.loads(summary)
    assert result["complete_twice"] == [], result
    return result


@pytest.mark.slow
def test_a_relay_restart_on_redis_loses_nothing(client_python_016, daemon_factory, tmp_path):
    """Our own relay on the CI Redis, stopped for three seconds and started again while 40 jobs flow."""
    need(relay_installed(), "pulsar-relay is not installed (scripts/ci/relay-up.sh)")
    from tests.conftest import free_port

    process = RelayProcess(free_port(), tmp_path / "relay", redis_port=REDIS_PORT)
    need(_redis_up(), f"Redis is not reachable on 127.0.0.1:{REDIS_PORT} (scripts/ci/relay-up.sh)")
    process.start()
    prefix = unique("plr")
    try:
        daemon = daemon_factory(daemon_app(process.url, prefix,
                                           managers={"_default_": {"num_concurrent_jobs": 4}})).start()
        jobs = [f"r{index:03d}" for index in range(40)]
        flood = start_flood(client_python_016, process.url, prefix, daemon.staging, jobs,
                            command="sleep 1; echo JOB > ../metadata/tool_stdout", pace=0.1)
        import time

        time.sleep(1.5)
        process.stop()
        time.sleep(3)
        process.start()
        result = finish_flood(flood, daemon)
        assert result["final"] == len(jobs)
    finally:
        process.stop()


@pytest.mark.slow
def test_a_daemon_killed_with_minus_9_ends_every_job_once(client_python_016, relay, daemon_factory):
    prefix = unique("plk")
    daemon = daemon_factory(daemon_app(relay, prefix, managers={"_default_": {"num_concurrent_jobs": 4}}))
    daemon.start()
    jobs = [f"k{index:03d}" for index in range(40)]
    flood = start_flood(client_python_016, relay, prefix, daemon.staging, jobs,
                        command="sleep 1; echo JOB > ../metadata/tool_stdout", pace=0.1)
    import time

    time.sleep(2.0)
    daemon.kill9()
    time.sleep(1.0)
    daemon.start()
    result = finish_flood(flood, daemon)
    assert result["final"] == len(jobs)
    assert daemon.unfinished_jobs() == []


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False
