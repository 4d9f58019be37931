"""The real Pulsar clients (pulsar-galaxy-lib 0.15.16 and 0.16.0) against pulsar_lite over RabbitMQ.

``pulsar.client.test.check.run`` drives the whole job flow over AMQP (setup message,
status_update messages, remote_copy staging on a shared file system). The daemon is
the real ``python -m pulsar_lite serve``; every test uses its own queue names and
deletes them at the end, so tests can share one broker.
"""
import json
import sqlite3
import subprocess
import time

import kombu
import pytest

from tests.amqp import (
    CHECK_DRIVER,
    RABBIT_URL,
    delete_queues,
    ensure_client_kombu,
    have_rabbitmqctl,
    manager_names,
    prefixed_names,
    queue,
    rabbit_available,
    rabbitmqctl,
    unique,
    wait_for_queues,
)
from tests.conftest import CHECK_RUN_DEFAULTS, need

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rabbit():
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    return RABBIT_URL


@pytest.fixture
def amqp_client(client_python, rabbit):
    need(ensure_client_kombu(client_python), "cannot install kombu into the client virtualenv")
    return client_python


def run_check(python, staging, job_id, manager_kwargs, url=RABBIT_URL, timeout=120, **options):
    values = dict(CHECK_RUN_DEFAULTS, job_id=job_id, manager_url=url, jobs_directory=str(staging),
                  default_file_action="remote_copy", **options)
    return subprocess.run([str(python), "-c", CHECK_DRIVER, json.dumps(values), json.dumps(manager_kwargs)],
                          capture_output=True, text=True, timeout=timeout)


def assert_ok(result, daemon):
    assert result.returncode == 0 and "CHECK OK" in result.stdout, (
        f"check.run over AMQP failed ({result.returncode})\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-6000:]}\n--- server log\n{daemon.log()[-5000:]}")


def declare(names, url=RABBIT_URL):
    with kombu.Connection(url) as connection:
        for name in names:
            queue(name)(connection.default_channel).declare()


def ledger_rows(daemon, table):
    path = daemon.root / "persisted" / "pulsar_lite_amqp.sqlite"
    with sqlite3.connect(str(path), timeout=10) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_check_default_manager_with_key_prefix(amqp_client, daemon_factory):
    prefix = unique("plc")
    daemon = daemon_factory({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix,
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}})
    try:
        daemon.start()
        wait_for_queues([f"{prefix}_setup", f"{prefix}_status", f"{prefix}_kill", f"{prefix}_status_update"])
        result = run_check(amqp_client, daemon.staging, unique("job"), {"amqp_key_prefix": prefix}, test_env=True)
        assert_ok(result, daemon)
        assert "accepted from amqp://guest:**@127.0.0.1:5672//" in daemon.log()
    finally:
        daemon.stop()
        delete_queues(prefixed_names(prefix))


def test_check_named_manager_with_acknowledgements(amqp_client, daemon_factory, tmp_path):
    manager = unique("plm")
    daemon = daemon_factory({"message_queue_url": RABBIT_URL, "amqp_acknowledge": True,
                             "managers": {manager: {"num_concurrent_jobs": 2}}})
    consumed = [f"pulsar_{manager}__{n}" for n in ("setup", "status", "kill", "status_update_ack")]
    client_store = tmp_path / "client-persisted"
    names = manager_names(manager)
    try:
        # no _default_ manager: it would consume the broker-wide pulsar__setup
        daemon.start()
        wait_for_queues(consumed)
        declare([f"pulsar_{manager}__setup_ack", f"pulsar_{manager}__kill_ack"])  # Galaxy's ack consumers
        result = run_check(amqp_client, daemon.staging, unique("job"),
                           {"manager": manager, "amqp_acknowledge": True,
                            "persistence_directory": str(client_store)})
        assert_ok(result, daemon)
        # our setup acknowledgement reached the client: nothing is left for it to republish
        assert list((client_store / f"amqp_ack-{manager}" / "publish").iterdir()) == []
        # the client acknowledged our status updates: nothing is left for us to republish
        deadline = time.time() + 10
        while ledger_rows(daemon, "unacked") and time.time() < deadline:
            time.sleep(0.1)
        assert ledger_rows(daemon, "unacked") == 0
        assert ledger_rows(daemon, "pending") == 0
    finally:
        daemon.stop()
        delete_queues(names)


def test_each_broker_gets_the_updates_of_its_own_jobs(client_python_016, rabbit, daemon_factory):
    need(have_rabbitmqctl(), "rabbitmqctl is needed to create a second virtual host")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    vhost = unique("plvh")
    created = rabbitmqctl("add_vhost", vhost)
    need(created.returncode == 0, f"cannot create a RabbitMQ virtual host: {created.stderr.strip()}")
    prefix = unique("plb")
    other = RABBIT_URL[:RABBIT_URL.rindex("/", 0, len(RABBIT_URL) - 1) + 1] + vhost  # amqp://u:p@host:port/<vhost>
    daemon = daemon_factory({"message_queue_url": [RABBIT_URL, other], "amqp_key_prefix": prefix})
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        daemon.start()
        for url in (RABBIT_URL, other):
            wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"], url=url)
        first = run_check(client_python_016, daemon.staging, unique("a"), {"amqp_key_prefix": prefix})
        assert_ok(first, daemon)
        with kombu.Connection(other) as connection:  # nothing of job "a" went to the other broker
            _, waiting, _ = connection.default_channel.queue_declare(f"{prefix}_status_update", passive=True)
        assert waiting == 0
        second = run_check(client_python_016, daemon.staging, unique("b"), {"amqp_key_prefix": prefix}, url=other)
        assert_ok(second, daemon)
        assert f"/{vhost}" in daemon.log()
    finally:
        daemon.stop()
        delete_queues(prefixed_names(prefix))
        rabbitmqctl("delete_vhost", vhost)
