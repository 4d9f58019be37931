"""Retention: jobs no client cleans up are removed after job_retention; active jobs never are."""
import os
import time

import pytest

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine.retention import RetentionSweeper, sweep_interval

M = "_default_"


def run_job(engine, job_id, command="true"):
    engine.setup(M, job_id)
    engine.submit(M, job_id, {"command_line": command})


def wait_state(engine, job_id, states, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = engine.store.get(M, job_id)
        if record is not None and record.state in states:
            return record
        time.sleep(0.02)
    raise AssertionError(f"{job_id}: {engine.store.get(M, job_id)}")


def test_sweep_removes_only_old_finished_and_unsubmitted_jobs(engine_factory):
    engine = engine_factory()
    run_job(engine, "done")
    run_job(engine, "failed", "exit 3")
    engine.setup(M, "abandoned")  # set up, never submitted
    run_job(engine, "running", "sleep 60")
    wait_state(engine, "done", wire.TERMINAL_STATES)
    wait_state(engine, "failed", wire.TERMINAL_STATES)
    wait_state(engine, "running", {wire.State.RUNNING})
    directories = {j: engine.job_directory(M, j).path for j in ("done", "failed", "abandoned", "running")}

    sweeper = RetentionSweeper(engine, retention=3600)
    assert sweeper.sweep() == 0  # nothing is an hour old yet
    assert all(os.path.isdir(d) for d in directories.values())

    assert sweeper.sweep(now=time.time() + 7200) == 3
    for job_id in ("done", "failed", "abandoned"):
        assert engine.store.get(M, job_id) is None
        assert not os.path.exists(directories[job_id])
    # an active job is never swept, however old its last change
    assert engine.store.get(M, "running").state == wire.State.RUNNING
    assert os.path.isdir(directories["running"])
    engine.cancel(M, "running")
    wait_state(engine, "running", {wire.State.CANCELLED})


def test_expire_rechecks_the_job_under_its_lock(engine_factory):
    """The sweep lists old jobs, then removes them one by one: a job its client has taken up again in
    between (set up and submitted afresh) is active now and must stay."""
    engine = engine_factory()
    run_job(engine, "again")
    wait_state(engine, "again", wire.TERMINAL_STATES)
    listed = engine.store.jobs_updated_before(("complete",), time.time() + 1)
    assert [r.job_id for r in listed] == ["again"]
    run_job(engine, "again", "sleep 60")
    wait_state(engine, "again", {wire.State.RUNNING})
    assert engine.expire(M, "again", time.time() + 1) is False
    assert engine.store.get(M, "again").state == wire.State.RUNNING
    engine.cancel(M, "again")
    wait_state(engine, "again", {wire.State.CANCELLED})


def test_debug_keeps_directories(engine_factory):
    engine = engine_factory(managers={M: {"debug": True}})
    run_job(engine, "kept")
    wait_state(engine, "kept", wire.TERMINAL_STATES)
    path = engine.job_directory(M, "kept").path
    assert RetentionSweeper(engine, retention=60).sweep(now=time.time() + 120) == 1
    assert engine.store.get(M, "kept") is None
    assert os.path.isdir(path)


def test_configured_retention_sweeps_on_its_own(engine_factory):
    engine = engine_factory(job_retention=0.5)
    run_job(engine, "short")
    wait_state(engine, "short", wire.TERMINAL_STATES)
    path = engine.job_directory(M, "short").path
    deadline = time.time() + 10
    while engine.store.get(M, "short") is not None and time.time() < deadline:
        time.sleep(0.1)
    assert engine.store.get(M, "short") is None
    assert not os.path.exists(path)


def test_sweep_interval_bounds():
    assert sweep_interval(0.5) == 1.0
    assert sweep_interval(600) == 60.0
    assert sweep_interval(10 * 86400) == 3600.0


def test_retention_config():
    assert build_config({}).job_retention is None
    assert build_config({"job_retention": "864000"}).job_retention == 864000.0
    with pytest.raises(Exception, match="job_retention"):
        build_config({"job_retention": -1})


def test_sweep_limit_takes_the_oldest_first(engine_factory):
    engine = engine_factory()
    for job_id in ("first", "second", "third"):
        run_job(engine, job_id)
        wait_state(engine, job_id, wire.TERMINAL_STATES)
        time.sleep(0.01)
    sweeper = RetentionSweeper(engine, retention=60)
    assert sweeper.sweep(now=time.time() + 120, limit=2) == 2
    assert [j for j in ("first", "second", "third") if engine.store.get(M, j) is not None] == ["third"]
    assert sweeper.sweep(now=time.time() + 120, limit=2) == 1
