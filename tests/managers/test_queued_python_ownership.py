"""queued_python: one owner per start, signals only to the job's own processes, and no directory handed to
another job while the old one's process may still write there. Each interleaving is forced (events and
locks, no sleeps that hope); each test fails on the code before the fix."""
from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import threading
import time

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from tests.conftest import wait_until

M = wire.DEFAULT_MANAGER


def wait(predicate, timeout=15.0):
    return wait_until(predicate, timeout=timeout, interval=0.02)


def config(tmp_path, workers=2, **app):
    return build_config({"staging_directory": str(tmp_path / "staging"), "persistence_directory": str(tmp_path / "p"),
                         "store_synchronous": "normal", "kill_grace_period": 0.3,
                         "managers": {M: {"type": "queued_python", "num_concurrent_jobs": workers}}, **app})


def start(cfg):
    engine = JobEngine(cfg)
    engine.background_recovery = False
    engine.start()
    return engine


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_job_queued_twice_runs_once_and_ends_when_its_script_ends(tmp_path):
    """Two entries of one job id in the queue (a launch racing a recovery's); both workers read the job as
    startable at the same moment. Before the fix both started the script, and the refused one killed its copy
    and reported -9, which ended the job while the winner's script still ran."""
    engine = start(config(tmp_path, workers=2))
    try:
        runs, go = tmp_path / "runs", tmp_path / "go"
        both_read = threading.Barrier(2, timeout=2)
        real_get = engine.store.get

        def get(manager, job_id):  # each worker's first read of the job waits for the other's
            record = real_get(manager, job_id)
            if job_id == "twice" and "worker" in threading.current_thread().name:
                try:
                    both_read.wait()
                except threading.BrokenBarrierError:
                    pass  # the other worker waits for the job's lock: only one may read it at a time
            return record

        engine.store.get = get
        engine.setup(M, "twice")
        engine.submit(M, "twice", {"command_line": f"echo run >> {runs}; while [ ! -e {go} ]; do sleep 0.02; done"})
        engine.managers[M].launch("twice")
        wait(lambda: runs.exists())
        time.sleep(2.5)  # past the barrier's timeout: a second start would have happened by now
        engine.store.get = real_get
        assert runs.read_text() == "run\n"
        assert engine.store.get(M, "twice").state == wire.State.RUNNING  # not ended by a refused copy
        go.touch()
        wait(lambda: engine.store.get(M, "twice").state == wire.State.COMPLETE)
        assert engine.store.get(M, "twice").returncode == 0 and runs.read_text() == "run\n"
    finally:
        engine.stop()


def test_a_stored_pid_that_is_no_longer_the_job_is_not_signalled(tmp_path):
    """After a reboot (or once the job's process group is gone) the stored pid may be another program's:
    a cancel must not signal it. Before the fix it got SIGTERM, then SIGKILL."""
    engine = start(config(tmp_path))
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        engine.setup(M, "old")
        engine.submit(M, "old", {"command_line": "true"})
        wait(lambda: engine.store.get(M, "old").state == wire.State.COMPLETE)
        record = dataclasses.replace(engine.store.get(M, "old"), state=wire.State.RUNNING, pid=stranger.pid)
        engine.managers[M].kill(record)
        time.sleep(0.6)  # past kill_grace_period: the SIGKILL would have come
        assert stranger.poll() is None
    finally:
        stranger.kill()
        engine.stop()


def test_a_start_in_flight_at_shutdown_is_left_running_and_adopted(tmp_path):
    """The daemon stops while a worker reports a start: the job must be left to run and be adopted by the
    next start. Before the fix the report was refused (the engine had stopped) and the job was SIGKILLed."""
    cfg = config(tmp_path, workers=1)
    engine = start(cfg)
    reached, go = threading.Event(), threading.Event()
    real_started = engine.started

    def started(*args, **kwargs):
        reached.set()
        go.wait(10)
        return real_started(*args, **kwargs)

    engine.started = started
    marker = tmp_path / "done"
    engine.setup(M, "inflight")
    engine.submit(M, "inflight", {"command_line": f"sleep 1; echo done > {marker}"})
    assert reached.wait(10)
    engine.stop()
    go.set()
    pid_file = tmp_path / "staging" / "inflight" / "pid"
    wait(lambda: pid_file.exists() and pid_file.read_text().strip())
    pid = int(pid_file.read_text())
    time.sleep(0.2)
    assert alive(pid), "the job was killed at shutdown"
    second = start(cfg)
    try:
        wait(lambda: second.store.get(M, "inflight").state == wire.State.COMPLETE)
        assert marker.read_text() == "done\n"
    finally:
        second.stop()


def test_a_cancelled_job_found_running_without_a_pid_file_ends_cancelled(tmp_path):
    """A running job with no pid file and no exit code at the restart goes back to the queue; its recorded
    cancel must end it. Before the fix it was requeued with the cancel kept, refused by every worker and
    stayed queued for good."""
    cfg = config(tmp_path)
    engine = start(cfg)
    engine.setup(M, "c")
    engine.submit(M, "c", {"command_line": "sleep 30"})
    wait(lambda: engine.store.get(M, "c").state == wire.State.RUNNING)
    pid = engine.store.get(M, "c").pid
    engine.stop()
    os.killpg(pid, signal.SIGKILL)
    wait(lambda: not alive(pid))
    os.unlink(tmp_path / "staging" / "c" / "pid")  # e.g. the daemon died before the script wrote it
    db = sqlite3.connect(cfg.store_path)
    with db:
        db.execute("UPDATE jobs SET cancel_requested=1 WHERE job_id='c'")
    db.close()
    second = start(cfg)
    try:
        wait(lambda: second.store.get(M, "c").state == wire.State.CANCELLED)
    finally:
        second.stop()


def test_cleaning_a_running_job_never_lets_it_write_into_the_next_jobs_directory(tmp_path):
    """The job takes half a second to stop on SIGTERM and writes a file into its working directory as it
    goes. Before the fix its tree was recycled at once and the file landed in the next job's working/ (one
    user's data in another user's job)."""
    engine = start(config(tmp_path, workers=1, kill_grace_period=3))
    try:
        engine.setup(M, "slow-stop")
        script = "trap 'sleep 0.5; echo late > late.txt; exit 1' TERM; touch up; while true; do sleep 0.05; done"
        engine.submit(M, "slow-stop", {"command_line": script})
        working = tmp_path / "staging" / "slow-stop" / "working"
        wait(lambda: (working / "up").exists())
        pid = engine.store.get(M, "slow-stop").pid
        engine.clean(M, "slow-stop")
        followers = [f"next{n}" for n in range(3)]
        for job_id in followers:  # set up at once: each takes a recycled tree when there is one
            engine.setup(M, job_id)
        wait(lambda: not alive(pid))
        time.sleep(0.2)
        assert not any(os.path.exists(tmp_path / "staging" / j / "working" / "late.txt") for j in followers)
        for job_id in followers:
            found = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "staging" / job_id) for f in files]
            assert found == [], f"{job_id} holds files of the cleaned job: {found}"
    finally:
        engine.stop()
