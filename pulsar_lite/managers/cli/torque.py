"""Torque (PBS): ``qsub``, ``qstat -x`` (every job as XML, finished ones too while the server keeps them:
``keep_completed``), ``qdel``.

Formats from Torque's documentation (qstat(1B), "qstat -x: XML output"): ``<Data><Job><Job_Id>…`` with
``job_state`` (Q queued, H held, W waiting, T moving, R running, E exiting, S suspended, C completed) and,
once completed, ``exit_status``: the script's exit code (0-255), 256 + a signal when the job was killed
(``qdel``, a limit), or a negative Torque code when it could not run at all.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from ..contract import Observed, SchedulerError
from ..options import Dialect, Resources, hms
from .plugin import ABSENT, Found, JobPlugin, Script, unattributed

#: Pulsar's job_* keys for qsub (pbs_job attribute names -> option)
ARGMAP = {
    "destination": "-q", "Execution_Time": "-a", "Account_Name": "-A", "Checkpoint": "-c", "Error_Path": "-e",
    "Group_List": "-g", "Hold_Types": "-h", "Join_Paths": "-j", "Keep_Files": "-k", "Resource_List": "-l",
    "Mail_Points": "-m", "Mail_Users": "-M", "Job_Name": "-N", "Output_Path": "-o", "Priority": "-p",
    "Rerunable": "-r", "Shell_Path_List": "-S", "job_array_request": "-t", "User_List": "-u",
    "Variable_List": "-v",
}
#: qsub's options as this daemon reads them (``-l`` settings one by one: the manager's walltime is not the
#: client's mem)
DIALECT = Dialect("PBS", flags=frozenset({"-V", "-h", "-I", "-X", "-f", "-z", "-x"}), attached=True,
                  listed=frozenset({"-l", "-W"}),
                  daemon=frozenset({
                      "-N", "-o", "-e", "-j", "-k", "-d", "-w", "-D",  # its name, streams and directory
                      "-S", "-C", "-F", "-u", "-t", "-J",  # what runs, as whom, once (-t/-J: arrays)
                      "-I", "-X", "-f", "-x", "-z",  # interactive jobs, and a qsub that prints no job id
                      "-W block", "-W sandbox", "-W stagein", "-W stageout"}))  # a qsub that waits, files it moves
#: what a client may ask for when the manager does not say: resources (never queue or account)
CLIENT_OPTIONS = ("-l walltime", "-l mem", "-l pmem", "-l vmem", "-l nodes", "-l ncpus", "-l select")
_JOB = re.compile(r"<Job>.*?(?:</Job>|(?=<Job>)|$)", re.S)
_JOB_ID = re.compile(r"<Job_Id>\s*([^<\s]+)\s*</Job_Id>")
PHASES = {"Q": Observed.QUEUED, "H": Observed.HELD, "W": Observed.QUEUED, "T": Observed.QUEUED,
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
    #: qsub could not connect to pbs_server: it sent nothing
    SCHEDULER_DOWN = ("Cannot connect to default server host", "cannot connect to server",
                      "Connection refused")

    dialect = DIALECT
    argmap = ARGMAP
    default_options = CLIENT_OPTIONS

    def own_options(self, script: Script) -> list[tuple[str, str]]:
        return [("-N", script.name), ("-o", script.stdout), ("-e", script.stderr)]

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

    def status_commands(self, external_ids: list[str], limit: int = 0) -> list[tuple[list[str], list[str]]]:
        return [(self.status(external_ids), external_ids)] if external_ids else []  # names no id: one is enough

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        if returncode != 0:
            raise SchedulerError(f"qstat failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        wanted = set(external_ids)
        jobs, unreadable = self.jobs(stdout)
        result = {}
        if unreadable is not None:  # not read as a whole: a job it leaves out may be in a garbled record
            result = {job_id: Observed.unreadable(unreadable.get(job_id, ABSENT)) for job_id in wanted}
        for job in jobs:
            if job.get("Job_Id") in wanted:
                result[job["Job_Id"]] = self.observed(job)
        return result

    @classmethod
    def jobs(cls, stdout: str) -> tuple[list[dict[str, str]], dict[str, str] | None]:
        """The jobs ``qstat -x`` lists; and None when the answer was read as a whole, else the records that
        could not be read, by job id. SchedulerError when not one record can be read."""
        text = stdout.strip()
        if not text:
            return [], None  # no jobs at all: qstat -x prints nothing
        try:
            return [cls._fields(job) for job in ElementTree.fromstring(text).iter("Job")], None
        except ElementTree.ParseError as exc:
            error = exc
        jobs, unreadable = [], {}  # a record garbled, or the answer cut short: each <Job> on its own
        for match in _JOB.finditer(text):
            record = match.group(0)
            try:
                jobs.append(cls._fields(ElementTree.fromstring(record)))
                continue
            except ElementTree.ParseError:
                pass
            job_id = _JOB_ID.search(record)
            if job_id:
                unreadable[job_id.group(1)] = record
            else:
                unattributed(cls.scheduler, record)
        if not jobs:
            raise SchedulerError(f"qstat -x printed something that is not XML: {error}")
        return jobs, unreadable

    @staticmethod
    def _fields(job) -> dict[str, str]:
        return {child.tag: (child.text or "").strip() for child in job}

    def observed(self, job: dict[str, str]) -> Observed:
        state = job.get("job_state", "")
        phase = PHASES.get(state)
        if phase is None:  # kept by the scheduler in a state this daemon cannot judge: given up (deleted) at once
            return Observed.held(f"in a state unknown to pulsar_lite ({state!r})", state, wait=False)
        if phase == Observed.HELD:
            return Observed.held(f"held in {self.scheduler} (job_state H, Hold_Types "
                                 f"{job.get('Hold_Types') or '?'})", state)
        if phase != Observed.ENDED:
            return Observed(phase, None, None, state)
        status = job.get("exit_status")
        if status in (None, ""):
            return ended(state, None, self.scheduler)
        if not status.lstrip("-").isdigit():
            return Observed.unreadable(f"{job.get('Job_Id')} job_state {state} exit_status {status}")
        return ended(state, int(status), self.scheduler)

    def delete(self, external_id: str) -> list[str]:
        return ["qdel", external_id]

    def delete_succeeded(self, returncode: int, stdout: str, stderr: str) -> bool:
        text = stdout + stderr
        return returncode == 0 or "Unknown Job Id" in text or "has finished" in text or "completed" in text

    def find(self, name: str, user: str | None = None) -> list[str]:
        return ["qstat", "-x"]  # finished jobs too, while the server keeps them (keep_completed)

    def parse_found(self, stdout: str, name: str, since: float, user: str | None = None) -> list[Found]:
        """``qtime`` (or ``ctime``) is epoch seconds in ``qstat -x``; ``Job_Owner`` is ``user@host``."""
        found = []
        for job in self.jobs(stdout)[0]:
            if job.get("Job_Name") != name or not owned_by(job.get("Job_Owner"), user):
                continue
            queued_at = job.get("qtime") or job.get("ctime") or ""
            if not queued_at.isdigit() or not job.get("Job_Id"):
                raise SchedulerError(f"{self.scheduler}'s record of a job named {name} cannot be read: "
                                     f"{job.get('Job_Id')} qtime {queued_at!r}")
            if int(queued_at) >= since:
                found.append(Found(job["Job_Id"], float(queued_at), job.get("job_state") in RAN))
        return found


#: job states of a job that has started (running, exiting, suspended, completed)
RAN = ("R", "E", "S", "C", "F", "X", "B")


def owned_by(owner, user: str | None) -> bool:
    """Whether a ``Job_Owner`` (``user@host``) is ``user``'s (any job's when no user is given)."""
    return user is None or str(owner or "").split("@")[0] == user
