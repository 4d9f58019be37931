"""A user's intent (cancel, clean, a new setup of the id) against a manager's events, with the interleaving
forced: whichever comes first, the user's intent is never lost."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from pulsar_lite import wire

M = wire.DEFAULT_MANAGER
ONE_WORKER = {"managers": {M: {"type": "queued_python", "num_concurrent_jobs": 1}}, "kill_grace_period": 0.5}


def wait_state(engine, job_id, states, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = engine.store.get(M, job_id)
        if record is not None and record.state in states:
            return record
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} is {engine.store.get(M, job_id)}, wanted {states}")


@pytest.fixture
def busy_engine(engine_factory):
    """An engine whose only worker is held by a long job, so that other jobs stay queued."""
    engine = engine_factory(**ONE_WORKER)
    engine.setup(M, "blocker")
    engine.submit(M, "blocker", {"command_line": "sleep 30"})
    wait_state(engine, "blocker", {wire.State.RUNNING})
    yield engine
    engine.cancel(M, "blocker")


def queued_job(engine, job_id):
    engine.setup(M, job_id)
    engine.submit(M, job_id, {"command_line": "sleep 30"})
    return wait_state(engine, job_id, {wire.State.QUEUED})


class PausedRead:
    """Stops the thread named ``thread_name`` right after it read ``job_id``'s record, until released."""

    def __init__(self, monkeypatch, engine, job_id, thread_name):
        self.read = threading.Event()
        self.go = threading.Event()
        self.real_get = engine.store.get

        def get(manager, wanted):
            record = self.real_get(manager, wanted)
            if wanted == job_id and threading.current_thread().name == thread_name and not self.read.is_set():
                self.read.set()
                assert self.go.wait(10)
            return record

        monkeypatch.setattr(engine.store, "get", get)


def test_cancel_that_read_queued_is_not_lost_when_the_manager_starts_the_job(busy_engine, monkeypatch):
    """The cancel reads ``queued``; the manager starts the job and reports it; then the cancel goes on. The
    job must end ``cancelled`` and its process must be stopped (on the code before the fix, the start went
    through, the cancel's queued -> cancelled was refused and dropped, and the job ran on as ``running``)."""
    engine = busy_engine
    generation = queued_job(engine, "victim").created
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)  # the process a manager started
    try:
        paused = PausedRead(monkeypatch, engine, "victim", "canceller")
        canceller = threading.Thread(target=engine.cancel, args=(M, "victim"), name="canceller")
        canceller.start()
        assert paused.read.wait(5)
        reported = {}

        def manager_starts():
            reported["started"] = engine.started(M, "victim", pid=process.pid, generation=generation)
            if not reported["started"]:
                os.killpg(process.pid, signal.SIGKILL)  # what a manager does with a job it may not run

        starter = threading.Thread(target=manager_starts)
        starter.start()
        starter.join(0.5)  # the manager's report arrives while the cancel is in the middle of its work
        paused.go.set()
        canceller.join(5)
        starter.join(5)
        record = paused.real_get(M, "victim")
        assert record.state == wire.State.CANCELLED, record
        assert reported == {"started": False}
        assert process.wait(5) == -signal.SIGKILL
        states = [state for state, _, _ in engine.store.transitions(M, "victim")]
        assert states == [wire.SETUP, wire.State.QUEUED, wire.State.CANCELLED]
    finally:
        if process.poll() is None:
            process.kill()


def test_cancel_after_the_start_stops_the_running_job(busy_engine):
    """The other order: the manager's start comes first, then the cancel marks the job and stops it (the
    process is the job's own script: queued_python signals no process that is not)."""
    engine = busy_engine
    generation = queued_job(engine, "victim").created
    script = os.path.join(engine.job_directory(M, "victim").path, "command.sh")
    process = subprocess.Popen(["/bin/bash", script], start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        from pulsar_lite.managers.queued_python import process_matches
        deadline = time.time() + 5
        while not process_matches(process.pid, script):  # exec'd (before, its command line is this test's)
            assert time.time() < deadline
            time.sleep(0.01)
        assert engine.started(M, "victim", pid=process.pid, generation=generation)
        engine.cancel(M, "victim")
        assert engine.store.get(M, "victim").cancel_requested
        assert process.wait(5) == -signal.SIGTERM  # queued_python's kill: the whole process group
        engine.finished(M, "victim", -15, generation=generation)
        assert engine.store.get(M, "victim").state == wire.State.CANCELLED
    finally:
        if process.poll() is None:
            process.kill()


def test_a_late_event_of_an_earlier_run_does_not_move_the_job_set_up_afresh(busy_engine):
    """Cancelled, cleaned and set up again under the same id: the first run's end (its process was still
    being killed) must not finish the new job."""
    engine = busy_engine
    first = queued_job(engine, "reused").created
    engine.cancel(M, "reused")
    engine.clean(M, "reused")
    second = queued_job(engine, "reused").created
    assert second != first
    assert not engine.started(M, "reused", pid=os.getpid(), generation=first)
    engine.finished(M, "reused", 0, generation=first)
    assert not engine.submitted(M, "reused", "12345", generation=first)
    record = engine.store.get(M, "reused")
    assert record.state == wire.State.QUEUED and record.pid is None and record.external_id is None


def test_clean_during_stage_out_wins(engine_factory, monkeypatch):
    """A clean while outputs are being staged: the stage-out's end finds the job gone and records nothing."""
    engine = engine_factory(**ONE_WORKER)
    gate = threading.Event()
    entered = threading.Event()

    def slow_postprocessor(manager, job_dir, record):
        entered.set()
        assert gate.wait(10)

    monkeypatch.setattr(engine, "postprocessor", slow_postprocessor)
    monkeypatch.setattr("pulsar_lite.engine.stagers.PulsarStager.stages_out", staticmethod(lambda record: True))
    engine.setup(M, "out")
    engine.submit(M, "out", {"command_line": "true"})
    assert entered.wait(10)
    engine.clean(M, "out")
    gate.set()
    time.sleep(0.3)
    assert engine.store.get(M, "out") is None


def test_a_refused_transition_is_logged_as_lost_unless_a_user_came_first(engine_factory, caplog):
    engine = engine_factory(**ONE_WORKER)
    engine.setup(M, "j")
    with caplog.at_level("DEBUG", logger="pulsar_lite.engine"):
        assert engine._move(M, "j", wire.State.RUNNING, expect=(wire.State.QUEUED,),
                            settled=engine.SUPERSEDED) is None
        assert not [r for r in caplog.records if r.levelname == "WARNING"]  # set up afresh: superseded
        assert engine._move(M, "j", wire.State.COMPLETE) is None
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "job j" in warning.getMessage() and "complete" in warning.getMessage() and "lost" in warning.getMessage()


def test_a_download_still_running_for_a_cancelled_and_cleaned_job_never_writes_into_another_job(
        engine_factory, tmp_path):
    """A job is cancelled during its stage-in and cleaned at once; the download goes on (it stalls, then
    retries). Its directory must not become the next job's while the transfer may write there (the review
    found the cancelled job's input in the next job's inputs/)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tests.staging.faultserver import FaultServer

    engine = engine_factory(preprocess_action_interval_start=0.2, **ONE_WORKER)
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "in.bin").write_bytes(b"A-private " * 50000)
    with FaultServer(str(origin)) as server:
        server.faults.append(("stall", 1.5))
        engine.setup(M, "A")
        staging = {"setup": [{"name": "in.dat", "type": "input", "action": {
            "action_type": "remote_transfer", "url": server.url + "/in.bin", "path": "/gx/in.dat"}}]}
        engine.submit(M, "A", {"command_line": "true", "remote_staging": staging})
        deadline = time.time() + 10
        while not server.requests:
            assert time.time() < deadline
            time.sleep(0.02)
        time.sleep(0.3)
        engine.cancel(M, "A")
        engine.clean(M, "A")
        engine.setup(M, "B")
        time.sleep(3)
    found = [os.path.join(d, f) for d, _, files in os.walk(engine.job_directory(M, "B").path) for f in files]
    assert found == [], found
