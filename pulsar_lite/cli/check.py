"""``pulsar-lite check``: one real job against a running daemon, end to end, PASS/FAIL per step with timings.

REST: setup, upload, submit, status, download, clean — through the installed ``pulsar-galaxy-lib`` client
when it can be imported (what Galaxy runs), otherwise through a minimal client of its own. AMQP (a
configuration without a web face): the job is launched with a setup message on the daemon's queue, as
Galaxy would, and followed in the daemon's store and staging directory on this host — the check never
consumes ``status_update`` messages, which belong to Galaxy — until its update has been confirmed by the
broker.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .. import wire

DATA = b"pulsar_lite check: " + os.urandom(16).hex().encode() + b"\n"
WAIT = 300.0


class Steps:
    def __init__(self):
        self.failed = False

    def run(self, name: str, function, *args):
        started = time.monotonic()
        try:
            result = function(*args)
        except Exception as exc:  # every failure is a step's FAIL with its reason, never a traceback
            print(f"FAIL  {name:<9} {time.monotonic() - started:7.2f} s  {type(exc).__name__}: {exc}", flush=True)
            self.failed = True
            raise _Stop() from None
        print(f"PASS  {name:<9} {time.monotonic() - started:7.2f} s  {result if isinstance(result, str) else ''}",
              flush=True)
        return result


class _Stop(Exception):
    pass


def _progress(started: float, state: str, last: list) -> None:
    if time.monotonic() - last[0] >= 2:
        last[0] = time.monotonic()
        print(f"      ... {state} after {time.monotonic() - started:.0f} s", flush=True)


# -- REST -------------------------------------------------------------------------------------------------------
class MinimalClient:
    """What Galaxy's client does for one job, in plain HTTP (when pulsar-galaxy-lib is not installed)."""

    def __init__(self, url: str, token: str | None, job_id: str):
        self.url, self.token, self.job_id = url.rstrip("/"), token, job_id

    def _call(self, method: str, path: str, data: bytes | None = None, **params):
        if self.token:
            params["private_token"] = self.token
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=data,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}") \
                from None

    def setup(self):
        self.layout = json.loads(self._call("POST", "/jobs", job_id=self.job_id))
        return self.layout

    def upload(self, path: str):
        with open(path, "rb") as handle:
            self._call("POST", f"/jobs/{self.job_id}/files", handle.read(), name="input.txt", type="input")

    def launch(self, command_line: str):
        self._call("POST", f"/jobs/{self.job_id}/submit", command_line=command_line)

    def status(self) -> dict:
        return json.loads(self._call("GET", f"/jobs/{self.job_id}/status"))

    def download(self, target: str):
        with open(target, "wb") as handle:
            handle.write(self._call("GET", f"/jobs/{self.job_id}/files", name="output.txt", type="output"))

    def clean(self):
        self._call("DELETE", f"/jobs/{self.job_id}")


class GalaxyClient(MinimalClient):
    """The same steps through pulsar-galaxy-lib."""

    def __init__(self, url, token, job_id):
        super().__init__(url, token, job_id)
        from pulsar.client.manager import build_client_manager

        destination = {"url": self.url + "/", "private_token": token} if token else {"url": self.url + "/"}
        self.client = build_client_manager().get_client(destination, job_id)

    def setup(self):
        self.layout = self.client.setup(tool_id="pulsar_lite_check", tool_version="1.0")
        return self.layout

    def upload(self, path: str):
        self.client.put_file(path, "input", name="input.txt")

    def launch(self, command_line: str):
        self.client.launch(command_line)

    def status(self) -> dict:
        return self.client.full_status()

    def download(self, target: str):
        self.client.fetch_output(path=target, name="output.txt", working_directory=os.path.dirname(target),
                                 action_type="transfer", output_type="output")

    def clean(self):
        self.client.clean()


def check_rest(url: str, token: str | None) -> int:
    job_id = f"pulsar-lite-check-{uuid.uuid4().hex[:12]}"
    try:
        client, flavour = GalaxyClient(url, token, job_id), "pulsar-galaxy-lib"
    except ImportError:
        client, flavour = MinimalClient(url, token, job_id), "pulsar_lite's minimal client"
    print(f"checking {url} with {flavour}, job {job_id}", flush=True)
    steps = Steps()
    scratch = tempfile.mkdtemp(prefix="pulsar-lite-check-")
    source, target = os.path.join(scratch, "input.txt"), os.path.join(scratch, "output.txt")
    with open(source, "wb") as handle:
        handle.write(DATA)
    expected = hashlib.sha256(DATA).hexdigest()
    try:
        layout = steps.run("setup", client.setup)
        steps.run("upload", client.upload, source)
        inputs, outputs = layout["inputs_directory"], layout["outputs_directory"]
        command = f"sha256sum {inputs}/input.txt | cut -d' ' -f1 > {outputs}/output.txt"
        steps.run("submit", client.launch, command)

        def wait():
            started, last = time.monotonic(), [time.monotonic()]
            while time.monotonic() - started < WAIT:
                status = client.status()
                if status.get("status") in ("complete", "failed", "cancelled", "lost"):
                    if status["status"] != "complete" or status.get("returncode") != 0:
                        raise RuntimeError(f"the job ended {status['status']} (exit {status.get('returncode')}): "
                                           f"{(status.get('stderr') or '').strip()[-300:]}")
                    return "complete, exit 0"
                _progress(started, status.get("status"), last)
                time.sleep(0.2)
            raise RuntimeError(f"not complete after {WAIT:.0f} s")

        steps.run("status", wait)

        def download():
            client.download(target)
            with open(target) as handle:
                got = handle.read().strip()
            if got != expected:
                raise RuntimeError(f"the output says {got[:64]!r}, expected {expected[:16]}...")
            return "output checked"

        steps.run("download", download)
        steps.run("clean", client.clean)
    except _Stop:
        pass
    print("check " + ("FAILED" if steps.failed else "passed"), flush=True)
    return 1 if steps.failed else 0


# -- AMQP -------------------------------------------------------------------------------------------------------
def check_amqp(config) -> int:
    import kombu

    manager = next(iter(config.managers))
    staging = config.managers[manager].staging_directory
    job_id = f"pulsar-lite-check-{uuid.uuid4().hex[:12]}"
    url = config.message_queue_url[0]
    queue = wire.amqp_queue_name("setup", manager, config.amqp_key_prefix)
    print(f"checking over {kombu.Connection(url).as_uri()} (queue {queue}), job {job_id}", flush=True)
    steps = Steps()
    expected = hashlib.sha256(DATA).hexdigest()
    job_dir = os.path.join(staging, job_id)
    database = os.path.join(config.persistence_directory, "pulsar_lite.sqlite")

    def state():
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT state, returncode, message FROM jobs WHERE manager=? AND job_id=?",
                             (manager, job_id)).fetchone()
        return row

    try:
        def publish():
            body = {"job_id": job_id, "setup": True,
                    "command_line": f"sha256sum {job_dir}/inputs/input.txt | cut -d' ' -f1 > {job_dir}/outputs/output.txt",
                    "remote_staging": {"setup": [{"name": "input.txt", "type": "input",
                                                  "action": {"action_type": "message", "contents": DATA.decode()}}]}}
            exchange = kombu.Exchange(wire.AMQP_EXCHANGE, "direct", durable=config.amqp_durable)
            with kombu.Connection(url, connect_timeout=10) as connection:
                connection.Producer(serializer="json").publish(body, exchange=exchange, routing_key=queue,
                                                               declare=[exchange], retry=True)
            return "setup message published (input inline, setup: true)"

        steps.run("setup", publish)

        def wait():
            started, last = time.monotonic(), [time.monotonic()]
            while time.monotonic() - started < WAIT:
                row = state()
                if row and row[0] in ("complete", "failed", "cancelled", "lost"):
                    if row[0] != "complete" or row[1] != 0:
                        raise RuntimeError(f"the job ended {row[0]} (exit {row[1]}): {row[2] or ''}")
                    return "complete, exit 0"
                _progress(started, row[0] if row else "not received yet", last)
                time.sleep(0.2)
            raise RuntimeError(f"not complete after {WAIT:.0f} s (is the daemon consuming {queue}?)")

        steps.run("status", wait)

        def output():
            with open(os.path.join(job_dir, "outputs", "output.txt")) as handle:
                got = handle.read().strip()
            if got != expected:
                raise RuntimeError(f"the output says {got[:64]!r}")
            return "output checked"

        steps.run("download", output)

        def published():
            ledger = os.path.join(config.persistence_directory, "pulsar_lite_amqp.sqlite")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10) as db:
                    routed = db.execute("SELECT last_state FROM origins WHERE manager=? AND job_id=?",
                                        (manager, job_id)).fetchone()
                    waiting = db.execute("SELECT count(*) FROM pending WHERE payload LIKE ?",
                                         (f'%"{job_id}"%',)).fetchone()[0]
                if routed and routed[0] == "complete" and not waiting:
                    return "its status updates were confirmed by the broker"
                time.sleep(0.2)
            raise RuntimeError("the job's status updates were not confirmed by the broker in 30 s")

        steps.run("publish", published)
        print("      (no clean over AMQP: Galaxy's MQ client has none; job_retention removes it)", flush=True)
    except _Stop:
        pass
    print("check " + ("FAILED" if steps.failed else "passed"), flush=True)
    return 1 if steps.failed else 0


def run(args) -> int:
    if args.url:
        return check_rest(args.url, args.token)
    from ..config import load_config

    config = load_config(args.config)
    if config.web:
        host = "127.0.0.1" if config.host in ("0.0.0.0", "", None) else ("::1" if config.host == "::" else config.host)
        address = f"[{host}]" if ":" in host else host
        manager = "" if args.manager in (None, wire.DEFAULT_MANAGER) else f"/managers/{args.manager}"
        return check_rest(f"http://{address}:{config.port}{manager}", args.token or config.private_token)
    if config.message_queue_url:
        return check_amqp(config)
    print("pulsar-lite check: the configuration has neither a web face nor a message queue", file=sys.stderr)
    return 2
