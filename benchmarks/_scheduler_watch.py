"""When a scheduler itself says each job has ended, watched from outside both daemons.

A thread lists the scheduler's active jobs every ``PERIOD`` seconds (Slurm: ``squeue``; Grid Engine:
``qstat``; HTCondor: ``condor_q``) and takes a job's end as the midpoint between the last listing that
showed it active and the first that did not (within +-PERIOD/2 of the truth). The benchmark's jobs write
their scheduler id beside their end time (``ID_EXPRESSION``), which ties the two together whatever job
names each daemon gives. The listing goes straight to the scheduler, past the daemons' logging wrappers,
so it is not counted as either daemon's query.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

PERIOD = 0.2
#: shell expression, evaluated in the job, for the job's id in its scheduler (no braces: str.format)
ID_EXPRESSION = {
    "slurm": "$SLURM_JOB_ID",
    "drmaa": "$JOB_ID",
    "condor": "$(sed -n 's/^ClusterId = //p' \"$_CONDOR_JOB_AD\")",
}
SLURM_ACTIVE = {"PD", "R", "CG", "CF", "S", "RQ", "RS", "RH", "SI", "SO", "ST"}
CONDOR_ACTIVE = {"1", "2", "5", "6", "7"}  # idle, running, held, transferring output, suspended


def _active(scheduler: str, env: dict) -> set[str]:
    if scheduler == "slurm":
        out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %t"], capture_output=True, text=True,
                             check=True).stdout
        return {f[0] for f in (line.split() for line in out.splitlines()) if len(f) == 2 and f[1] in SLURM_ACTIVE}
    if scheduler == "drmaa":
        out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, check=True, env=env).stdout
        return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    out = subprocess.run(["condor_q", "-allusers", "-af", "ClusterId", "JobStatus"], capture_output=True, text=True,
                         check=True, env=env).stdout
    return {f[0] for f in (line.split() for line in out.splitlines()) if len(f) == 2 and f[1] in CONDOR_ACTIVE}


class EndWatch:
    def __init__(self, scheduler: str, env: dict):
        self.scheduler = scheduler
        self.env = {**os.environ, **env}
        self.ended: dict[str, float] = {}
        self.errors = 0
        self._last_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "EndWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            try:
                active = _active(self.scheduler, self.env)
            except (OSError, subprocess.CalledProcessError):
                self.errors += 1
                active = None
            if active is not None:
                for job in active:
                    self._last_seen[job] = started
                for job, seen in self._last_seen.items():
                    if job not in active and job not in self.ended:
                        self.ended[job] = (seen + started) / 2
            self._stop.wait(max(0.0, PERIOD - (time.time() - started)))
