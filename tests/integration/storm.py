"""Checks shared by the cancel-storm tests: what must hold of a daemon's store and processes afterwards."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pulsar_lite import wire


def job_processes(staging: Path) -> dict[int, str]:
    """pid -> command line of every live process running a job script under ``staging``."""
    marker = str(staging).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and b"command.sh" in cmdline and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_no_job_processes(staging: Path, timeout: float = 20) -> dict[int, str]:
    deadline = time.time() + timeout
    left = job_processes(staging)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = job_processes(staging)
    return left


def store_rows(persisted: Path) -> tuple[dict[str, tuple], dict[str, list[tuple[str, float]]]]:
    """(job id -> (state, cancel_requested), job id -> [(state, ts), ...]) read from the daemon's database."""
    path = persisted / "pulsar_lite.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        jobs = {row[0]: (row[1], row[2]) for row in db.execute("SELECT job_id, state, cancel_requested FROM jobs")}
        history: dict[str, list[tuple[str, float]]] = {}
        for job_id, state, ts in db.execute("SELECT job_id, state, ts FROM transitions ORDER BY id"):
            history.setdefault(job_id, []).append((state, ts))
    return jobs, history


def illegal_paths(history: dict[str, list[tuple[str, float]]]) -> dict[str, list[str]]:
    """Jobs whose recorded transitions are not a path of the lifecycle from ``setup`` to an end."""
    bad = {}
    for job_id, steps in history.items():
        states = [state for state, _ in steps]
        legal = states[0] == wire.SETUP and states[-1] in wire.TERMINAL_STATES and all(
            after in wire.TRANSITIONS.get(before, set()) for before, after in zip(states, states[1:]))
        if not legal:
            bad[job_id] = states
    return bad


def finished_after_cancel(history: dict[str, list[tuple[str, float]]], cancel_answered: dict[str, float],
                          final_state: str) -> dict[str, list[str]]:
    """Jobs that ended ``final_state`` (not cancelled) though their end was recorded after a cancel had been
    answered: that cancel was lost. (An end recorded before the cancel read the job is legitimate.)"""
    lost = {}
    for job_id, answered in cancel_answered.items():
        steps = history.get(job_id, [])
        if not steps or steps[-1][0] != final_state:
            continue
        ended = next(ts for state, ts in steps if state in (wire.State.POSTPROCESSING, final_state))
        if ended > answered:
            lost[job_id] = [f"{state}@{ts:.3f}" for state, ts in steps] + [f"cancel answered@{answered:.3f}"]
    return lost
