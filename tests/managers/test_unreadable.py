"""The scheduler base and a job whose record could not be read this round (Observed.UNKNOWN): nothing is
concluded from it, neither an end nor a disappearance (tests/managers/cli/test_status_scale.py has the
plugins that report it and the bound on how long a job may wait on it)."""
from __future__ import annotations

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.contract import Observed
from tests.managers.test_scheduler import M, final, memory_engine, submit, wait_for


@pytest.fixture
def engine(engine_factory, monkeypatch):
    return memory_engine(engine_factory, monkeypatch)


def test_an_unreadable_record_is_neither_an_end_nor_a_disappearance(engine):
    scheduler = engine.managers[M]
    external_id = submit(engine, "garbled")
    scheduler.set(external_id, Observed(Observed.RUNNING, state="R"))
    wait_for(lambda: engine.store.get(M, "garbled").state == wire.State.RUNNING)
    scheduler.set(external_id, Observed.unreadable("42|RUNN\ufffdNG|0|None|"))
    before = scheduler.calls.count("query")
    wait_for(lambda: scheduler.calls.count("query") >= before + 10)  # ten rounds and more
    assert engine.store.get(M, "garbled").state == wire.State.RUNNING
    assert "history" not in scheduler.calls  # listed: not looked for in the record of finished jobs
    scheduler.set(external_id, Observed(Observed.ENDED, 0, None, "CD"))
    with open(engine.job_directory(M, "garbled").sub("return_code"), "w") as handle:
        handle.write("0\n")
    record = final(engine, "garbled")
    assert record.state == wire.State.COMPLETE and record.returncode == 0
