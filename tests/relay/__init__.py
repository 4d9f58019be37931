"""Helpers for the relay face's tests: a real pulsar-relay (the one scripts/ci/relay-up.sh runs on Redis, or
an in-memory one a test starts from the same virtualenv) and a client stand-in speaking its HTTP contract."""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
RELAY_URL = os.environ.get("PULSAR_LITE_TEST_RELAY_URL", "http://127.0.0.1:9731")
ADMIN = os.environ.get("RELAY_ADMIN", "admin")
ADMIN_PASSWORD = os.environ.get("RELAY_ADMIN_PASSWORD", "pulsar-lite-ci-admin")
RELAY_VENV = Path(os.environ.get("RELAY_VENV", REPO / ".cache" / "relay"))


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def relay_available(url: str = RELAY_URL) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def relay_installed() -> bool:
    return (RELAY_VENV / "bin" / "uvicorn").exists()


class RelayProcess:
    """A pulsar-relay of our own (in-memory storage unless ``redis_port``), for tests that restart it or need
    its rate limits on."""

    def __init__(self, port: int, root: Path, rate_limit: bool = False, redis_port: int | None = None,
                 redis_password: str = "pulsar-lite-ci-redis"):
        self.port = port
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ,
                        PULSAR_JWT_SECRET_KEY="pulsar-lite-test-jwt-secret-0123456789abcdef",
                        PULSAR_BOOTSTRAP_ADMIN_USERNAME=ADMIN, PULSAR_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
                        PULSAR_ALLOWED_ORIGINS=f'["{self.url}"]', PULSAR_TRUSTED_HOSTS='["127.0.0.1","localhost"]',
                        RATELIMIT_ENABLED="true" if rate_limit else "false")
        if redis_port:
            self.env.update(PULSAR_STORAGE_BACKEND="valkey", PULSAR_VALKEY_HOST="127.0.0.1",
                            PULSAR_VALKEY_PORT=str(redis_port), PULSAR_VALKEY_PASSWORD=redis_password)
        else:
            self.env.update(PULSAR_STORAGE_BACKEND="memory", PULSAR_ALLOW_INSECURE_DEFAULTS="1")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "RelayProcess":
        log = open(self.root / "relay.log", "ab")
        self.process = subprocess.Popen(
            [str(RELAY_VENV / "bin" / "uvicorn"), "pulsar_relay.main:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--log-level", "warning"], cwd=str(self.root), env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulsar-relay exited: {(self.root / 'relay.log').read_text()[-2000:]}")
            if relay_available(self.url):
                return self
            time.sleep(0.1)
        raise RuntimeError("pulsar-relay did not start")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class Peer:
    """The client side of the relay protocol (what Galaxy's RelayClientManager does), for tests."""

    def __init__(self, url: str = RELAY_URL, prefix: str = "", username: str = ADMIN, password: str = ADMIN_PASSWORD):
        self.url = url
        self.prefix = prefix
        self.session = requests.Session()
        answer = self.session.post(url + "/auth/login", data={"username": username, "password": password,
                                                              "grant_type": "password"}, timeout=10)
        answer.raise_for_status()
        self.token = answer.json()["access_token"]
        self.cursor: dict[str, str] = {}
        self.received: dict[str, list] = {}

    def topic(self, base: str, manager: str = "_default_") -> str:
        parts = ([self.prefix] if self.prefix else []) + [base] + ([manager] if manager != "_default_" else [])
        return "_".join(parts)

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def send(self, base: str, payload: dict, manager: str = "_default_") -> str:
        answer = self.session.post(self.url + "/api/v1/messages", json={"topic": self.topic(base, manager),
                                                                         "payload": payload},
                                   headers={**self._headers(), "Idempotency-Key": uuid.uuid4().hex}, timeout=10)
        answer.raise_for_status()
        return answer.json()["message_id"]

    def poll(self, base: str, manager: str = "_default_", timeout: int = 1) -> list[dict]:
        topic = self.topic(base, manager)
        body = {"topics": [topic], "timeout": timeout}
        if topic in self.cursor:
            body["since"] = {topic: self.cursor[topic]}
        answer = self.session.post(self.url + "/messages/poll", json=body, headers=self._headers(),
                                   timeout=timeout + 10)
        answer.raise_for_status()
        messages = answer.json().get("messages") or []
        for message in messages:
            self.cursor[topic] = message["message_id"]
            self.received.setdefault(base, []).append(message["payload"])
        return messages

    def start_at_beginning(self, base: str, manager: str = "_default_") -> None:
        self.cursor[self.topic(base, manager)] = "0-0"

    def wait_for(self, base: str, predicate, timeout: float = 15, manager: str = "_default_"):
        deadline = time.time() + timeout
        while True:
            for payload in self.received.get(base, []):
                if predicate(payload):
                    return payload
            if time.time() > deadline:
                raise AssertionError(f"no matching {base} message in {timeout}s; got {self.received.get(base)}")
            self.poll(base, manager, timeout=1)

    def updates(self, job_id: str) -> list[str]:
        return [p.get("status") for p in self.received.get("job_status_update", []) if p.get("job_id") == job_id]


#: Runs ``pulsar.client.test.check.run`` through the real client's RelayClientManager, built as Galaxy's Pulsar
#: runner builds it (relay_url, relay_username, relay_password, relay_topic_prefix). One glue line: the status
#: consumer's cursor starts at the beginning of its (fresh, per-test) topic, so an update published before the
#: client's first long poll reached the relay is not missed (a fresh Galaxy has that race only once, at start).
RELAY_CHECK_DRIVER = r'''
import json, optparse, sys, time
from pulsar.client import manager as manager_module
from pulsar.client.manager import build_client_manager
from pulsar.client.test import check

options, manager_kwargs = json.loads(sys.argv[1]), json.loads(sys.argv[2])

def client_manager_from_args(opts):
    manager = build_client_manager(**manager_kwargs)
    topic = manager._make_topic_name("job_status_update", manager.manager_name)
    manager.relay_transport.set_last_message_id(topic, "0-0")
    return manager

check.client_manager_from_args = client_manager_from_args
started = time.time()
check.run(optparse.Values(options))
print("CHECK OK in %.2fs" % (time.time() - started), flush=True)
'''

#: Submits many small jobs through the real client's RelayClientManager / RelayJobClient and waits for every
#: final status (each job's launch posts its setup to the relay, as Galaxy does).
RELAY_FLOOD_DRIVER = r'''
import json, sys, threading, time
from pulsar.client.manager import build_client_manager

config = json.loads(sys.argv[1])
manager = build_client_manager(**config["manager_kwargs"])
topic = manager._make_topic_name("job_status_update", manager.manager_name)
manager.relay_transport.set_last_message_id(topic, "0-0")
final, seen, submitted, latency = {}, {}, {}, []
lock = threading.Lock()
done = threading.Event()

def on_update(body):
    with lock:
        seen.setdefault(body["job_id"], []).append(body["status"])
        if body["status"] in ("complete", "failed", "lost", "cancelled") and body["job_id"] not in final:
            final[body["job_id"]] = body
            if body["job_id"] in submitted:
                latency.append(time.time() - submitted[body["job_id"]])
            if len(final) >= len(config["jobs"]):
                done.set()

manager.ensure_has_status_update_callback(on_update)
for job_id in config["jobs"]:
    client = manager.get_client({"jobs_directory": config["jobs_directory"], "default_file_action": "none"}, job_id)
    submitted[job_id] = time.time()
    client.launch(config["command"].replace("JOB", job_id),
                  job_config={"job_id": job_id, "tool_id": "flood", "tool_version": "1.0"})
    time.sleep(config["pace"])
print("SUBMITTED", len(config["jobs"]), flush=True)
done.wait(config["timeout"])
manager.shutdown()
missing = sorted(set(config["jobs"]) - set(final))
bad = sorted(j for j, body in final.items() if body["status"] != "complete")
twice = sorted(j for j, states in seen.items() if states.count("complete") > 1)
print(json.dumps({"final": len(final), "missing": missing, "not_complete": bad, "complete_twice": twice,
                  "updates": sum(len(v) for v in seen.values())}), flush=True)
sys.exit(0 if not missing and not bad else 1)
'''
