"""OpenPBS / PBS Professional: ``qsub``, ``qstat -x -f -F json <ids>`` (finished jobs too, with the server's
``job_history_enable``), ``qdel``.

Formats from the PBS Professional Reference Guide (qstat: "-F json", "-x"): ``{"Jobs": {"<id>": {"job_state":
…, "Exit_status": …, "Job_Name": …, "qtime": …}}}``; ``job_state`` F is finished (X: finished subjob).
``Exit_status`` is the script's exit code (0-255), 256 + a signal when the job was killed, or a negative
``JOB_EXEC_*`` code when PBS ended it (the limits below). Asking about an id the server no longer knows
prints "qstat: Unknown Job Id <id>" on stderr and the other jobs on stdout.
"""
from __future__ import annotations

import calendar
import json
import re
import time

from ..contract import Observed, SchedulerError
from ..options import Resources, hms
from .plugin import ABSENT, STATUS_COMMAND_BYTES, Found, chunks
from .torque import PHASES, RAN, Torque, ended, owned_by

#: negative Exit_status values (JOB_EXEC_* in PBS's job.h) that name a limit or a failure
EXEC_CODES = {
    -1: "the job could not start (JOB_EXEC_FAIL1)",
    -2: "the job could not start (JOB_EXEC_FAIL2)",
    -3: "the job could not start and was retried (JOB_EXEC_RETRY)",
    -10: "invalid user or group for the job (JOB_EXEC_FAILUID)",
    -11: "the job was rerun (JOB_EXEC_RERUN)",
    -26: "virtual memory limit exceeded (JOB_EXEC_KILL_VMEM)",
    -27: "memory limit exceeded (JOB_EXEC_KILL_MEM)",
    -28: "CPU time limit exceeded (JOB_EXEC_KILL_CPUT)",
    -29: "walltime limit exceeded (JOB_EXEC_KILL_WALLTIME)",
}
#: a job's key in qstat's JSON ("123.server", "123[].server", "123[4].server"), where its record starts
_JOB_KEY = re.compile(r'"(\d[^"\\]*)"\s*:\s*(?=\{)')
_DECODER = json.JSONDecoder(strict=False)  # control characters in strings: PBS does not always escape them
PBS_PHASES = {**PHASES, "B": Observed.RUNNING, "M": Observed.QUEUED, "U": Observed.QUEUED, "X": Observed.ENDED}


class OpenPBS(Torque):
    scheduler = "OpenPBS"

    def resources(self, wanted: Resources) -> list[tuple[str, str | None]]:
        options = []
        if wanted.queue:
            options.append(("-q", wanted.queue))
        chunk = []
        if wanted.cores:
            chunk.append(f"ncpus={wanted.cores}")
        if wanted.memory_mb:
            chunk.append(f"mem={wanted.memory_mb}mb")
        if chunk:
            options.append(("-l", "select=1:" + ":".join(chunk)))
        if wanted.walltime:
            options.append(("-l", f"walltime={hms(wanted.walltime)}"))
        return options

    def status(self, external_ids: list[str]) -> list[str]:
        return ["qstat", "-x", "-f", "-F", "json", *external_ids]

    def status_commands(self, external_ids: list[str], limit: int = STATUS_COMMAND_BYTES) \
            -> list[tuple[list[str], list[str]]]:
        return chunks(self.status, external_ids, limit)  # by id, unlike Torque's

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        if returncode != 0 and not stdout.strip():
            if stderr.strip() and all("Unknown Job Id" in line for line in stderr.strip().splitlines()):
                return {}  # every job asked about is gone
            raise SchedulerError(f"qstat failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        wanted = set(external_ids)
        jobs, unreadable = self.json_jobs(stdout)
        result = {}
        if unreadable is not None:  # not read as a whole: a job it leaves out may be in a garbled record
            result = {job_id: Observed.unreadable(unreadable.get(job_id, ABSENT)) for job_id in wanted}
        for job_id, job in jobs.items():
            if job_id in wanted:
                result[job_id] = self.observed(job) if isinstance(job, dict) else Observed.unreadable(str(job))
        return result

    @staticmethod
    def json_jobs(stdout: str) -> tuple[dict[str, dict], dict[str, str] | None]:
        """The jobs of a ``qstat -F json`` answer; and None when it was read as a whole, else the records
        that could not be read, by job id. SchedulerError when not one record can be read."""
        if not stdout.strip():
            return {}, None
        try:
            jobs = _DECODER.decode(stdout).get("Jobs") or {}
            if isinstance(jobs, dict):
                return jobs, None
            error: Exception = ValueError("'Jobs' is not an object")
        except (ValueError, AttributeError) as exc:
            error = exc
        jobs, unreadable = {}, {}  # a record garbled, or the answer cut short: each job's record on its own
        for match in _JOB_KEY.finditer(stdout):
            try:
                record, _ = _DECODER.raw_decode(stdout, match.end())
            except ValueError:
                record = None
            if isinstance(record, dict):
                jobs[match.group(1)] = record
            else:
                unreadable.setdefault(match.group(1), stdout[match.start():match.start() + 160])
        if not jobs:
            raise SchedulerError(f"qstat -F json printed something that is not JSON: {error}")
        return jobs, unreadable

    def observed(self, job: dict) -> Observed:
        state = str(job.get("job_state", ""))
        phase = PBS_PHASES.get(state)
        if phase is None:  # kept by the scheduler in a state this daemon cannot judge: given up (deleted) at once
            return Observed.held(f"in a state unknown to pulsar_lite ({state!r})", state, wait=False)
        if phase == Observed.HELD:
            return Observed.held(f"held in {self.scheduler} (job_state H, Hold_Types "
                                 f"{job.get('Hold_Types') or '?'})", state)
        if phase != Observed.ENDED:
            return Observed(phase, None, None, state)
        status = job.get("Exit_status")
        if status is None:
            return ended(state, None, self.scheduler, EXEC_CODES)
        try:
            return ended(state, int(status), self.scheduler, EXEC_CODES)
        except (TypeError, ValueError):
            return Observed.unreadable(f"job_state {state} Exit_status {status!r}")

    def find(self, name: str, user: str | None = None) -> list[str]:
        # finished jobs too (job_history_enable); qtime is printed in qstat's local time: made UTC here
        return ["env", "TZ=UTC", "qstat", "-x", "-f", "-F", "json"]

    def parse_found(self, stdout: str, name: str, since: float, user: str | None = None) -> list[Found]:
        found = []
        for job_id, job in self.json_jobs(stdout)[0].items():
            if not isinstance(job, dict):
                if name in str(job):
                    raise SchedulerError(f"OpenPBS's record of a job named {name} cannot be read: {job_id}")
                continue
            if job.get("Job_Name") != name or not owned_by(job.get("Job_Owner"), user):
                continue
            queued_at = utc_time(job.get("qtime"))
            if queued_at is None:
                raise SchedulerError(f"OpenPBS's record of a job named {name} cannot be read: {job_id} qtime "
                                     f"{job.get('qtime')!r}")
            if queued_at >= since:
                found.append(Found(job_id, queued_at, job.get("job_state") in RAN))
        return found


def utc_time(value) -> float | None:
    """A qstat time printed in UTC (``Thu Dec  4 08:00:00 2025``), or epoch seconds."""
    text = str(value if value is not None else "").strip()
    if text.isdigit():
        return float(text)
    try:
        return float(calendar.timegm(time.strptime(text, "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None
