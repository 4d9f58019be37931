"""An ended job's outcome is read, not guessed: the scheduler says a job has ended before its return_code file
is visible here (NFS caches attributes and "no such file" answers, up to 60 s by default). The file is waited
for (return_code_grace), then the scheduler's own exit code decides where it has one. Before the change each
of these jobs was failed at once ("left no exit code"). The same on a real Slurm: tests/integration/
test_slurm_bad_day.py."""
from __future__ import annotations

import threading
import time

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.contract import Observed
from tests.managers.test_scheduler import final, memory_engine, submit, write_return_code

M = wire.DEFAULT_MANAGER
GRACE = 3.0


@pytest.fixture
def engine(engine_factory, monkeypatch):
    return memory_engine(engine_factory, monkeypatch, return_code_grace=GRACE)


def ended_later(engine, job_id, seen, file_after=None, code=0):
    """The scheduler says the job ended now; its return_code file shows ``file_after`` seconds later."""
    scheduler = engine.managers[M]
    external_id = submit(engine, job_id)
    if file_after is not None:
        threading.Timer(file_after, write_return_code, (engine, job_id, code)).start()
    scheduler.set(external_id, seen)
    return time.monotonic()


def test_a_return_code_that_shows_a_second_after_the_end_decides(engine):
    began = ended_later(engine, "late", Observed(Observed.ENDED, None, None, "C"), file_after=1.0, code=0)
    time.sleep(0.5)
    assert not engine.store.get(M, "late").terminal  # the end is known; its exit code not yet
    record = final(engine, "late")
    assert record.state == wire.State.COMPLETE and record.returncode == 0
    assert 0.9 <= time.monotonic() - began < GRACE


def test_the_file_decides_over_the_schedulers_code_when_it_shows(engine):
    ended_later(engine, "three", Observed(Observed.ENDED, 0, None, "COMPLETED"), file_after=1.0, code=3)
    record = final(engine, "three")
    assert record.state == wire.State.COMPLETE and record.returncode == 3


def test_slurm_completed_0_0_without_the_file_is_complete_with_0_after_the_grace(engine):
    began = ended_later(engine, "nfs", Observed(Observed.ENDED, 0, None, "COMPLETED"))
    time.sleep(GRACE / 2)
    assert not engine.store.get(M, "nfs").terminal
    record = final(engine, "nfs")
    assert record.state == wire.State.COMPLETE and record.returncode == 0
    assert time.monotonic() - began >= GRACE


def test_an_end_without_any_exit_code_is_failed_only_after_the_grace(engine):
    began = ended_later(engine, "none", Observed(Observed.ENDED, None, None, "C"))
    time.sleep(GRACE / 2)
    assert not engine.store.get(M, "none").terminal
    record = final(engine, "none")
    assert record.state == wire.State.FAILED and "left no exit code" in record.message
    assert time.monotonic() - began >= GRACE


def test_a_job_the_scheduler_forgot_gets_the_grace_too(engine):
    """Gone from the queue and from the scheduler's history: its file may still be on its way."""
    ended_later(engine, "forgotten", None, file_after=1.0, code=0)
    record = final(engine, "forgotten")
    assert record.state == wire.State.COMPLETE and record.returncode == 0


def test_what_the_scheduler_said_of_the_end_is_kept_when_it_forgets_the_job_during_the_grace(engine):
    """Grid Engine's DRMAA reaps an ended job: the next polls no longer find it. The failure says how it ended,
    not only that the scheduler forgot it (found by test_drmaa's job removed before it ran)."""
    began = ended_later(engine, "reaped", Observed(Observed.ENDED, None, None, "no usage record"))
    time.sleep(0.3)
    engine.managers[M].set(engine.store.get(M, "reaped").external_id, None)
    time.sleep(GRACE / 2)
    assert not engine.store.get(M, "reaped").terminal
    record = final(engine, "reaped")
    assert record.state == wire.State.FAILED and "ended (no usage record)" in record.message, record.message
    assert time.monotonic() - began >= GRACE
