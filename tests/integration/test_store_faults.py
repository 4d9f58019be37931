"""Real faults under a running daemon: its state directory on a small tmpfs that fills up and is freed, its
database locked by another program past the busy timeout, a damaged database at start, and kill -9 right
after a clean, after a cancel and in the middle of recovery. For each: what a client and /readyz see during
the fault, and that every job ends right after it (none lost, none run twice, none stuck, no foreign file in
any job's directory)."""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import alive, need, wait_until

from .rest_helpers import rest, status, submit, wait_status
from .test_restart import job_pid

pytestmark = pytest.mark.integration

ONE_WORKER = {"managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 1}}}


def readyz(daemon):
    code, body = rest(daemon.url, "GET", "/readyz")
    return code, json.loads(body)


def metric(daemon, name):
    _, body = rest(daemon.url, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs mounted for the test (root only: CI runs as root)."""
    mount = tmp_path / "state"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    need(result.returncode == 0, f"cannot mount a tmpfs (root needed): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write until the filesystem is full, down to its last block; the filler's path (delete it to free the
    space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        size = 1 << 20
        while size >= 512:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                size //= 2
    finally:
        os.close(fd)
    return filler


def test_a_full_state_filesystem_is_an_outage_the_daemon_survives_and_reports(daemon_factory, small_filesystem,
                                                                              tmp_path):
    daemon = daemon_factory({**ONE_WORKER, "persistence_directory": str(small_filesystem)}).start()
    go, runs = tmp_path / "go", tmp_path / "runs"
    submit(daemon.url, "a", f"echo a >> {runs}; while [ ! -e {go} ]; do sleep 0.05; done; exit 3")
    wait_status(daemon.url, "a", {"running"})
    filler = fill(small_filesystem)
    try:
        go.touch()  # a ends while its end cannot be recorded
        code, reply = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(daemon)), timeout=20,
                                 what="/readyz 503")
        assert any("job store cannot be written" in line and "full" in line for line in reply["waiting"]), reply
        assert status(daemon.url, "a")["status"] == "running"  # never ahead of what is recorded
        code, body = rest(daemon.url, "POST", "/jobs", job_id="refused")
        assert code == 503 and b"cannot be written" in body and len(body.strip().splitlines()) == 1
        assert metric(daemon, "pulsar_lite_store_writable") == 0
        assert metric(daemon, "pulsar_lite_store_write_failures_total") >= 1
        time.sleep(3)  # the daemon keeps trying while the disk stays full
        assert daemon.process.poll() is None
    finally:
        filler.unlink()
    final = wait_status(daemon.url, "a", {"complete", "failed", "lost"}, timeout=20)
    assert final["status"] == "complete" and final["returncode"] == 3, final
    wait_until(lambda: readyz(daemon)[0] == 200, timeout=10, what="/readyz 200")
    submit(daemon.url, "b", f"echo b >> {runs}")  # the only worker survived
    wait_status(daemon.url, "b", {"complete"})
    assert runs.read_text() == "a\nb\n"  # each once
    log = daemon.log()
    outage = [line for line in log.splitlines() if " ERROR " in line and "cannot be written" in line]
    assert len(outage) == 1 and "database or disk is full" in outage[0], log[-3000:]  # once per episode
    assert "Traceback" not in log, log[-3000:]


def test_a_store_locked_past_the_busy_timeout(daemon_factory, tmp_path):
    daemon = daemon_factory({**ONE_WORKER, "store_busy_timeout": 0.5}).start()
    go = tmp_path / "go"
    submit(daemon.url, "l", f"while [ ! -e {go} ]; do sleep 0.05; done")
    wait_status(daemon.url, "l", {"running"})
    db = sqlite3.connect(Path(daemon.app["persistence_directory"]) / "pulsar_lite.sqlite", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # what a backup script or an admin's sqlite3 shell may do
    try:
        go.touch()
        code, reply = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(daemon)), timeout=20,
                                 what="/readyz 503")
        assert any("database is locked" in line for line in reply["waiting"]), reply
        assert status(daemon.url, "l")["status"] == "running"
    finally:
        db.execute("ROLLBACK")
        db.close()
    wait_status(daemon.url, "l", {"complete"}, timeout=20)
    wait_until(lambda: readyz(daemon)[0] == 200, timeout=10, what="/readyz 200")


def test_a_damaged_store_stops_the_daemon_with_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    database = state / "pulsar_lite.sqlite"
    database.write_bytes(os.urandom(8192))
    (tmp_path / "app.yml").write_text(json.dumps({"staging_directory": str(tmp_path / "staging"),
                                                  "persistence_directory": str(state)}))
    result = subprocess.run([sys.executable, "-m", "pulsar_lite", "serve", "--config", str(tmp_path / "app.yml"),
                             "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if "sqlite" in line]
    assert len(lines) == 1 and lines[0].startswith("pulsar-lite: configuration error: the job store"), result.stderr
    assert str(database) in lines[0] and "not a database" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_kill9_right_after_cleaning_a_running_job(daemon_factory, tmp_path):
    """The cleaned job takes a second to stop and writes into its working directory as it goes; the daemon
    dies right after the clean. Nothing of it may appear in another job's directory, before or after the
    restart."""
    daemon = daemon_factory({**ONE_WORKER, "kill_grace_period": 5}).start()
    submit(daemon.url, "old", "trap 'sleep 1; echo late > late.txt; exit 1' TERM; "
                              "while true; do sleep 0.05; done")
    wait_status(daemon.url, "old", {"running"})
    pid = job_pid(daemon, "old")
    assert rest(daemon.url, "DELETE", "/jobs/old")[0] == 200
    daemon.kill9()
    daemon.start()
    for n in range(4):
        submit(daemon.url, f"new{n}", "true")
    wait_until(lambda: not alive(pid), timeout=15, what="the cleaned job's end")
    for n in range(4):
        wait_status(daemon.url, f"new{n}", {"complete"})
    late = [str(p) for p in daemon.staging.rglob("late.txt")]
    assert late == [], late


def test_kill9_right_after_cancelling_a_running_job(daemon_factory):
    """The job ignores SIGTERM; the daemon dies before its SIGKILL. At the restart the cancel must still be
    carried out (before the fix the adopted job ran on, for good, and stayed 'running')."""
    daemon = daemon_factory({**ONE_WORKER, "kill_grace_period": 1}).start()
    submit(daemon.url, "stubborn", "trap '' TERM; while true; do sleep 0.05; done")
    wait_status(daemon.url, "stubborn", {"running"})
    pid = job_pid(daemon, "stubborn")
    assert rest(daemon.url, "PUT", "/jobs/stubborn/cancel")[0] == 200
    daemon.kill9()
    assert alive(pid)
    daemon.start()
    wait_status(daemon.url, "stubborn", {"cancelled"}, timeout=20)
    wait_until(lambda: not alive(pid), timeout=10, what="the job's end")


def test_kill9_in_the_middle_of_recovery(daemon_factory, tmp_path):
    """Many jobs queued behind a long one, kill -9, restart, kill -9 again at once (recovery still under way
    or just done), restart: every job runs exactly once."""
    daemon = daemon_factory(ONE_WORKER).start()
    runs = tmp_path / "runs"
    submit(daemon.url, "blocker", "sleep 2")
    ids = [f"r{n:03d}" for n in range(200)]
    for job_id in ids:
        submit(daemon.url, job_id, f"echo {job_id} >> {runs}")
    daemon.kill9()
    daemon.start()
    daemon.kill9()
    daemon.start()
    for job_id in ids:
        wait_status(daemon.url, job_id, {"complete"}, timeout=60)
    assert sorted(runs.read_text().split()) == ids
    assert readyz(daemon)[0] == 200
