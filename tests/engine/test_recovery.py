"""Recovery in the background: the engine serves at once, and every job held reaches its true state."""
from __future__ import annotations

import os
import time

import pytest

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from pulsar_lite.engine import recovery as recovery_module
from tests.conftest import wait_until

M = wire.DEFAULT_MANAGER


def config(tmp_path, workers=2):
    return build_config({"staging_directory": str(tmp_path / "staging"), "persistence_directory": str(tmp_path / "p"),
                         "store_synchronous": "normal", "kill_grace_period": 0.5,
                         "managers": {M: {"type": "queued_python", "num_concurrent_jobs": workers}}})


def wait_for(predicate, timeout=30.0):
    return wait_until(predicate, timeout=timeout, interval=0.02)


def states(engine, ids):
    return {job_id: engine.store.get(M, job_id).state for job_id in ids}


@pytest.fixture
def engines():
    started = []

    def start(cfg, slow=0.0, monkeypatch=None):
        engine = JobEngine(cfg)
        if slow:
            real = engine.recover_job

            def slow_recover(record):
                time.sleep(slow)
                real(record)

            engine.recover_job = slow_recover
        engine.start()
        started.append(engine)
        return engine

    yield start
    for engine in started:
        if not engine.stopped:
            engine.stop()


def test_jobs_finished_while_down_and_cancelled_during_recovery(tmp_path, engines, monkeypatch):
    monkeypatch.setattr(recovery_module, "BATCH", 10)
    cfg = config(tmp_path)
    first = engines(cfg)
    ids = [f"j{n:03d}" for n in range(60)]
    for job_id in ids:
        first.setup(M, job_id)
        first.submit(M, job_id, {"command_line": "sleep 0.6; echo ran >> ../outputs/runs"})
    wait_for(lambda: sum(s == wire.State.RUNNING for s in states(first, ids).values()) == 2)
    running = [j for j, s in states(first, ids).items() if s == wire.State.RUNNING]
    first.stop()
    time.sleep(1.2)  # the two running jobs end while nobody watches, and leave their exit codes

    second = engines(cfg, slow=0.02)  # 60 jobs x 20 ms: recovery still under way below
    assert not second.wait_recovered(0)
    late = ids[-5:]  # not reconciled yet: cancelled from their stored record
    for job_id in late:
        second.cancel(M, job_id)
    assert second.status(M, late[0])["status"] == "cancelled"
    assert second.wait_recovered(30)
    wait_for(lambda: all(s in wire.TERMINAL_STATES for s in states(second, ids).values()), timeout=60)
    final = states(second, ids)
    assert all(final[j] == wire.State.CANCELLED for j in late)
    assert all(final[j] == wire.State.COMPLETE for j in ids if j not in late)
    for job_id in running:  # ended while down: read from return_code, not run again
        assert second.store.get(M, job_id).returncode == 0
    for job_id in ids:
        runs = tmp_path / "staging" / job_id / "outputs" / "runs"
        if job_id in late:
            assert not runs.exists()  # cancelled before it ever ran
        else:
            assert runs.read_text() == "ran\n"  # once


def test_a_second_restart_in_the_middle_of_recovery(tmp_path, engines, monkeypatch):
    monkeypatch.setattr(recovery_module, "BATCH", 5)
    cfg = config(tmp_path, workers=1)
    first = engines(cfg)
    ids = [f"k{n:03d}" for n in range(40)]
    first.setup(M, "blocker")
    first.submit(M, "blocker", {"command_line": "sleep 3"})
    for job_id in ids:
        first.setup(M, job_id)
        first.submit(M, job_id, {"command_line": "echo ran >> ../outputs/runs"})
    first.stop()
    second = engines(cfg, slow=0.05)
    wait_for(lambda: second.recovery.done >= 10)
    assert not second.recovery.finished.is_set()
    second.stop()  # mid-recovery
    third = engines(cfg)
    assert third.wait_recovered(30)
    wait_for(lambda: all(s in wire.TERMINAL_STATES for s in states(third, ids + ["blocker"]).values()), timeout=60)
    for job_id in ids:
        assert (tmp_path / "staging" / job_id / "outputs" / "runs").read_text() == "ran\n"  # once each


def test_start_reads_no_job_record_before_it_returns(tmp_path, engines, monkeypatch):
    """Start-up does no per-job work: the keys in one query, every record in the background."""
    cfg = config(tmp_path)
    first = engines(cfg)
    for n in range(20):
        first.setup(M, f"q{n}")
        first.submit(M, f"q{n}", {"command_line": "sleep 30"})
    first.stop()
    for n in range(20):  # their processes, if any, must not hold the test
        os.system(f"pkill -f 'staging/q{n}/command.sh' >/dev/null 2>&1")
    from pulsar_lite.store import Store
    reads = []
    real = Store.get_many

    def counting(self, keys):
        reads.append(len(keys))
        return real(self, keys)

    monkeypatch.setattr(Store, "get_many", counting)
    second = JobEngine(cfg)
    gate = recovery_module.Recovery._run

    def held(self, keys):
        time.sleep(0.3)
        gate(self, keys)

    monkeypatch.setattr(recovery_module.Recovery, "_run", held)
    second.start()
    try:
        assert reads == [] and second.recovery.total == 20
        assert second.status(M, "q0")["status"] in ("queued", "running")
        assert second.wait_recovered(10)
        assert sum(reads) == 20
    finally:
        second.stop()
