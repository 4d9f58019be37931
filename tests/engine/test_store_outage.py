"""A job store that cannot be written, with a real fault: another connection holds SQLite's write lock past
``store_busy_timeout`` (what a backup tool or an admin's ``sqlite3`` shell does). The daemon must survive it
and say so, and every job must go on by itself afterwards: none lost, none started twice, none stuck.
(The same on a real full filesystem, through a running daemon: tests/integration/test_store_faults.py.)"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time

import pytest
from webob import Request

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from pulsar_lite.engine import recovery as recovery_module
from pulsar_lite.web import RestApp
from tests.conftest import wait_until

M = wire.DEFAULT_MANAGER


class WriteLock:
    """Another program holding the database's write lock (a real SQLite lock, from its own connection)."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def make_config(tmp_path, **app):
    return build_config({"staging_directory": str(tmp_path / "staging"), "persistence_directory": str(tmp_path / "p"),
                         "store_synchronous": "normal", "store_busy_timeout": 0.2, "kill_grace_period": 0.5,
                         "managers": {M: {"type": "queued_python", "num_concurrent_jobs": 1}}, **app})


@pytest.fixture
def started(tmp_path):
    engines = []

    def start(config=None, background=True):
        engine = JobEngine(config or make_config(tmp_path))
        engine.background_recovery = background
        engine.deferred.interval = 0.1  # probe often: the test waits for the end of the outage
        engine.start()
        engines.append(engine)
        return RestApp(engine)

    yield start
    for engine in engines:
        if not engine.stopped:
            engine.stop()


def call(app, method, path, **params):
    from urllib.parse import urlencode
    request = Request.blank(path + ("?" + urlencode(params) if params else ""), method=method)
    return request.get_response(app)


def state(app, job_id):
    return json.loads(call(app, "GET", f"/jobs/{job_id}/status").body)


def wait(predicate, timeout=15.0):
    return wait_until(predicate, timeout=timeout, interval=0.02)


def submit(app, job_id, command):
    assert call(app, "POST", "/jobs", job_id=job_id).status_int == 200
    response = call(app, "POST", f"/jobs/{job_id}/submit", command_line=command)
    assert response.status_int == 200, response.body


def test_jobs_that_start_and_end_while_the_store_is_locked_are_recorded_after_it(started, tmp_path, caplog):
    """One worker. Job a ends during the outage; job b, queued behind it, starts and ends during it. On the
    code before the fix the worker died of the failed write (its except-branch's report failed again): a stayed
    running and b queued, for good, while /readyz said 200."""
    app = started()
    engine = app.engine
    go_a, go_b, runs = tmp_path / "go_a", tmp_path / "go_b", tmp_path / "runs"
    submit(app, "a", f"while [ ! -e {go_a} ]; do sleep 0.02; done; exit 3")
    submit(app, "b", f"echo b >> {runs}; while [ ! -e {go_b} ]; do sleep 0.02; done")
    wait(lambda: state(app, "a")["status"] == "running")

    caplog.set_level(logging.INFO)
    lock = WriteLock(engine.store.path)
    try:
        go_a.touch()
        wait(lambda: runs.exists())  # a ended (its end kept), the worker went on and started b
        go_b.touch()
        wait(lambda: len(engine.deferred) >= 3)  # a's end, b's start, b's end: kept in order
        assert state(app, "a")["status"] == "running" and state(app, "b")["status"] == "queued"
        ready = call(app, "GET", "/readyz")
        assert ready.status_int == 503
        assert any("job store cannot be written (database is locked)" in line for line in ready.json["waiting"])
        refused = call(app, "POST", "/jobs", job_id="c")
        assert refused.status_int == 503 and b"database is locked" in refused.body
        assert b"Traceback" not in refused.body and len(refused.body.strip().splitlines()) == 1
        assert engine.store.health.failures >= 3
    finally:
        lock.release()

    wait(lambda: state(app, "b")["status"] == "complete")
    assert state(app, "a")["status"] == "complete" and state(app, "a")["returncode"] == 3
    assert runs.read_text() == "b\n"  # started once
    assert [s for s, _, _ in engine.store.transitions(M, "b")][:3] == ["setup", "queued", "running"]
    assert call(app, "GET", "/readyz").status_int == 200
    submit(app, "c", "exit 0")  # the only worker is alive
    wait(lambda: state(app, "c")["status"] == "complete")
    episodes = [r for r in caplog.records if r.levelno >= logging.WARNING and "cannot be written:" in r.getMessage()]
    assert len(episodes) == 1, "\n".join(f"{r.lineno} {r.getMessage()}" for r in episodes)
    assert len([r for r in caplog.records if "can be written again after" in r.getMessage()]) == 1


def test_a_stage_in_that_ends_during_the_outage_queues_the_job_after_it(started, tmp_path):
    """The job's input is downloaded (slowly, from a real HTTP server) while the store is locked: the move
    from preprocessing to queued is kept and made afterwards, and the job runs once (before the fix the
    staging thread died of the failed write and the job stayed preprocessing for good)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tests.staging.faultserver import FaultServer

    app = started()
    engine = app.engine
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "in.bin").write_bytes(os.urandom(512 * 1024))
    runs = tmp_path / "runs"
    with FaultServer(str(origin)) as server:
        server.rate = 512 * 1024  # about a second for the whole file
        engine.setup(M, "s")
        staging = {"setup": [{"name": "in.dat", "type": "input", "action": {
            "action_type": "remote_transfer", "url": server.url + "/in.bin", "path": "/gx/in.dat"}}]}
        engine.submit(M, "s", {"command_line": f"cmp ../inputs/in.dat {origin / 'in.bin'} && echo ran >> {runs}",
                               "remote_staging": staging})
        assert engine.store.get(M, "s").state == wire.State.PREPROCESSING
        lock = WriteLock(engine.store.path)
        try:
            wait(lambda: len(engine.deferred) >= 1)  # the download ended; its move on is kept
            assert engine.store.get(M, "s").state == wire.State.PREPROCESSING
        finally:
            lock.release()
    wait(lambda: state(app, "s")["status"] in wire.TERMINAL_STATES)
    assert state(app, "s")["status"] == "complete", state(app, "s")
    assert runs.read_text() == "ran\n"


def test_recovery_waits_for_the_store_and_readyz_says_so(started, tmp_path, monkeypatch):
    """Recovery meets a store it cannot write (a job whose manager is gone must be recorded lost). On the code
    before the fix the recovery thread ended (the job was skipped, or the thread died in its batch), /readyz
    said 200 and the job stayed queued for good."""
    monkeypatch.setattr(recovery_module, "RETRY", 0.1)
    first = started()
    submit(first, "orphan", "sleep 0.2")
    wait(lambda: state(first, "orphan")["status"] == "complete")
    first.engine.stop()
    db = sqlite3.connect(first.engine.config.store_path)
    with db:
        db.execute("UPDATE jobs SET state='queued', manager='gone' WHERE job_id='orphan'")
    db.close()

    lock = WriteLock(first.engine.config.store_path)
    try:
        second = started()
        wait(lambda: second.engine.recovery.error is not None)
        ready = call(second, "GET", "/readyz")
        assert ready.status_int == 503
        assert any(line.startswith("recovering 1 of 1 job(s) (waiting: job orphan: the job store cannot be written")
                   for line in ready.json["waiting"]), ready.json
        assert not second.engine.recovered()
    finally:
        lock.release()
    assert second.engine.wait_recovered(10)
    assert second.engine.store.get("gone", "orphan").state == wire.State.LOST
    assert call(second, "GET", "/readyz").status_int == 200


def test_an_fsync_that_fails_after_the_commit_launches_the_job_and_reports_the_outage(started, tmp_path,
                                                                                      monkeypatch):
    """fdatasync fails once the submit has committed (EIO from the disk). The job is recorded: it must run and
    the client must be answered, not get a 500 while the job stays queued for good; the outage is reported
    until an fsync succeeds. (A patched os.fdatasync: no real disk error can be made here.)"""
    from pulsar_lite import groupsync

    app = started(make_config(tmp_path, store_synchronous="full"))
    calls = []

    def failing(fd):
        calls.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(groupsync.os, "fdatasync", failing)
    assert call(app, "POST", "/jobs", job_id="f").status_int == 200
    response = call(app, "POST", "/jobs/f/submit", command_line="exit 0")
    assert response.status_int == 200, response.body
    assert calls and app.engine.store.health.failing
    assert call(app, "GET", "/readyz").status_int == 503
    monkeypatch.undo()
    wait(lambda: state(app, "f")["status"] == "complete")
    wait(lambda: not app.engine.store.health.failing)
    assert call(app, "GET", "/readyz").status_int == 200
    assert os.path.exists(app.engine.config.store_path)


def test_the_outage_shows_in_metrics(started):
    from prometheus_client.parser import text_string_to_metric_families

    from pulsar_lite.metrics import Metrics

    app = started()
    engine = app.engine
    engine.metrics = Metrics(engine)

    def sample(name):
        for family in text_string_to_metric_families(engine.metrics.exposition().decode()):
            for s in family.samples:
                if s.name == name:
                    return s.value
        raise AssertionError(name)

    assert sample("pulsar_lite_store_writable") == 1
    lock = WriteLock(engine.store.path)
    try:
        assert call(app, "POST", "/jobs", job_id="m").status_int == 503
        assert sample("pulsar_lite_store_writable") == 0
        assert sample("pulsar_lite_store_write_failures_total") >= 1
    finally:
        lock.release()
    assert call(app, "POST", "/jobs", job_id="m").status_int == 200
    assert sample("pulsar_lite_store_writable") == 1


def test_readyz_is_true_again_when_an_outage_only_requests_saw_ends(started):
    """Nothing of a job waits (only a request met the lock): the end of the outage must still be noticed,
    or /readyz would say 503 for good while no request dares to write (the review found it stuck)."""
    app = started()
    lock = WriteLock(app.engine.store.path)
    try:
        assert call(app, "POST", "/jobs", job_id="r").status_int == 503
        assert call(app, "GET", "/readyz").status_int == 503
    finally:
        lock.release()
    wait(lambda: call(app, "GET", "/readyz").status_int == 200, timeout=5)


def test_a_kill_escalation_does_not_wait_for_the_store(started, tmp_path):
    """The probe of an outage may wait up to store_busy_timeout; a cancelled job's SIGKILL must not wait
    behind it (with both on the timers thread, the SIGKILL came only when the probe gave up)."""
    app = started(make_config(tmp_path, store_busy_timeout=3, kill_grace_period=4,
                              managers={M: {"type": "queued_python", "num_concurrent_jobs": 2}}))
    engine = app.engine
    go = tmp_path / "go"
    submit(app, "stubborn", "trap '' TERM; while true; do sleep 0.05; done")
    submit(app, "quick", f"while [ ! -e {go} ]; do sleep 0.02; done")
    wait(lambda: state(app, "stubborn")["status"] == "running" and state(app, "quick")["status"] == "running")
    pid = engine.store.get(M, "stubborn").pid
    engine.cancel(M, "stubborn")  # SIGTERM (ignored) now, SIGKILL in 4 s
    began = time.monotonic()
    lock = WriteLock(engine.store.path)
    try:
        go.touch()  # quick's end waits 3 s for the lock, then for the store: probes of 3 s each from then on
        wait(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             timeout=15)
        assert time.monotonic() - began < 5.0  # the grace, not the grace plus a probe
    finally:
        lock.release()
    wait(lambda: state(app, "quick")["status"] == "complete")
