"""Shared fixtures: running pulsar_lite daemons and real Pulsar client virtualenvs.

A test that needs something absent (a client virtualenv that cannot be built,
a service) skips with the reason locally and fails when ``CI=true``.
"""
from __future__ import annotations

import json
import os
import signal
import ssl
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CLIENT_VERSIONS = ("0.15.16", "0.16.0")
IN_CI = os.environ.get("CI", "").lower() == "true"
#: fixtures of the real FTP server (ftp_area)
pytest_plugins = ["tests.ftpserver"]


def need(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a required service/tool is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for CI: {reason}")
    pytest.skip(reason)


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    """``predicate()``'s first true value, asked every ``interval`` seconds; fails after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s")


def alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- real clients ---------------------------------------------------------------
def client_venv_root() -> Path:
    return Path(os.environ.get("PULSAR_LITE_CLIENT_VENVS", REPO / ".cache" / "clients"))


def ensure_client_venv(version: str) -> Path:
    """Create (once) a virtualenv holding pulsar-galaxy-lib==version; return its python."""
    venv = client_venv_root() / version
    python = venv / "bin" / "python"
    # benchmarks/rest_jobs.py CLIENT_PACKAGES is the same list: the two share these virtualenvs
    packages = [f"pulsar-galaxy-lib=={version}", "galaxy-tool-util", "pycurl", "kombu"]
    marker = venv / ".ready"
    if marker.exists() and marker.read_text() != " ".join(packages):
        marker.unlink()  # made with another package list: rebuild
    if marker.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                   check=True)
    marker.write_text(" ".join(packages))
    return python


#: Galaxy itself (its job configuration code, and the pulsar-galaxy-lib it pins), for the job_conf samples
GALAXY_PACKAGES = ("galaxy-app==26.1.2", "pulsar-galaxy-lib==0.15.16", "kombu")


def ensure_galaxy_venv() -> Path:
    """A virtualenv holding galaxy-app (about 1 GiB, two minutes the first time); its python."""
    venv = client_venv_root().parent / "galaxy-app"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists() and marker.read_text() == " ".join(GALAXY_PACKAGES):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *GALAXY_PACKAGES],
                   check=True)
    marker.write_text(" ".join(GALAXY_PACKAGES))
    return python


@pytest.fixture(scope="session", params=CLIENT_VERSIONS, ids=lambda v: f"client-{v}")
def client_python(request) -> Path:
    try:
        return ensure_client_venv(request.param)
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the pulsar-galaxy-lib {request.param} client virtualenv: {exc}")


@pytest.fixture(scope="session")
def client_python_016() -> Path:
    try:
        return ensure_client_venv("0.16.0")
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the pulsar-galaxy-lib 0.16.0 client virtualenv: {exc}")


def run_check_cli(python: Path, url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real ``pulsar-check`` command line against ``url``."""
    code = "import sys; from pulsar.client.test.check import main; sys.exit(main())"
    return subprocess.run([str(python), "-c", code, "--url", url, *args], capture_output=True, text=True,
                          timeout=timeout)


CHECK_RUN_DEFAULTS = dict(
    url=None, private_token=None, transport=None, cache=False, test_errors=False, suppress_output=False,
    disable_cleanup=False, cleanup=True, job_id="123456", explicit_tool_declarations=False,
    legacy_galaxy_json=False, debug=False,
)


def run_check_api(python: Path, timeout: float = 180, env: dict | None = None,
                  **options) -> subprocess.CompletedProcess:
    """Run ``pulsar.client.test.check.run(options)`` in the client virtualenv (``env``: extra variables)."""
    values = dict(CHECK_RUN_DEFAULTS)
    values.update(options)
    code = (
        "import json, optparse, sys\n"
        "from pulsar.client.test import check\n"
        "check.run(optparse.Values(json.loads(sys.argv[1])))\n"
    )
    return subprocess.run([str(python), "-c", code, json.dumps(values)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# -- a running daemon ---------------------------------------------------------------
class Daemon:
    def __init__(self, root: Path, app: dict):
        self.root = root
        self.port = free_port()
        self.app = {
            "staging_directory": str(root / "staging"),
            "persistence_directory": str(root / "persisted"),
            "tool_dependency_dir": str(root / "dependencies"),
            **app,
        }
        (root / "app.yml").write_text(yaml.safe_dump(self.app))
        self.process: subprocess.Popen | None = None
        self.log_path = root / "server.log"
        #: extra environment for the daemon's next start (e.g. PATH with wrappers in front)
        self.env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"{'https' if self.app.get('ssl_pem') else 'http'}://127.0.0.1:{self.port}/"

    @property
    def staging(self) -> Path:
        return Path(self.app["staging_directory"])

    def start(self, timeout: float = 30) -> "Daemon":
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.root / "app.yml"),
             "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.root),
            start_new_session=True)  # its own process group: kill9 takes granian's worker too
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_path.read_text()[-3000:]}")
            try:
                context = ssl._create_unverified_context() if self.url.startswith("https") else None
                with urllib.request.urlopen(self.url + "healthz", timeout=1, context=context) as response:
                    if json.load(response).get("status") == "ok":
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not become healthy")

    def start_mq_only(self, timeout: float = 30) -> "Daemon":
        """Start a daemon without a web face (``web: false``): ready once its log says it runs."""
        env = dict(os.environ)
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.root / "app.yml"), "--no-web"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.root), start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log()[-3000:]}")
            if "running without web face" in self.log():
                return self
            time.sleep(0.05)
        raise RuntimeError("daemon did not start")

    def kill9(self) -> None:
        """SIGKILL to every daemon process (job processes run in their own sessions and survive)."""
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 10) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        """The daemon's child processes in its own process group (granian's worker; none with paste)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and int(fields[2]) == self.process.pid:
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
                self._wait_group_gone()
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def record(self, job_id: str, manager: str = "_default_") -> dict | None:
        """The job's row in the daemon's store (read from its SQLite file)."""
        import sqlite3

        path = Path(self.app["persistence_directory"]) / "pulsar_lite.sqlite"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM jobs WHERE manager=? AND job_id=?", (manager, job_id)).fetchone()
        return dict(row) if row else None

    def unfinished_jobs(self) -> list[str]:
        """Job ids the daemon's store holds in a non-terminal state (read from its SQLite file)."""
        import sqlite3

        path = Path(self.app["persistence_directory"]) / "pulsar_lite.sqlite"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT job_id FROM jobs WHERE state IN ('preprocessing', 'queued', 'running', "
                              "'postprocessing')").fetchall()
        return [row[0] for row in rows]


@pytest.fixture
def synced_paths(monkeypatch):
    """The paths ``os.fdatasync`` is called on by anything in this process during the test, in order (each
    sync still happens)."""
    calls = []
    real = os.fdatasync

    def spy(fd):
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    return calls


@pytest.fixture
def engine_factory(tmp_path):
    """A started JobEngine in tmp_path (no faces); ``make(**app_keys)``; stopped at teardown."""
    from pulsar_lite.config import build_config
    from pulsar_lite.engine import JobEngine

    engines = []

    def make(**app):
        config = build_config({"staging_directory": str(tmp_path / "staging"),
                               "persistence_directory": str(tmp_path / "p"), "store_synchronous": "normal", **app})
        engine = JobEngine(config)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


@pytest.fixture
def daemon_factory(tmp_path):
    daemons: list[Daemon] = []

    def make(app: dict | None = None, name: str = "d") -> Daemon:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        daemon = Daemon(root, app or {})
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory({"managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 2}}}).start()
