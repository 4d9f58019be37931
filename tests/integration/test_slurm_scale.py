"""queued_cli's status queries on a real Slurm with a few hundred held jobs: asked about in one squeue of the
user's jobs, or by id in several squeue commands of one round (status_command_bytes made small so that 300 ids
need several), every job read; a record garbled on its way (a squeue wrapper spoils one line) concerns that
job alone."""
from __future__ import annotations

import os
import subprocess

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.contract import Observed
from tests.conftest import need

from .schedulers import slurm_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "pulsar_lite_scale_test"
COUNT = 300


@pytest.fixture(scope="module")
def held_jobs():
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
    done = subprocess.run(["bash", "-c", f"for i in $(seq {COUNT}); do sbatch --hold --parsable -J {NAME} "
                                         f"-o /dev/null --wrap true || exit 1; done"],
                          capture_output=True, text=True, timeout=120, cwd="/tmp")
    ids = done.stdout.split()
    try:
        assert done.returncode == 0 and len(ids) == COUNT, done.stderr[-2000:]
        yield ids
    finally:
        subprocess.run(["scancel", "-n", NAME], timeout=60)


@pytest.fixture
def manager(engine_factory):
    engine = engine_factory(managers={wire.DEFAULT_MANAGER: {"type": "queued_cli", "job_plugin": "Slurm",
                                                             "status_command_bytes": 600}})
    return engine.managers[wire.DEFAULT_MANAGER]


def counting_squeue(tmp_path, monkeypatch, spoil: str | None = None):
    """A squeue in front of the real one that counts its calls and, for ``spoil``, garbles that job's line."""
    real = subprocess.run(["bash", "-c", "command -v squeue"], capture_output=True, text=True).stdout.strip()
    calls = tmp_path / "calls"
    wrapper = tmp_path / "bin" / "squeue"
    wrapper.parent.mkdir()
    edit = f" | sed 's/^{spoil}|PENDING|/{spoil}|PEND\\xef\\xbf\\xbdNG|/'" if spoil else ""
    wrapper.write_text(f"#!/bin/bash\necho x >> {calls}\nset -o pipefail\n{real} \"$@\"{edit}\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    return calls


def test_hundreds_of_held_jobs_in_several_commands_of_one_round(held_jobs, manager, tmp_path, monkeypatch):
    """By id (when the submitting user cannot be told, or few jobs are followed): several commands a round."""
    monkeypatch.setattr(type(manager.plugin), "USER_WIDE", 10_000)
    calls = counting_squeue(tmp_path, monkeypatch)
    expected = len(manager.plugin.status_commands(held_jobs, 600))
    assert expected >= 3
    seen = manager.query(held_jobs)
    assert len(calls.read_text().split()) == expected
    assert set(seen) == set(held_jobs)
    assert {(s.phase, s.state) for s in seen.values()} == {(Observed.HELD, "PENDING")}


def test_one_garbled_record_concerns_its_job_alone(held_jobs, manager, tmp_path, monkeypatch):
    spoiled = held_jobs[123]
    counting_squeue(tmp_path, monkeypatch, spoil=spoiled)
    seen = manager.query(held_jobs)
    assert seen[spoiled].phase == Observed.UNKNOWN
    assert {(s.phase, s.state) for i, s in seen.items() if i != spoiled} == {(Observed.HELD, "PENDING")}
    assert len(seen) == COUNT


def test_hundreds_of_jobs_in_one_squeue_of_the_users_jobs(held_jobs, manager, tmp_path, monkeypatch):
    """Past USER_WIDE jobs: one squeue listing every job of the user (cheaper than a long -j list), the other
    jobs it lists passed over; every job asked about read."""
    calls = counting_squeue(tmp_path, monkeypatch)
    other = subprocess.run(["sbatch", "--hold", "--parsable", "-J", "not_followed", "-o", "/dev/null", "--wrap", "true"],
                           capture_output=True, text=True, cwd="/tmp").stdout.strip()
    try:
        seen = manager.query(held_jobs)
    finally:
        subprocess.run(["scancel", other])
    assert len(calls.read_text().split()) == 1
    assert set(seen) == set(held_jobs) and other not in seen
    assert {(s.phase, s.state) for s in seen.values()} == {(Observed.HELD, "PENDING")}
