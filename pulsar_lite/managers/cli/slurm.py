"""Slurm: how a job is submitted (``sbatch``), how its state is read (``squeue -t all``, then ``sacct`` once
it has left the controller's memory), how it is deleted (``scancel``).

``squeue -t all`` lists finished jobs too, with their end state, reason and exit status, for as long as the
controller keeps them (``MinJobAge``, 300 s by default): one query answers for every job, running or just
ended. A job missing from it is looked up with ``sacct`` (the accounting database, when slurmdbd runs;
without it ``sacct`` exits 1: "Slurm accounting storage is disabled"). A job missing from both is not
guessed ``complete``: the manager then reads the job's ``return_code`` file, or fails it.
"""
from __future__ import annotations

import re
import time

from ..contract import Observed, SchedulerError
from .plugin import (JobPlugin, Resources, Script, by_job_number, directive_lines,
                     hms, mapped_params, native_lines, read_records, wait_status)

#: squeue/sacct state -> (phase, what a scheduler-side end means; None: the script ran to its end)
STATES = {
    "PENDING": (Observed.QUEUED, None),
    "CONFIGURING": (Observed.QUEUED, None),
    "REQUEUED": (Observed.QUEUED, None),
    "REQUEUE_HOLD": (Observed.HELD, "held in Slurm (REQUEUE_HOLD)"),
    "REQUEUE_FED": (Observed.QUEUED, None),
    "RESV_DEL_HOLD": (Observed.HELD, "held in Slurm (RESV_DEL_HOLD)"),
    "RUNNING": (Observed.RUNNING, None),
    "COMPLETING": (Observed.RUNNING, None),
    "SIGNALING": (Observed.RUNNING, None),
    "STAGE_OUT": (Observed.RUNNING, None),
    "RESIZING": (Observed.RUNNING, None),
    "SUSPENDED": (Observed.RUNNING, None),
    "STOPPED": (Observed.RUNNING, None),
    "COMPLETED": (Observed.ENDED, None),
    "FAILED": (Observed.ENDED, None),  # NonZeroExitCode is the script's own end; other reasons are not
    "CANCELLED": (Observed.ENDED, "cancelled in Slurm (scancel)"),
    "TIMEOUT": (Observed.ENDED, "time limit reached (TIMEOUT)"),
    "OUT_OF_MEMORY": (Observed.ENDED, "out of memory (OUT_OF_MEMORY)"),
    "NODE_FAIL": (Observed.ENDED, "its node failed (NODE_FAIL)"),
    "PREEMPTED": (Observed.ENDED, "preempted (PREEMPTED)"),
    "BOOT_FAIL": (Observed.ENDED, "its node failed to boot (BOOT_FAIL)"),
    "DEADLINE": (Observed.ENDED, "its deadline passed (DEADLINE)"),
    "SPECIAL_EXIT": (Observed.HELD, "held in Slurm after a special exit (SPECIAL_EXIT)"),
    "REVOKED": (Observed.ENDED, "revoked (REVOKED)"),
}
#: Pulsar's job_* keys for sbatch (others are given as job_-x / job_--long)
ARGMAP = {"time": "-t", "ncpus": "-c", "partition": "-p"}
STATUS_FORMAT = "JobID:|,State:|,exit_code:|,Reason:|"  # the reason last: it may hold spaces
HISTORY_FIELDS = "JobID,State,ExitCode,Reason"
#: what a state looks like (sacct: "CANCELLED by 1000"); anything else is a record cut short or garbled
_STATE = re.compile(r"^[A-Z][A-Z_]*(?: by \d+)?$")
#: what a job id looks like (123, and 123_4 / 123+1 for array and heterogeneous jobs)
_JOB_ID = re.compile(r"^\d+(?:[_+][\w\[\]\-,.]*)?$")


#: a pending job's reasons that mean nobody will run it until it is released (scontrol hold / release)
HELD_REASONS = ("JobHeldAdmin", "JobHeldUser", "job requeued in held state")


def observed(state: str, exit_status: int | None, reason: str) -> Observed:
    """What a Slurm state means here; ``exit_status`` is a wait status (squeue) or an exit code (sacct)."""
    state = state.split()[0] if state else ""  # sacct: "CANCELLED by 0"
    if state not in STATES:  # kept by Slurm, in a state this daemon cannot judge: given up (and deleted) at once
        return Observed.held(f"in a state unknown to pulsar_lite ({state!r})", state, wait=False)
    phase, failure = STATES[state]
    if phase == Observed.HELD:
        return Observed.held(failure, state)
    if state == "PENDING" and reason in HELD_REASONS:
        return Observed.held(f"held in Slurm ({reason})", state)
    if state == "FAILED" and reason not in ("NonZeroExitCode", "None", ""):
        failure = f"failed in Slurm ({reason})"
    return Observed(phase, exit_status, failure, state)


def _ends(state: str) -> bool:
    return STATES.get(state.split()[0], (Observed.HELD, None))[0] == Observed.ENDED


def with_signal(seen: Observed, signal: int | None) -> Observed:
    """A job ended by a signal has no exit code of its own: -signal, as for a killed local job."""
    if not signal or seen.phase != Observed.ENDED:
        return seen
    return Observed(seen.phase, -signal, seen.failure or f"killed by signal {signal} ({seen.state})", seen.state)


class Slurm(JobPlugin):
    scheduler = "Slurm"
    directive = "#SBATCH"

    def __init__(self, params: dict | None = None):
        self.params = params or {}

    def headers(self, script: Script) -> list[str]:
        options: list[tuple[str, str | None]] = [("-J", script.name), ("-o", script.stdout), ("-e", script.stderr)]
        options += mapped_params(self.params, ARGMAP, self.scheduler)
        lines = directive_lines(self.directive, options) + native_lines(self.directive, script)
        wanted = Resources.from_params(script.submit_params)
        resources = []
        if wanted.queue:
            resources.append(("-p", wanted.queue))
        if wanted.cores:
            resources.append(("-c", str(wanted.cores)))
        if wanted.memory_mb:
            resources.append(("--mem", f"{wanted.memory_mb}M"))
        if wanted.walltime:
            resources.append(("-t", hms(wanted.walltime)))
        return lines + directive_lines(self.directive, resources)

    #: sbatch sent the job, and the controller's answer did not come back (it may have taken the job)
    SUBMIT_OUTCOME_UNKNOWN = ("Socket timed out on send/recv operation", "Zero Bytes were transmitted or received")

    #: sbatch could not connect to slurmctld (down, restarting, failing over): it sent nothing
    SCHEDULER_DOWN = ("Unable to contact slurm controller",)

    def submit(self, script_path: str) -> list[str]:
        return ["sbatch", "--parsable", script_path]

    def parse_submit(self, stdout: str) -> str:
        # --parsable: "<id>" or "<id>;<cluster>"
        text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        external_id = text.split(";")[0].strip()
        if not external_id.isdigit():
            raise SchedulerError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
        return external_id

    def status(self, external_ids: list[str]) -> list[str]:
        return ["squeue", "-h", "-t", "all", "-j", ",".join(external_ids), "-O", STATUS_FORMAT]

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        if returncode != 0:
            if "Invalid job id" in stderr:  # every job asked about has left the controller's memory
                return {}
            raise SchedulerError(f"squeue failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        return read_records(stdout, set(external_ids), self._squeue_record, self.scheduler, 4, _JOB_ID)

    @staticmethod
    def _squeue_record(fields: list[str]) -> Observed | None:
        """``JobID|State|exit_code|Reason|``: exit_code is a wait status. None when it cannot be read."""
        _, state, status, reason = fields
        if not _STATE.match(state):
            return None
        try:
            code, signal = wait_status(int(status))
        except ValueError:
            if _ends(state):
                return None  # an end without its exit status: not to be concluded from
            code, signal = None, None
        return with_signal(observed(state, code, reason.rstrip("|").strip()), signal)

    def history(self, external_ids: list[str]) -> list[str] | None:
        return ["sacct", "-n", "-P", "-X", "-j", ",".join(external_ids), "-o", HISTORY_FIELDS]

    def parse_history(self, returncode: int, stdout: str, stderr: str) -> dict[str, Observed]:
        if returncode != 0:
            if "accounting storage is disabled" in (stderr + stdout):
                return {}  # no slurmdbd: Slurm keeps no record of finished jobs
            raise SchedulerError(f"sacct failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        return read_records(stdout, None, self._sacct_record, self.scheduler, 4, _JOB_ID)

    @staticmethod
    def _sacct_record(fields: list[str]) -> Observed | None:
        """``JobID|State|ExitCode|Reason``: ExitCode is ``code:signal``. None when it cannot be read."""
        _, state, exit_code, reason = fields
        if not _STATE.match(state):
            return None
        code_text, colon, signal_text = exit_code.partition(":")
        if not (code_text.isdigit() and colon and signal_text.isdigit()):
            if _ends(state):
                return None
            code_text = signal_text = ""
        code = int(code_text) if code_text else None
        signal = int(signal_text) if signal_text else None
        return with_signal(observed(state, code, reason), signal)

    def delete(self, external_id: str) -> list[str]:
        return ["scancel", external_id]

    def find(self, name: str) -> list[str]:
        return ["squeue", "-h", "-t", "all", "-n", name, "-O", "JobID:|,SubmitTime:|,Name:|"]

    def parse_find(self, stdout: str, name: str, since: float) -> list[str]:
        found = []
        for line in stdout.splitlines():
            fields = line.split("|")
            if len(fields) < 3 or fields[2].strip() != name:
                continue
            try:
                submitted = time.mktime(time.strptime(fields[1].strip(), "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                continue
            if submitted >= int(since):
                found.append(fields[0].strip())
        return by_job_number(found)
