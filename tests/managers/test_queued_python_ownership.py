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
from tests.conftest import alive, wait_until

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


def test_a_tool_that_outlives_its_script_keeps_its_directory_from_other_jobs(tmp_path):
    """The script (bash) dies at once on the cancel's SIGTERM; the tool it started handles SIGTERM and writes
    a file 0.7 s later. The job is cancelled when its script ends, but its directory must not be handed on
    while the tool lives (before the review's fix only the script was followed: the file landed in job B)."""
    engine = start(config(tmp_path, workers=1, kill_grace_period=5))
    tool = tmp_path / "tool.py"
    tool.write_text("import signal, sys, time\n"
                    "def stop(*_):\n    time.sleep(0.7); open('late.txt', 'w').write('data of job A'); sys.exit(1)\n"
                    "signal.signal(signal.SIGTERM, stop)\nopen('up', 'w').close()\n"
                    "while True:\n    time.sleep(0.05)\n")
    try:
        engine.setup(M, "A")
        engine.submit(M, "A", {"command_line": f"python3 {tool}"})
        wait(lambda: (tmp_path / "staging" / "A" / "working" / "up").exists())
        engine.cancel(M, "A")
        wait(lambda: engine.store.get(M, "A").state == wire.State.CANCELLED)
        assert engine.managers[M].may_write("A")  # the tool still runs
        engine.clean(M, "A")
        for job_id in ("B", "C"):
            engine.setup(M, job_id)
        time.sleep(1.5)
        for job_id in ("B", "C"):
            found = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "staging" / job_id) for f in files]
            assert found == [], found
        wait(lambda: not engine.managers[M].may_write("A"))  # followed until the tool is gone
    finally:
        engine.stop()


def test_a_job_whose_start_was_never_recorded_is_stopped_by_a_cancel_after_the_restart(tmp_path):
    """The store failed as the start was reported, then the daemon stopped: the store says queued, no pid,
    while the script runs. A cancel before recovery reaches the job must still stop it (found by the pid
    file its script wrote), and its directory must not be handed on while it runs."""
    from tests.engine.test_store_outage import WriteLock

    cfg = config(tmp_path, workers=1, store_busy_timeout=0.2)
    first = start(cfg)
    held = []
    real_started = first.started

    def started(*args, **kwargs):
        held.append(WriteLock(first.store.path))  # the store fails right as the start is reported
        return real_started(*args, **kwargs)

    first.started = started
    late = tmp_path / "staging" / "A" / "working" / "late.txt"
    first.setup(M, "A")
    first.submit(M, "A", {"command_line": "sleep 3; echo late > late.txt"})
    wait(lambda: len(first.deferred) >= 1)
    pid_file = tmp_path / "staging" / "A" / "pid"
    pid = int(wait(lambda: pid_file.exists() and pid_file.read_text().strip()))
    first.stop()
    held[0].release()
    assert first.store is not None

    release = threading.Event()
    second = JobEngine(cfg)
    real_recover = second.recover_job
    second.recover_job = lambda record: (release.wait(10), real_recover(record))
    second.start()
    try:
        assert second.store.get(M, "A").state == wire.State.QUEUED and second.store.get(M, "A").pid is None
        assert second.managers[M].may_write("A")
        second.cancel(M, "A")
        release.set()
        wait(lambda: not alive(pid), timeout=5)
        assert not late.exists()
    finally:
        release.set()
        second.stop()


def test_a_start_that_meets_an_outage_after_a_cancel_is_stopped(tmp_path):
    """A worker claimed the job; the cancel is recorded before the process starts; then the store fails.
    The start must be refused from the record as it is (cancelled), not answered 'recorded later'."""
    from tests.engine.test_store_outage import WriteLock

    engine = start(config(tmp_path, workers=1, store_busy_timeout=0.2))
    manager = engine.managers[M]
    reached, go = threading.Event(), threading.Event()
    real_start = manager._start

    def start_later(job_dir):
        reached.set()
        go.wait(10)
        return real_start(job_dir)

    manager._start = start_later
    ran = tmp_path / "staging" / "A" / "working" / "ran.txt"
    try:
        engine.setup(M, "A")
        engine.submit(M, "A", {"command_line": "sleep 1; echo ran > ran.txt"})
        assert reached.wait(10)
        engine.cancel(M, "A")
        assert engine.store.get(M, "A").state == wire.State.CANCELLED
        lock = WriteLock(engine.store.path)
        try:
            go.set()
            time.sleep(1.5)
        finally:
            lock.release()
        assert not ran.exists()
    finally:
        engine.stop()
