"""systemd/pulsar-lite.service: checked by systemd-analyze, and its ExecStart line run as systemd would
(NOTIFY_SOCKET, SIGTERM): READY=1 once serving, a graceful stop mid-upload and mid-job, exit 0 in time,
nothing lost."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port, need

from .rest_helpers import rest, wait_status

pytestmark = pytest.mark.integration
UNIT = REPO / "systemd" / "pulsar-lite.service"


def unit_value(key: str) -> str:
    for line in UNIT.read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{key}= is not in {UNIT}")


def local_unit(tmp_path: Path) -> Path:
    """The unit with its paths pointing here (systemd-analyze checks that ExecStart exists), as root."""
    text = UNIT.read_text().replace("/srv/pulsar_lite/.venv/bin/pulsar-lite", str(Path(sys.executable).parent /
                                                                                 "pulsar-lite"))
    text = re.sub(r"^User=.*$", "User=root", text, flags=re.M)
    text = re.sub(r"^Group=.*$", "Group=root", text, flags=re.M)
    path = tmp_path / "pulsar-lite.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify_and_security(tmp_path):
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    unit = local_unit(tmp_path)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                              text=True)
    score = re.search(r"Overall exposure level for .*: ([0-9.]+) (\w+)", security.stdout)
    assert score, security.stdout[-2000:]
    print(f"systemd-analyze security: exposure {score.group(1)} {score.group(2)}")
    assert float(score.group(1)) <= 3.0, security.stdout[-3000:]  # "OK" or better, run as root here
    for needed in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                   "ProtectHome=yes", "KillMode=process"):
        assert needed in UNIT.read_text()


class NotifySocket:
    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, message: str, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            if any(message in m for m in self.messages):
                return True
        return False


def start_unit(tmp_path: Path, port: int) -> tuple[subprocess.Popen, NotifySocket]:
    app = tmp_path / "app.yml"
    app.write_text(yaml.safe_dump({"port": port, "staging_directory": str(tmp_path / "staging"),
                                   "persistence_directory": str(tmp_path / "persisted"),
                                   "managers": {"_default_": {"num_concurrent_jobs": 2}}}))
    argv = shlex.split(unit_value("ExecStart"))
    argv[0] = str(Path(sys.executable).parent / "pulsar-lite")
    argv[argv.index("--config") + 1] = str(app)
    notify = NotifySocket(tmp_path / f"notify-{time.time_ns()}")
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    log = open(tmp_path / "daemon.log", "ab")
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, notify


def test_exec_start_notifies_and_stops_gracefully_mid_upload_and_mid_job(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    process, notify = start_unit(tmp_path, port)
    try:
        assert notify.wait_for("READY=1", 30), (tmp_path / "daemon.log").read_text()[-2000:]
        assert rest(url, "GET", "/healthz")[0] == 200  # READY=1 means serving
        assert rest(url, "POST", "/jobs", job_id="running")[0] == 200
        assert rest(url, "POST", "/jobs/running/submit",
                    command_line="sleep 2; echo done > ../outputs/out")[0] == 200
        wait_status(url, "running", {"running"})
        assert rest(url, "POST", "/jobs", job_id="uploading")[0] == 200
        body = b"y" * 200_000
        upload = socket.create_connection(("127.0.0.1", port))
        upload.sendall(f"POST /jobs/uploading/files?name=data&type=input HTTP/1.1\r\nHost: x\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100_000])
        time.sleep(0.3)
        stop_timeout = float(unit_value("TimeoutStopSec"))
        process.send_signal(signal.SIGTERM)  # what systemctl stop sends (KillMode=process: to the daemon only)
        stopped_at = time.time()
        time.sleep(0.5)
        upload.sendall(body[100_000:])  # the upload in flight finishes
        reply = upload.recv(4096).decode(errors="replace")
        upload.close()
        assert reply.startswith("HTTP/1.1 200"), reply
        assert process.wait(stop_timeout) == 0
        assert time.time() - stopped_at < stop_timeout
        assert notify.wait_for("STOPPING=1", 1)
        assert (tmp_path / "staging" / "uploading" / "inputs" / "data").read_bytes() == body
    finally:
        if process.poll() is None:
            process.kill()
    # the job went on while the daemon was down; the next start adopts it and it completes
    process, notify = start_unit(tmp_path, port)
    try:
        assert notify.wait_for("READY=1", 30)
        final = wait_status(url, "running", {"complete", "failed"})
        assert final["status"] == "complete" and final["returncode"] == 0
        assert rest(url, "GET", "/jobs/running/files", name="out")[1] == b"done\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
