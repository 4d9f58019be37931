"""What a queued_cli job plugin is: a command builder and an output parser for one scheduler, nothing more.

A plugin never runs anything: the manager runs the commands it builds (through a shell, here or over
ssh) and hands the output back to its parsers. So each plugin is tested on captured output alone.
"""
from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from typing import Callable

from ..contract import Observed, SchedulerError
from ..options import (RESOURCE_KEYS, ClientPolicy, Dialect, Group, Resources, choose, client_word, hms,
                       native_options, option_line, parse_walltime, safe_value)

log = logging.getLogger(__name__)

__all__ = [
    "STATUS_COMMAND_BYTES", "wait_status", "Script", "Directives", "JobPlugin", "chunks", "unattributed", "ABSENT",
    "combined", "Everyone", "read_records", "job_number", "Found", "kept_first", "mapped_params",
    # where they were before managers/options.py (HTCondor, DRMAA and the plugins use them from there now)
    "RESOURCE_KEYS", "Resources", "hms", "native_options", "parse_walltime", "safe_value",
]

#: the longest status command, in bytes, as one shell line (what ssh sends: the submit host's shell gets the
#: whole command as one argument). Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN, "Argument
#: list too long"), locally as on the submit host; a command this long stays well under it.
STATUS_COMMAND_BYTES = 100_000


def wait_status(value: int) -> tuple[int | None, int | None]:
    """(exit code, signal) from a wait status (exit code << 8 | signal)."""
    return (value >> 8) & 0xFF, (value & 0x7F) or None


@dataclass(frozen=True)
class Script:
    """What a plugin knows of a job when it writes the job script's directives."""
    name: str
    stdout: str
    stderr: str
    params: dict  # the manager's job_* options (prefix removed)
    native_specification: str | None  # the manager's
    submit_params: dict  # the client's
    policy: ClientPolicy | None = None  # what the client may add (None: the plugin's default)


@dataclass(frozen=True)
class Directives:
    """The job script's directive lines, and what the client asked for that is not in them (for the log)."""
    lines: list[str]
    dropped: list[str]


class JobPlugin:
    """Commands and parsers of one scheduler. Every method is pure."""

    #: the scheduler's name in messages
    scheduler = "?"
    #: how a directive line starts (#SBATCH, #PBS)
    directive = "#"
    #: how the scheduler's options are spelled
    dialect = Dialect("?")
    #: Pulsar's job_* keys (others are given as job_-x / job_--long)
    argmap: dict[str, str] = {}
    #: what a client may add when the manager does not say (Pulsar's queued_cli uses none of its submit params)
    default_mode = "ignore"
    #: the options a client may ask for when the manager does not say (resources, never queue or account)
    default_options: tuple[str, ...] = ()

    def __init__(self, params: dict | None = None):
        self.params = params or {}

    def policy(self, values: dict) -> ClientPolicy:
        """The manager's client_submit_params / client_submit_options, with this scheduler's defaults."""
        return ClientPolicy.of(values, self.dialect, self.default_mode, self.default_options)

    def headers(self, script: Script) -> list[str]:
        """Directive lines for the job script."""
        return self.directives(script).lines

    def directives(self, script: Script) -> Directives:
        """The daemon's options (name, streams), the administrator's (job_*, native_specification), then what
        the client may add of its own (its native specification, its resources), one option a line."""
        own: list[Group] = [(option, value) for option, value in self.own_options(script)]
        admin = [(option,) if value is None else (option, value)
                 for option, value in mapped_params(self.params, self.argmap, self.scheduler)]
        admin += self.dialect.groups(native_options(script.native_specification, "native_specification"))
        resources = [(option,) if value is None else (option, value)
                     for option, value in self.resources(Resources.from_params(script.submit_params))]
        policy = script.policy or self.policy({})
        options = self.dialect.groups(native_options(script.submit_params.get("native_specification"),
                                                     "submit_native_specification"))
        client = choose(self.dialect, policy, own + admin, options, resources)  # its resources last, as ever
        for group in client.kept:
            for word in group:
                client_word(str(word), self.scheduler)
        lines = [f"{self.directive} {option_line(group)}" for group in own + admin + client.kept]
        return Directives(lines, client.dropped)

    def own_options(self, script: Script) -> list[tuple[str, str]]:
        """The options the daemon sets: the job's name and streams."""
        raise NotImplementedError

    def resources(self, wanted: Resources) -> list[tuple[str, str | None]]:
        """What a client asks for by name (cores, memory, walltime, queue), as this scheduler's options."""
        return []

    def submit(self, script_path: str) -> list[str]:
        raise NotImplementedError

    def parse_submit(self, stdout: str) -> str:
        raise NotImplementedError

    #: what a submit command that failed prints when it may have been accepted all the same (its reply lost)
    SUBMIT_OUTCOME_UNKNOWN: tuple[str, ...] = ()

    def submit_outcome_unknown(self, returncode: int, stdout: str, stderr: str) -> bool:
        """A submit command that exited non-zero is a refusal, unless it says it lost touch with the scheduler
        after sending the job (then the scheduler may hold it)."""
        text = stderr + stdout
        return any(words in text for words in self.SUBMIT_OUTCOME_UNKNOWN)

    #: what a command prints when it could not reach the scheduler at all (nothing was sent)
    SCHEDULER_DOWN: tuple[str, ...] = ()

    def scheduler_down(self, returncode: int, stdout: str, stderr: str) -> bool:
        """A command that exited non-zero because it could not reach the scheduler: a submit then waits."""
        text = stderr + stdout
        return any(words in text for words in self.SCHEDULER_DOWN)

    def status(self, external_ids: list[str]) -> list[str]:
        """One command asking about all of these jobs."""
        raise NotImplementedError

    def status_commands(self, external_ids: list[str], limit: int = STATUS_COMMAND_BYTES, user: str | None = None) \
            -> list[tuple[list[str], list[str]]]:
        """The status commands for these jobs, each with the ids it asks about, each at most ``limit`` bytes
        (``user``: who submitted them, for a scheduler that lists all of a user's jobs cheaper than many ids)."""
        return chunks(self.status, external_ids, limit)

    def parse_status(self, returncode: int, stdout: str, stderr: str, external_ids: list[str]) -> dict[str, Observed]:
        """What the status command said; raise SchedulerError when it did not answer. A record that cannot
        be read is ``Observed.unreadable`` for its job (never an error for all of them)."""
        raise NotImplementedError

    def history(self, external_ids: list[str]) -> list[str] | None:
        """A command reading the scheduler's record of finished jobs; None when it keeps none."""
        return None

    def history_commands(self, external_ids: list[str], limit: int = STATUS_COMMAND_BYTES) \
            -> list[tuple[list[str], list[str]]]:
        if not external_ids or self.history(external_ids[:1]) is None:
            return []
        return chunks(self.history, external_ids, limit)

    def parse_history(self, returncode: int, stdout: str, stderr: str,
                      external_ids: list[str] | None = None) -> dict[str, Observed]:
        """What the history command said (``external_ids``: those it asked about)."""
        return {}

    def delete(self, external_id: str) -> list[str]:
        raise NotImplementedError

    def delete_succeeded(self, returncode: int, stdout: str, stderr: str) -> bool:
        """A delete that failed only because the job is already gone counts as done."""
        return returncode == 0

    def configure(self, native_specification: str | None) -> None:
        """The manager's native specification, for what it says of where jobs go (Slurm's ``-M``)."""

    # -- a submission whose outcome is unknown, looked for by its name (submitting.py) ------------------------
    def find(self, name: str, user: str | None = None) -> list[str]:
        """A command listing ``user``'s jobs named ``name`` in the live queue (every partition or queue)."""
        raise NotImplementedError

    def parse_found(self, stdout: str, name: str, since: float, user: str | None = None) -> list[Found]:
        """``user``'s jobs named ``name`` submitted at or after ``since`` (epoch, the daemon's clock less the
        allowed skew) in what ``find`` printed. SchedulerError when a record of that name cannot be read (it may be
        the job: never concluded from)."""
        raise NotImplementedError

    def parse_find(self, stdout: str, name: str, since: float, user: str | None = None) -> list[str]:
        """Their ids, the one to keep first (``kept_first``)."""
        return kept_first(self.parse_found(stdout, name, since, user))

    def find_history(self, name: str, since: float, user: str | None = None) -> list[str] | None:
        """A command listing the same from the scheduler's record of finished jobs (which the live queue forgets);
        None when the live queue's answer holds them already, or the scheduler keeps none."""
        return None

    def parse_found_history(self, returncode: int, stdout: str, stderr: str, name: str, since: float,
                            user: str | None = None) -> list[Found]:
        return []


def chunks(build: Callable[[list[str]], list[str]], external_ids: list[str], limit: int) \
        -> list[tuple[list[str], list[str]]]:
    """``build(ids)`` for consecutive runs of ``external_ids``, in order, each command at most ``limit`` bytes
    long as one shell line (``shlex.join``, as ssh sends it); an id that is too long alone gets a command of
    its own."""
    if not external_ids:
        return []
    base = len(shlex.join(build([])))
    result: list[tuple[list[str], list[str]]] = []
    run: list[str] = []
    size = base
    for external_id in external_ids:
        cost = len(shlex.quote(external_id)) + 1  # the id and its separator (a comma, or a space)
        if run and size + cost > limit:
            result.append((build(run), run))
            run, size = [], base
        run.append(external_id)
        size += cost
    result.append((build(run), run))
    return result


_UNATTRIBUTED: set[str] = set()


def unattributed(scheduler: str, record: str) -> None:
    """A record in a status answer that names no job asked about: logged once (the jobs it may have been
    about are not listed this round)."""
    if record in _UNATTRIBUTED:
        return
    if len(_UNATTRIBUTED) < 1000:
        _UNATTRIBUTED.add(record)
    log.warning("%s printed a status record naming no job asked about (ignored): %r", scheduler, record[:200])


ABSENT = "absent from an answer with a record that could not be read"

#: which of several records of one job (an array's tasks, a heterogeneous job's components) says most: one
#: running, then one waiting, then one held, then one unreadable (nothing concluded), then an end by the
#: scheduler, then a failing end; a job has ended only when all its parts have
_RANK = {Observed.RUNNING: 0, Observed.QUEUED: 1, Observed.HELD: 2, Observed.UNKNOWN: 3}


def combined(records: list[Observed]) -> Observed:
    """One job's state from the records of its parts."""
    def rank(seen: Observed):
        if seen.phase in _RANK:
            return _RANK[seen.phase]
        return 4 if seen.failure is not None else 5 if seen.exit_code not in (0, None) else 6
    return min(records, key=rank)


class Everyone(list):
    """The ids a status command is about when it lists every job of the user (not these ids alone): records
    of the user's other jobs are expected in its answer, and passed over."""


def read_records(stdout: str, wanted: set[str] | None, read: Callable[[list[str]], Observed | None], scheduler: str,
                 fields: int, job_id: re.Pattern, owner: Callable[[str], str | None] | None = None,
                 everyone: bool = False) -> dict[str, Observed]:
    """Each line of ``stdout`` (``|``-separated fields, the job id first, matching ``job_id``) read by ``read``;
    a line it cannot read (None) is ``Observed.unreadable`` for its job, never an error for the others. A
    readable record of a job wins over an unreadable one. When a line names no job asked about, the jobs the
    answer leaves out may have been its subject: they are unreadable too this round, not gone. ``owner`` maps a
    record's id to the id asked about it belongs to (an array task's to its array's); the records of one job's
    parts are ``combined``."""
    parts_of: dict[str, dict[str, Observed]] = {}
    garbled = False
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|", fields - 1)]
        named = parts[0] if job_id.match(parts[0]) else None
        key = ((owner(named) if owner else None) or named) if named else None
        if everyone and named and wanted is not None and key not in wanted:
            continue  # another job of the user's: not asked about
        seen = read(parts) if named and len(parts) == fields else None
        if seen is not None:
            parts_of.setdefault(key, {})[named] = seen
        elif named and (wanted is None or key in wanted):
            parts_of.setdefault(key, {}).setdefault(named, Observed.unreadable(line))
        else:
            garbled = True
            unattributed(scheduler, line)
    result = {key: combined(list(records.values())) for key, records in parts_of.items()}
    if garbled and wanted:
        for external_id in wanted - result.keys():
            result[external_id] = Observed.unreadable(ABSENT)
    return result


def job_number(external_id: str) -> int:
    """The number at the head of a scheduler id (``123``, ``123.server``, ``123_4``, ``123;cluster``), 0 if none."""
    head = re.match(r"\d+", external_id)
    return int(head.group(0)) if head else 0


@dataclass(frozen=True)
class Found:
    """A job found by its name: its id, when the scheduler says it was submitted (epoch; None if it does not
    say), and whether it has started (running, or ended after it ran)."""
    external_id: str
    submitted: float | None = None
    ran: bool = False


def kept_first(found: list[Found]) -> list[str]:
    """The ids of the jobs found, each once, the one to keep first: one that has started (its run is not
    repeated), else the oldest; the others are copies to delete."""
    best: dict[str, Found] = {}
    for job in found:
        known = best.get(job.external_id)
        if known is None or (job.ran and not known.ran):
            best[job.external_id] = job
    order = sorted(best.values(), key=lambda job: (not job.ran, job.submitted if job.submitted is not None
                                                    else float("inf"), job_number(job.external_id)))
    return [job.external_id for job in order]


def mapped_params(params: dict, argmap: dict[str, str], scheduler: str) -> list[tuple[str, str | None]]:
    """Pulsar's job_* options: a key starting with '-' is the option itself, others go through ``argmap``."""
    options = []
    for key, value in params.items():
        option = key if key.startswith("-") else argmap.get(key)
        if option is None:
            raise SchedulerError(f"unknown {scheduler} option job_{key} (use job_-x or job_--long-option for "
                                 f"options not in: {', '.join(sorted(argmap))})")
        options.append((option, None if value is None or value == "" else str(value)))
    return options
