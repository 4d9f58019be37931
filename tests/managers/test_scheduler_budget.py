"""A status round that takes long (thousands of jobs in the scheduler) pushes the next one back, so that the
status loop and the scheduler's status commands keep to status_time_budget of the time. Before, the loop ran
a 0.9 s squeue for 10,000 Slurm jobs every 2 s (44 % of one CPU: benchmarks/scheduler_scale.py)."""
from __future__ import annotations

import time

from pulsar_lite.managers.contract import Observed
from pulsar_lite.managers import scheduler as scheduler_module
from tests.managers.test_scheduler import M, memory_engine, submit


class SlowQuery:
    def __init__(self, scheduler, seconds):
        self.scheduler, self.seconds, self.query = scheduler, seconds, scheduler.query

    def __call__(self, external_ids):
        time.sleep(self.seconds)
        return self.query(external_ids)


def rounds_in(engine, seconds: float) -> int:
    scheduler = engine.managers[M]
    before = scheduler.calls.count("query")
    time.sleep(seconds)
    return scheduler.calls.count("query") - before


def test_slow_rounds_are_spaced_to_the_budget(engine_factory, monkeypatch):
    monkeypatch.setattr(scheduler_module, "BUDGET_FROM_JOBS", 1)  # as if it followed a big site's jobs
    engine = memory_engine(engine_factory, monkeypatch, status_time_budget=0.1)
    scheduler = engine.managers[M]
    external_id = submit(engine, "many")
    scheduler.set(external_id, Observed(Observed.QUEUED, state="PD"))
    scheduler.query = SlowQuery(scheduler, 0.1)  # 0.1 s a round: one round a second at most
    time.sleep(1.2)
    assert rounds_in(engine, 3.0) <= 4  # at 0.05 s apart there would be 20


def test_quick_rounds_keep_the_polling_interval(engine_factory, monkeypatch):
    engine = memory_engine(engine_factory, monkeypatch, status_time_budget=0.1)
    scheduler = engine.managers[M]
    external_id = submit(engine, "few")
    scheduler.set(external_id, Observed(Observed.QUEUED, state="PD"))
    assert rounds_in(engine, 1.0) >= 10  # min_polling_interval 0.05 s; each round well under the budget


def test_slow_rounds_for_a_few_jobs_keep_the_polling_interval(engine_factory, monkeypatch):
    """A slow scheduler (a big cluster's squeue) with a handful of this daemon's jobs: asked at every interval,
    so a short job's start and end are seen (the kill -9 test on Slurm missed a 2 s job's 'running')."""
    engine = memory_engine(engine_factory, monkeypatch, status_time_budget=0.1)
    scheduler = engine.managers[M]
    external_id = submit(engine, "few-slow")
    scheduler.set(external_id, Observed(Observed.QUEUED, state="PD"))
    scheduler.query = SlowQuery(scheduler, 0.1)
    time.sleep(0.5)
    assert rounds_in(engine, 3.0) >= 15  # one round after the other (each over the 0.05 s interval): about 30
