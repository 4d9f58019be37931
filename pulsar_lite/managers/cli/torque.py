"""Torque (PBS): ``qsub``, ``qstat -x`` (every job as XML, finished ones too while the server keeps them:
``keep_completed``), ``qdel``.

Formats from Torque's documentation (qstat(1B), "qstat -x: XML output"): ``<Data><Job><Job_Id>…`` with
``job_state`` (Q queued, H held, W waiting, T moving, R running, E exiting, S suspended, C completed) and,
once completed, ``exit_status``: the script's exit code (0-255), 256 + a signal when the job was killed
(``qdel``, a limit), or a negative Torque code when it could not run at all.
"""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from ..contract import Observed, SchedulerError
from .plugin import (JobPlugin, Resources, Script, by_job_number, directive_lines,
                     hms, mapped_params, native_lines)

#: Pulsar's job_* keys for qsub (pbs_job attribute names -> option)
ARGMAP = {
    "destination": "-q", "Execution_Time": "-a", "Account_Name": "-A", "Checkpoint": "-c", "Error_Path": "-e",
    "Group_List": "-g", "Hold_Types": "-h", "Join_Paths": "-j", "Keep_Files": "-k", "Resource_List": "-l",
    "Mail_Points": "-m", "Mail_Users": "-M", "Job_Name": "-N", "Output_Path": "-o", "Priority": "-p",
    "Rerunable": "-r", "Shell_Path_List": "-S", "job_array_request": "-t", "User_List": "-u",
    "Variable_List": "-v",
}
PHASES = {"Q": Observed.QUEUED, "H": Observed.QUEUED, "W": Observed.QUEUED, "T": Observed.QUEUED,
          "R": Observed.RUNNING, "E": Observed.RUNNING, "S": Observed.RUNNING,
          "C": Observed.ENDED, "F": Observed.ENDED}


def ended(state: str, exit_status: int | None, scheduler: str, codes: dict[int, str] | None = None) -> Observed:
    """A finished PBS job: its script's exit code, or why the scheduler ended it."""
    if exit_status is None:
        return Observed(Observed.ENDED, None, None, state)
    if 0 <= exit_status <= 255:
        return Observed(Observed.ENDED, exit_status, None, state)
    if exit_status > 256:
        return Observed(Observed.ENDED, None, f"killed by signal {exit_status - 256} (qdel, or a resource limit)", state)
    known = (codes or {}).get(exit_status)
    return Observed(Observed.ENDED, None, f"{scheduler} could not run or finish the job"
                                          f"{': ' + known if known else ''} (exit_status {exit_status})", state)


class Torque(JobPlugin):
    scheduler = "Torque"
    directive = "#PBS"

    def __init__(self, params: dict | None = None):
        self.params = params or {}

    def headers(self, script: Script) -> list[str]:
        options: list[tuple[str, str | None]] = [("-N", script.name), ("-o", script.stdout), ("-e", script.stderr)]
        options += mapped_params(self.params, ARGMAP, self.scheduler)
        lines = directive_lines(self.directive, options) + native_lines(self.directive, script)
        return lines + directive_lines(self.directive, self.resources(Resources.from_params(script.submit_params)))

    def resources(self, wanted: Resources) -> list[tuple[str, str | None]]:
        options = []
        if wanted.queue:
            options.append(("-q", wanted.queue))
        if wanted.cores:
            options.append(("-l", f"nodes=1:ppn={wanted.cores}"))
        if wanted.memory_mb:
            options.append(("-l", f"mem={wanted.memory_mb}mb"))
        if wanted.walltime:
            options.append(("-l", f"walltime={hms(wanted.walltime)}"))
        return options

    def submit(self, script_path: str) -> list[str]:
        return ["qsub", script_path]

    def parse_submit(self, stdout: str) -> str:
        external_id = stdout.strip().splitlines()[-1].strip() if stdout.strip() else ""
        if not external_id or " " in external_id:
            raise SchedulerError(f"qsub printed no job id: {stdout.strip()[:200]!r}")
        return external_id

    def status(self, external_ids: list[str]) -> list[str]:
        return ["qstat", "-x"]  # every job in one answer (asking by id fails the whole call on a purged id)

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        if returncode != 0:
            raise SchedulerError(f"qstat failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        wanted = set(external_ids)
        return {job["Job_Id"]: self.observed(job) for job in self.jobs(stdout) if job.get("Job_Id") in wanted}

    @staticmethod
    def jobs(stdout: str) -> list[dict[str, str]]:
        if not stdout.strip():
            return []  # no jobs at all: qstat -x prints nothing
        try:
            root = ElementTree.fromstring(stdout.strip())
        except ElementTree.ParseError as exc:
            raise SchedulerError(f"qstat -x printed something that is not XML: {exc}") from None
        return [{child.tag: (child.text or "").strip() for child in job} for job in root.iter("Job")]

    def observed(self, job: dict[str, str]) -> Observed:
        state = job.get("job_state", "")
        phase = PHASES.get(state)
        if phase is None:
            return Observed(Observed.ENDED, None, f"unknown {self.scheduler} job state {state!r}", state)
        if phase != Observed.ENDED:
            return Observed(phase, None, None, state)
        status = job.get("exit_status")
        return ended(state, int(status) if status not in (None, "") else None, self.scheduler)

    def delete(self, external_id: str) -> list[str]:
        return ["qdel", external_id]

    def delete_succeeded(self, returncode: int, stdout: str, stderr: str) -> bool:
        text = stdout + stderr
        return returncode == 0 or "Unknown Job Id" in text or "has finished" in text or "completed" in text

    def find(self, name: str) -> list[str]:
        return ["qstat", "-x"]

    def parse_find(self, stdout: str, name: str, since: float) -> list[str]:
        found = []
        for job in self.jobs(stdout):
            if job.get("Job_Name") != name:
                continue
            queued_at = job.get("qtime") or job.get("ctime") or ""
            if queued_at.isdigit() and int(queued_at) < int(since):
                continue
            found.append(job["Job_Id"])
        return by_job_number(found)
