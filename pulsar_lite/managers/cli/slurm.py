"""Slurm: how a job is submitted (``sbatch``), how its state is read (``squeue -t all``, then ``sacct`` once
it has left the controller's memory), how it is deleted (``scancel``).

``squeue -t all`` lists finished jobs too, with their end state, reason and exit status, for as long as the
controller keeps them (``MinJobAge``, 300 s by default): one query answers for every job, running or just
ended. A job missing from it is looked up with ``sacct`` (the accounting database, when slurmdbd runs;
without it ``sacct`` exits 1: "Slurm accounting storage is disabled"). A job missing from both is not
guessed ``complete``: the manager then reads the job's ``return_code`` file, or fails it.

Ids. ``sbatch --parsable`` prints ``<id>``, or ``<id>;<cluster>`` for a job sent to a cluster of a multi-cluster
or federated setup (``-M``): kept whole, and every command about that job names its cluster (``-M <cluster>``).
An array job's tasks (``123_4``, pending ones as ``123_[5-9%2]``) and a heterogeneous job's components
(``123+1``) are read as the job they belong to (``123``): it runs while one of them runs and has ended once
all have (its outcome: the worst of theirs). pulsar_lite runs one script per job, so an array asked for in a
native specification or ``job_*`` option is refused at submission: its tasks would run the same script in the
same directory.

Looking for a submission whose outcome is unknown (``find``): this user's jobs of that name in every partition
(``-a``: hidden ones too), live (``squeue -t all``) and, with accounting, finished (``sacct``), their submit
times printed as epoch seconds (``SLURM_TIME_FORMAT=%s``; in UTC where that is not honoured), so that the
daemon's and the submit host's time zones never matter.
"""
from __future__ import annotations

import calendar
import re
import time

from ..contract import Observed, SchedulerError
from ..options import Resources, hms, native_options
from .plugin import (STATUS_COMMAND_BYTES, Directives, Everyone, Found, JobPlugin, Script, chunks, read_records,
                     wait_status)
from .slurm_options import CLIENT_OPTIONS, DIALECT

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
#: JobArrayID: an array task as 123_4 (JobID would print the task's own number), other jobs as their id
STATUS_FORMAT = "JobArrayID:|,State:|,exit_code:|,Reason:|"  # the reason last: it may hold spaces
HISTORY_FIELDS = "JobID,State,ExitCode,Reason"
FIND_FORMAT = "JobArrayID:|,SubmitTime:|,Name:|,State:|,UserName:|,Cluster:|"
FIND_HISTORY_FIELDS = "JobID,Submit,JobName,State,User,Cluster"
#: how the look-up commands run: times as epoch seconds (strftime's %s), and in UTC if %s is not honoured
EPOCH_TIMES = ["env", "TZ=UTC", "SLURM_TIME_FORMAT=%s"]
#: sacct's look-up starts this long before the submission (seconds)
HISTORY_SLACK = 300
#: what a state looks like (sacct: "CANCELLED by 1000"); anything else is a record cut short or garbled
_STATE = re.compile(r"^[A-Z][A-Z_]*(?: by \d+)?$")
#: what a job id looks like (123, and 123_4 / 123_[5-9%2] / 123+1 for array and heterogeneous jobs)
_JOB_ID = re.compile(r"^\d+(?:[_+][\w\[\]\-,.:%]*)?$")
_PART = re.compile(r"^(\d+)[_+]")  # an array task's or a heterogeneous component's job
_TASK = re.compile(r"^(\d+)_(\d+)$")
_TASKS = re.compile(r"^(\d+)_\[([^\]]*)\]$")
_CLUSTER = re.compile(r"^[\w.-]+(?:,[\w.-]+)*$")
_ARRAY = re.compile(r"^(?:-a|--array)(?:=.*|\d.*)?$")


def asks_array(word: str) -> bool:
    """Whether a word of sbatch options asks for an array: ``-a``, ``--array`` or an abbreviation sbatch takes for
    it (``--arr=1-3``). Refused wherever it is (job_*, native_specification, the client's: in every
    client_submit_params mode, not dropped), as before the policy."""
    return bool(_ARRAY.match(word)) or word.startswith("--") and DIALECT.name(word) == "--array"


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


def split_id(external_id: str) -> tuple[str, str | None]:
    """(job id, cluster or None) of ``123`` or ``123;cluster``."""
    job, _, cluster = external_id.partition(";")
    return job.strip(), cluster.strip() or None


def by_cluster(external_ids: list[str]) -> dict[str | None, list[str]]:
    groups: dict[str | None, list[str]] = {}
    for external_id in external_ids:
        groups.setdefault(split_id(external_id)[1], []).append(external_id)
    return groups


def whole_job(job: str) -> str:
    """The job an array task or heterogeneous component belongs to (``123_4``, ``123_[5-9]``, ``123+1``: 123)."""
    part = _PART.match(job)
    return part.group(1) if part else job


def in_tasks(listed: str, task: str) -> bool:
    """Whether ``listed``, pending tasks as ``123_[1-9:2%4,12]``, holds the task ``task`` (``123_5``)."""
    tasks, wanted = _TASKS.match(listed), _TASK.match(task)
    if not tasks or not wanted or tasks.group(1) != wanted.group(1):
        return False
    number = int(wanted.group(2))
    for part in tasks.group(2).split("%")[0].split(","):
        span, _, step = part.partition(":")
        low, _, high = span.partition("-")
        if not low.isdigit() or not (high or low).isdigit() or (step and not step.isdigit()):
            continue
        if int(low) <= number <= int(high or low) and (number - int(low)) % int(step or 1) == 0:
            return True
    return False


def asked_about(external_ids: list[str]):
    """A function naming, for a record's job id, the id asked about that it is of (or None)."""
    asked = {split_id(external_id)[0]: external_id for external_id in external_ids}
    tasks: dict[str, list[str]] = {}
    for job in asked:
        if _TASK.match(job):
            tasks.setdefault(whole_job(job), []).append(job)

    def owner(listed: str) -> str | None:
        if listed in asked:
            return asked[listed]
        whole = whole_job(listed)
        for task in tasks.get(whole, ()):  # a task asked about, listed among its array's pending tasks
            if in_tasks(listed, task):
                return asked[task]
        return asked.get(whole)  # a task or component of the job asked about
    return owner


def without_cluster_lines(stdout: str) -> str:
    """squeue's answer without the ``CLUSTER: <name>`` line it prints before each cluster's jobs (``-M``)."""
    return "\n".join(line for line in stdout.splitlines() if not line.startswith("CLUSTER:"))


def epoch(text: str) -> float | None:
    """A time Slurm printed with EPOCH_TIMES: epoch seconds, or ``YYYY-MM-DDTHH:MM:SS`` in UTC."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def clusters_in(words: list[str]) -> str | None:
    """The clusters ``-M``/``--clusters`` names in sbatch options (the last wins, as in sbatch)."""
    clusters = None
    for index, word in enumerate(words):
        if word in ("-M", "--clusters", "--cluster") and index + 1 < len(words):
            clusters = words[index + 1]
        elif word.startswith(("--clusters=", "--cluster=")):
            clusters = word.split("=", 1)[1]
        elif word.startswith("-M") and len(word) > 2:
            clusters = word[2:]
    return clusters


class Slurm(JobPlugin):
    scheduler = "Slurm"
    directive = "#SBATCH"

    dialect = DIALECT
    argmap = ARGMAP
    default_options = CLIENT_OPTIONS

    def __init__(self, params: dict | None = None):
        super().__init__(params)
        #: the clusters the manager's options send jobs to (-M): searched when a submission is looked for
        self.clusters: str | None = None

    def configure(self, native_specification: str | None) -> None:
        words = [word for key, value in self.params.items() for word in (key, str(value or ""))]
        try:
            words += native_options(native_specification, "native_specification")
        except SchedulerError:
            pass  # said when a job is submitted
        clusters = clusters_in(words)
        if clusters is not None and not _CLUSTER.match(clusters):
            raise SchedulerError(f"invalid Slurm cluster list {clusters!r}")
        self.clusters = clusters

    def directives(self, script: Script) -> Directives:
        self.refuse_arrays(script)
        return super().directives(script)

    def own_options(self, script: Script) -> list[tuple[str, str]]:
        return [("-J", script.name), ("-o", script.stdout), ("-e", script.stderr)]

    def resources(self, wanted: Resources) -> list[tuple[str, str | None]]:
        resources: list[tuple[str, str | None]] = []
        if wanted.queue:
            resources.append(("-p", wanted.queue))
        if wanted.cores:
            resources.append(("-c", str(wanted.cores)))
        if wanted.memory_mb:
            resources.append(("--mem", f"{wanted.memory_mb}M"))
        if wanted.walltime:
            resources.append(("-t", hms(wanted.walltime)))
        return resources

    def refuse_arrays(self, script: Script) -> None:
        """An array job would run this one job's script N times in its one directory, each task writing its
        return_code over the others': refused (a clear failure, not a job that ends on whichever task wrote
        last)."""
        for what, words in (("a job_* option", list(self.params)),
                            ("the native_specification", native_options(script.native_specification,
                                                                        "native_specification")),
                            ("the client's native_specification", native_options(
                                script.submit_params.get("native_specification"), "submit_native_specification"))):
            if any(asks_array(word) for word in words):
                raise SchedulerError(f"Slurm job arrays (--array, in {what}) are not supported: pulsar_lite runs "
                                     f"one script per job, and every task would run it in the same directory")

    #: sbatch sent the job, and the controller's answer did not come back (it may have taken the job)
    SUBMIT_OUTCOME_UNKNOWN = ("Socket timed out on send/recv operation", "Zero Bytes were transmitted or received")

    #: sbatch could not connect to slurmctld (down, restarting, failing over): it sent nothing
    SCHEDULER_DOWN = ("Unable to contact slurm controller",)

    def submit(self, script_path: str) -> list[str]:
        return ["sbatch", "--parsable", script_path]

    def parse_submit(self, stdout: str) -> str:
        # --parsable: "<id>" or "<id>;<cluster>" (the cluster is kept: every command about the job names it)
        text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        job, cluster = split_id(text)
        if not job.isdigit() or (cluster is not None and not _CLUSTER.match(cluster)):
            raise SchedulerError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
        return f"{job};{cluster}" if cluster else job

    @staticmethod
    def on(cluster: str | None) -> list[str]:
        return ["-M", cluster] if cluster else []

    def status(self, external_ids: list[str], cluster: str | None = None) -> list[str]:
        """squeue about these jobs, all of one cluster (status_commands groups them)."""
        cluster = cluster or (split_id(external_ids[0])[1] if external_ids else None)
        return ["squeue", *self.on(cluster), "-h", "-t", "all", "-j",
                ",".join(split_id(external_id)[0] for external_id in external_ids), "-O", STATUS_FORMAT]

    #: past this many jobs (of one cluster), squeue lists all of the user's jobs rather than these by id: squeue
    #: matches a long -j list slowly (3,000 ids: 0.50 s; every job of the user, 15,000 listed: 0.13 s, here)
    USER_WIDE = 200

    def status_commands(self, external_ids: list[str], limit: int = STATUS_COMMAND_BYTES, user: str | None = None) \
            -> list[tuple[list[str], list[str]]]:
        commands = []
        for cluster, ids in by_cluster(external_ids).items():
            if user and len(ids) > self.USER_WIDE:
                commands.append((["squeue", *self.on(cluster), "-h", "-a", "-t", "all", "-u", user, "-O",
                                  STATUS_FORMAT], Everyone(ids)))
            else:
                commands += chunks(lambda run, c=cluster: self.status(run, c), ids, limit)
        return commands

    def history_commands(self, external_ids: list[str], limit: int = STATUS_COMMAND_BYTES) \
            -> list[tuple[list[str], list[str]]]:
        return [command for cluster, ids in by_cluster(external_ids).items()
                for command in chunks(lambda run, c=cluster: self.history(run, c), ids, limit)]

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        if returncode != 0:
            if "Invalid job id" in stderr:  # every job asked about has left the controller's memory
                return {}
            raise SchedulerError(f"squeue failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        return read_records(without_cluster_lines(stdout), set(external_ids), self._squeue_record, self.scheduler,
                            4, _JOB_ID, owner=asked_about(external_ids), everyone=isinstance(external_ids, Everyone))

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

    def history(self, external_ids: list[str], cluster: str | None = None) -> list[str] | None:
        cluster = cluster or (split_id(external_ids[0])[1] if external_ids else None)
        return ["sacct", *self.on(cluster), "-n", "-P", "-X", "-j",
                ",".join(split_id(external_id)[0] for external_id in external_ids), "-o", HISTORY_FIELDS]

    def parse_history(self, returncode: int, stdout: str, stderr: str,
                      external_ids: list[str] | None = None) -> dict[str, Observed]:
        if returncode != 0:
            if "accounting storage is disabled" in (stderr + stdout):
                return {}  # no slurmdbd: Slurm keeps no record of finished jobs
            raise SchedulerError(f"sacct failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        owner = asked_about(external_ids) if external_ids is not None else whole_job
        return read_records(stdout, None, self._sacct_record, self.scheduler, 4, _JOB_ID, owner=owner)

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
        job, cluster = split_id(external_id)
        return ["scancel", *self.on(cluster), job]

    # -- a submission whose outcome is unknown ------------------------------------------------------------------
    def find(self, name: str, user: str | None = None) -> list[str]:
        return [*EPOCH_TIMES, "squeue", *self.on(self.clusters), "-h", "-a", "-t", "all",
                *(["-u", user] if user else []), "-n", name, "-O", FIND_FORMAT]

    def find_history(self, name: str, since: float, user: str | None = None) -> list[str] | None:
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(max(since - HISTORY_SLACK, 0)))
        return [*EPOCH_TIMES, "sacct", *self.on(self.clusters), "-n", "-P", "-X", *(["-u", user] if user else []),
                "--name", name, "-S", start, "-E", "now", "-o", FIND_HISTORY_FIELDS]

    def parse_found(self, stdout: str, name: str, since: float, user: str | None = None) -> list[Found]:
        """``JobArrayID|SubmitTime|Name|State|UserName|Cluster`` (squeue) or the same fields from sacct."""
        found = []
        cluster = None
        for line in stdout.splitlines():
            if line.startswith("CLUSTER:"):
                cluster = line.split(":", 1)[1].strip() or None
                continue
            fields = [field.strip() for field in line.split("|")]
            if len(fields) < 6 and name in fields:  # cut short: it may be the job's
                raise SchedulerError(f"Slurm's record of a job named {name} cannot be read: {line[:200]!r}")
            if len(fields) < 6 or fields[2] != name:
                continue  # another job's
            job, submitted, _, state, owner, on = fields[:6]
            if user and owner and owner != user and not owner.isdigit():
                continue  # another user's (squeue -u asked for this user's only)
            when = epoch(submitted)
            whole = whole_job(job)
            if when is None or not whole.isdigit() or not _STATE.match(state):
                raise SchedulerError(f"Slurm's record of a job named {name} cannot be read: {line[:200]!r}")
            if when < since:
                continue  # an earlier job of that name
            phase = STATES.get(state.split()[0], (Observed.ENDED, None))[0]
            ran = phase == Observed.RUNNING or (phase == Observed.ENDED and not state.startswith("CANCELLED"))
            where = on or cluster
            found.append(Found(f"{whole};{where}" if self.clusters and where else whole, when, ran))
        return found

    def parse_found_history(self, returncode: int, stdout: str, stderr: str, name: str, since: float,
                            user: str | None = None) -> list[Found]:
        if returncode != 0:
            if "accounting storage is disabled" in (stderr + stdout):
                return []  # no slurmdbd: what squeue forgot is gone
            raise SchedulerError(f"sacct failed ({returncode}): {(stderr or stdout).strip()[-300:]}")
        return self.parse_found(stdout, name, since, user)
