"""Helpers shared by the AMQP unit tests (kombu ``memory://``) and the RabbitMQ integration tests."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import kombu

RABBIT_URL = os.environ.get("PULSAR_LITE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
EXCHANGE = kombu.Exchange("pulsar", "direct", durable=True)
LOGICAL_NAMES = ("setup", "status", "kill", "status_update", "status_update_ack", "setup_ack", "kill_ack")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def queue(name: str, exchange: kombu.Exchange = EXCHANGE) -> kombu.Queue:
    return kombu.Queue(name, exchange, routing_key=name, durable=exchange.durable)


# -- the broker ---------------------------------------------------------------------------
def rabbit_available(url: str = RABBIT_URL) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
        with kombu.Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)


def have_rabbitmqctl() -> bool:
    return shutil.which("rabbitmqctl") is not None


def wait_for_broker(url: str = RABBIT_URL, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if rabbit_available(url):
            return True
        time.sleep(0.5)
    return False


def queue_exists(name: str, url: str = RABBIT_URL) -> bool:
    try:
        with kombu.Connection(url) as connection:
            connection.default_channel.queue_declare(name, passive=True)
        return True
    except Exception:
        return False


def wait_for_queues(names, url: str = RABBIT_URL, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    missing = list(names)
    while time.time() < deadline:
        missing = [n for n in missing if not queue_exists(n, url)]
        if not missing:
            return
        time.sleep(0.1)
    raise AssertionError(f"queues never declared: {missing}")


def delete_queues(names, url: str = RABBIT_URL) -> None:
    try:
        with kombu.Connection(url, connect_timeout=3) as connection:
            for name in names:
                try:
                    connection.default_channel.queue_delete(name)
                except Exception:
                    connection.close()
                    connection.ensure_connection(max_retries=1)
    except Exception:
        pass


def prefixed_names(prefix: str) -> list[str]:
    """Every queue a test with ``amqp_key_prefix: prefix`` may have created."""
    return [f"{prefix}_{logical}" for logical in LOGICAL_NAMES]


def manager_names(manager: str) -> list[str]:
    return [f"pulsar_{manager}__{logical}" for logical in LOGICAL_NAMES]


# -- a client stand-in speaking raw kombu ------------------------------------------------------
class Peer:
    """The client side of the protocol, for tests: publishes requests, collects updates."""

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self.connection = kombu.Connection(url, transport_options={"polling_interval": 0.01})
        self.producer = kombu.Producer(self.connection, exchange=EXCHANGE, serializer="json")
        self.received: dict[str, list] = {}
        self.properties: dict[str, list] = {}  # message properties (priority, delivery_mode), same order
        self._consumers: dict[str, kombu.Consumer] = {}

    def name(self, logical: str) -> str:
        return f"{self.prefix}_{logical}"

    def listen(self, *logicals: str) -> None:
        for logical in logicals:
            name = self.name(logical)
            self.received.setdefault(logical, [])
            self.properties.setdefault(logical, [])

            def on_message(body, message, logical=logical):
                self.received[logical].append(body)
                self.properties[logical].append(dict(message.properties))
                message.ack()

            consumer = kombu.Consumer(self.connection, queues=[queue(name)], callbacks=[on_message],
                                      accept=["json"])
            consumer.consume()
            self._consumers[logical] = consumer

    def send(self, logical: str, body, **kwargs) -> None:
        self.producer.publish(body, routing_key=self.name(logical), exchange=EXCHANGE, **kwargs)

    def send_raw(self, logical: str, text: str, content_type: str = "application/json") -> None:
        self.producer.publish(text, routing_key=self.name(logical), exchange=EXCHANGE, serializer=None,
                              content_type=content_type, content_encoding="utf-8")

    def pump(self, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                self.connection.drain_events(timeout=min(0.05, max(0.01, deadline - time.time())))
            except socket.timeout:
                pass

    def wait_for(self, logical: str, predicate, timeout: float = 10.0):
        """The first message on ``logical`` matching ``predicate`` (pumping the connection meanwhile)."""
        deadline = time.time() + timeout
        while True:
            for body in self.received.get(logical, []):
                if predicate(body):
                    return body
            if time.time() > deadline:
                raise AssertionError(f"no matching {logical} message in {timeout}s; got {self.received.get(logical)}")
            self.pump(0.05)

    def updates(self, job_id: str) -> list[str]:
        return [b.get("status") for b in self.received.get("status_update", []) if b.get("job_id") == job_id]

    def close(self) -> None:
        for consumer in self._consumers.values():
            try:
                consumer.cancel()
            except Exception:
                pass
        self.connection.release()


def setup_body(job_id: str, command_line: str = "echo hi > ../metadata/tool_stdout", **extra) -> dict:
    """A setup message as MessageJobClient builds it when the client has jobs_directory."""
    body = {"command_line": command_line, "job_id": job_id, "dynamic_file_sources": None, "token_endpoint": None,
            "setup_params": {"job_id": job_id, "tool_id": "test_tool", "tool_version": "1.0",
                             "use_metadata": True}}
    body.update(extra)
    return body


# -- the real Pulsar client ------------------------------------------------------------------
def ensure_client_kombu(python: Path) -> bool:
    """The client needs kombu for AMQP (Galaxy has it); install it into the client venv once."""
    probe = subprocess.run([str(python), "-c", "import kombu, amqp"], capture_output=True)
    if probe.returncode == 0:
        return True
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "kombu"],
                             capture_output=True, text=True, timeout=300)
    return install.returncode == 0


#: Runs ``pulsar.client.test.check.run`` with client-manager keywords check.py cannot pass itself
#: (``manager``, ``amqp_key_prefix``, ``amqp_acknowledge`` + ``persistence_directory``).
CHECK_DRIVER = r'''
import json, optparse, sys, time
from pulsar.client.manager import build_client_manager
from pulsar.client.test import check

options, manager_kwargs = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def client_manager_from_args(opts):
    manager = build_client_manager(amqp_url=opts.manager_url, **manager_kwargs)
    if manager_kwargs.get("amqp_acknowledge"):
        manager.ensure_has_ack_consumers()  # as Galaxy's MQ runner does
    return manager

check.client_manager_from_args = client_manager_from_args
started = time.time()
check.run(optparse.Values(options))
print("CHECK OK in %.2fs" % (time.time() - started), flush=True)
'''


#: Submits many small jobs through the real client's exchange and waits for every final status.
#: Publishing is retried by hand so broker faults injected by the test cannot fail the client side.
FLOOD_DRIVER = r'''
import json, os, sys, threading, time
from pulsar.client.manager import build_client_manager

config = json.loads(sys.argv[1])
manager = build_client_manager(amqp_url=config["url"], **config["manager_kwargs"])
final = {}
seen = {}
lock = threading.Lock()
done = threading.Event()

def on_update(body):
    with lock:
        seen.setdefault(body["job_id"], []).append(body["status"])
        if body["status"] in ("complete", "failed", "lost", "cancelled"):
            final[body["job_id"]] = body
            if len(final) >= len(config["jobs"]):
                done.set()

manager.ensure_has_status_update_callback(on_update)
time.sleep(0.5)

def publish(queue, body):
    deadline = time.time() + 120
    while True:
        try:
            manager.exchange.publish(queue, dict(body))
            return
        except Exception as exc:
            if time.time() > deadline:
                raise
            print("publish retry:", type(exc).__name__, exc, flush=True)
            time.sleep(0.5)

published_at = {}
for index, job_id in enumerate(config["jobs"]):
    if index == config.get("pause_before"):
        # the test breaks the broker now; without amqp_acknowledge the client's own publish has no
        # confirm, so a setup written into a dying broker would be lost by the client, not the daemon
        open(config["pause_dir"] + "/paused", "w").close()
        deadline = time.time() + 200
        while not os.path.exists(config["pause_dir"] + "/resume") and time.time() < deadline:
            time.sleep(0.1)
    while config.get("hold") and os.path.exists(config["hold"]):  # the test is breaking the broker right now
        time.sleep(0.05)
    published_at[job_id] = time.time()
    publish("setup", {"command_line": config["command"], "job_id": job_id,
                      "setup_params": {"job_id": job_id, "tool_id": "flood", "tool_version": "1.0"}})
    time.sleep(config["pace"])
print("SUBMITTED", len(config["jobs"]), flush=True)
done.wait(config["timeout"])
manager.shutdown()
missing = sorted(set(config["jobs"]) - set(final))
bad = sorted(j for j, body in final.items() if body["status"] != "complete")
for job_id in missing:
    print("missing", job_id, "setup published at", time.strftime("%H:%M:%S", time.localtime(published_at[job_id])),
          "%.3f" % (published_at[job_id] % 1), "updates seen:", seen.get(job_id), flush=True)
print(json.dumps({"final": len(final), "missing": missing, "not_complete": bad,
                  "updates": sum(len(v) for v in seen.values())}), flush=True)
sys.exit(0 if not missing and not bad else 1)
'''


# -- an in-process daemon: engine + AMQP face ------------------------------------------------------
class Harness:
    """``JobEngine`` + ``start_amqp`` in this process, as server.py wires them."""

    def __init__(self, root: Path, url="memory://", **app):
        from pulsar_lite.config import build_config

        self.root = Path(root)
        self.app = {
            "staging_directory": str(self.root / "staging"),
            "persistence_directory": str(self.root / "persisted"),
            "tool_dependency_dir": str(self.root / "deps"),
            "message_queue_url": url,
            "store_synchronous": "normal",
            **app,
        }
        self.config = build_config(self.app, base_dir=str(self.root))
        self.engine = None
        self.face = None

    def start_engine(self):
        from pulsar_lite.engine import JobEngine

        self.engine = JobEngine(self.config)
        self.engine.start()
        return self.engine

    def start_face(self, wait: bool = True):
        from pulsar_lite.amqp import start_amqp

        self.face = start_amqp(self.engine, self.config)
        if wait:
            assert self.face.wait_ready(10), "the AMQP face did not connect"
        return self.face

    def start(self):
        self.start_engine()
        self.start_face()
        return self

    def stop_face(self):
        if self.face is not None:
            self.face.stop()
            self.face = None

    def stop(self):
        self.stop_face()
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def state(self, job_id: str, manager: str = "_default_"):
        record = self.engine.store.get(manager, job_id)
        return record.state if record else None

    def wait_state(self, job_id: str, states, manager: str = "_default_", timeout: float = 10):
        states = {states} if isinstance(states, str) else set(states)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.state(job_id, manager) in states:
                return self.state(job_id, manager)
            time.sleep(0.01)
        raise AssertionError(f"job {job_id} is {self.state(job_id, manager)}, never reached {states}")
