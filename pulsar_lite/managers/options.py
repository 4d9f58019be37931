"""Scheduler options and resources, one place for every cluster manager (queued_cli's Slurm, Torque and
OpenPBS, queued_condor, queued_drmaa): what a client asks for, how a native specification reads, who decides.

Who decides. The manager's own options (``native_specification``, ``job_*``, HTCondor's ``submit_*``) are the
administrator's. A client's (Galaxy's ``submit_native_specification``, ``submit_cores``, ...) are added as
the manager's ``client_submit_params`` says:

* ``ignore``: only the resources a client asks for by name (cores, memory, walltime, queue), each when the
  option it becomes is in ``client_submit_options``; its native specification is dropped;
* ``append``: its native specification's options too, each when it is in ``client_submit_options``;
* in both, an option the administrator set wins (partition, account, QoS, anything in the manager's
  native specification or job_*): the client's is dropped;
* ``allow``: everything the client sends, after the administrator's (the last one wins: the client's).

In every mode the options the daemon sets for itself (job name, stdout, stderr) stay the daemon's. What a
client loses is logged, one line per job, and the job runs with the rest (as Pulsar's DRMAA manager does
with a client's native specification it overrides): a Galaxy destination written for another site keeps
working, and the administrator's values hold. A value that is more than one line, a specification that
cannot be parsed, an HTCondor macro: those are refusals (the job fails with the reason).

Quoting: a native specification is split as a shell would (``shlex``) and every word is written back quoted
(``shlex.quote``): ``--comment="two words"`` stays one word in a ``#SBATCH`` line (sbatch reads quotes in
directive lines as a shell does: checked on Slurm 24.11).
"""
from __future__ import annotations

import logging
import re
import shlex
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from .contract import SchedulerError

log = logging.getLogger(__name__)

#: submit_params a client may send (Galaxy destination params ``submit_<key>``), with their aliases
RESOURCE_KEYS = {
    "cores": ("cores", "ncpus", "request_cpus"),
    "memory": ("memory", "mem", "request_memory"),  # MB
    "walltime": ("walltime", "time", "runtime"),  # seconds, or [D-]HH:MM:SS
    "queue": ("queue", "partition"),
}
MODES = ("ignore", "append", "allow")
#: in client_submit_options: any option
ANY = "*"


@dataclass(frozen=True)
class Resources:
    cores: int | None = None
    memory_mb: int | None = None
    walltime: int | None = None  # seconds
    queue: str | None = None

    @classmethod
    def from_params(cls, params: dict) -> "Resources":
        def first(kind):
            for key in RESOURCE_KEYS[kind]:
                if params.get(key) not in (None, ""):
                    return params[key]
            return None

        cores, memory, walltime, queue = first("cores"), first("memory"), first("walltime"), first("queue")
        try:
            wanted = cls(cores=count(cores, "cores") if cores is not None else None,
                         memory_mb=count(memory, "memory", whole=False) if memory is not None else None,
                         walltime=parse_walltime(walltime) if walltime is not None else None,
                         queue=safe_value(str(queue), "queue") if queue is not None else None)
        except (ValueError, TypeError, OverflowError) as exc:  # "1e999", [1, 2], {"a": 1}: the client's mistake
            raise SchedulerError(f"invalid resource request: {exc}") from None
        if wanted.walltime is not None and not 0 <= wanted.walltime <= LIMIT:
            raise SchedulerError(f"invalid resource request: walltime {walltime!r} out of range")
        return wanted

    @staticmethod
    def keys() -> set[str]:
        return {alias for aliases in RESOURCE_KEYS.values() for alias in aliases}


#: the largest count or number of seconds a client may ask for (a scheduler takes 32-bit values)
LIMIT = 2 ** 31 - 1


#: memory units a client may write after the number (MB without one, as Galaxy and HTCondor read it)
_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_MEMORY = re.compile(r"^\s*([0-9.eE+-]+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def count(value, what: str, whole: bool = True) -> int:
    """A number a client asked for: cores, or (``whole`` False) memory in MB, which may be written ``2048.0``
    or with a unit (``8G``, ``8 GB``, ``512MiB``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what} {value!r}: expected a number")
    if whole:
        number = int(value)
    elif isinstance(value, str):
        matched = _MEMORY.match(value)
        if not matched:
            raise ValueError(f"{what} {value!r}: expected a number of MB, or one with a unit (K, M, G, T)")
        number = int(float(matched.group(1)) * _UNITS[matched.group(2).upper()])
    else:
        number = int(float(value))
    if not 0 <= number <= LIMIT:  # 0: not asked for
        raise ValueError(f"{what} {value!r}: expected a number from 1 to {LIMIT}")
    return number


def parse_walltime(value) -> int:
    """Seconds from a number of seconds or ``[D-]HH:MM:SS`` / ``MM:SS``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"walltime {value!r}: expected seconds or [D-]HH:MM:SS")
    text = value.strip()
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text) if day_text.isdigit() else -1
        if days < 0:
            raise ValueError(f"walltime {value!r}: expected seconds or [D-]HH:MM:SS")
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ValueError(f"walltime {value!r}: expected seconds or [D-]HH:MM:SS")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return days * 86400 + seconds


def hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


_UNSAFE = re.compile(r"[\r\n\x00]")


def safe_value(value: str, what: str) -> str:
    """A value that goes into a directive line of the job script: one line, no NUL."""
    if _UNSAFE.search(value):
        raise SchedulerError(f"{what} must be one line: {value[:60]!r}")
    return value


def native_options(specification: str | None, what: str) -> list[str]:
    """A native specification split as a shell would (quotes respected); refused when it is more than one line."""
    if not specification:
        return []
    safe_value(str(specification), what)
    try:
        return shlex.split(str(specification))
    except ValueError as exc:
        raise SchedulerError(f"{what} cannot be parsed ({exc}): {str(specification)[:80]!r}") from None


#: one option as written: the option word and its value(s) (``("-p", "debug")``, ``("--qos=low",)``, ``("-V",)``)
Group = tuple[str, ...]


@dataclass(frozen=True)
class Dialect:
    """How one scheduler's options are spelled, so that two spellings of one option are known as one."""
    scheduler: str
    #: spelling -> the option's name (``-p`` -> ``--partition``)
    aliases: dict = field(default_factory=dict)
    #: long options by name, for getopt's abbreviations (sbatch takes ``--parti=x`` for ``--partition=x``)
    long: frozenset = frozenset()
    #: options that take no value
    flags: frozenset = frozenset()
    #: getopt-style single-letter options: ``-pdebug`` is ``-p debug``
    attached: bool = False
    #: options whose value is a comma list of settings, each its own (``-l mem=4gb,walltime=1:00:00``)
    listed: frozenset = frozenset()
    #: sets of options that set one thing (``--mem``, ``--mem-per-cpu``): one set by the manager takes all
    exclusive: tuple = ()
    #: options the daemon sets for itself (job name, stdout, stderr) or that would take the job out of its hands
    #: (its directory, its environment, an array, a submit that waits for the job): never a client's
    daemon: frozenset = frozenset()
    #: setting -> settings a client may no longer add once the administrator set it (Slurm's ``-c 4`` is the
    #: job's cores: a client's ``--ntasks 64`` would multiply them)
    implies: dict = field(default_factory=dict)

    def name(self, option: str) -> str:
        """The option's name, whatever the spelling: ``-p``, ``--part``, ``--partition=x`` -> ``--partition``."""
        word = option.split("=", 1)[0] if option.startswith("--") else option
        word = self.aliases.get(word, word)
        if word.startswith("--") and word not in self.long:
            candidates = [known for known in self.long if known.startswith(word)]
            if len(candidates) == 1:
                word = candidates[0]
        return word

    def groups(self, words: Iterable[str]) -> list[Group]:
        """Words as options, each with the words after it that are not options (its value; Grid Engine's
        ``-pe smp 4`` has two); a listed option once per setting."""
        result: list[list[str]] = []
        for word in words:
            if self.attached and re.match(r"^-[A-Za-z].", word):
                result.extend(self._cluster(word))  # -pdebug; -sHpdebug (getopt: -s -H -p debug)
            elif word.startswith("-") and len(word) > 1 or not result or self._complete(result[-1]):
                result.append([word])
            else:
                result[-1].append(word)
        return [split for group in result for split in self.split(tuple(group))]

    def _cluster(self, word: str) -> list[list[str]]:
        """A getopt word of short options: flags one after the other, then one option that takes the rest of the
        word as its value (``-sHpgpu``: ``-s``, ``-H``, ``-p gpu``), as sbatch and qsub read it. A character after a
        flag that is not an option letter (``-s-pgpu``) leaves the whole word one unknown option: never written as
        a flag and a value, which the scheduler would read as two options."""
        groups: list[list[str]] = []
        rest = word[1:]
        while rest:
            option = "-" + rest[0]
            if not rest[0].isalpha():
                return [[word]]
            if self.name(option) not in self.flags:
                groups.append([option, rest[1:]] if len(rest) > 1 else [option])
                return groups
            groups.append([option])
            rest = rest[1:]
        return groups

    def split(self, group: Group) -> list[Group]:
        """A listed option once per setting (``-l a=1,b=2``: ``-l a=1``, ``-l b=2``); others as they are."""
        if self.name(group[0]) in self.listed and len(group) == 2:
            return [(group[0], item) for item in group[1].split(",") if item] or [group]
        return [group]

    def _complete(self, group: list[str]) -> bool:
        option = group[0]
        return (not option.startswith("-") or self.name(option) in self.flags or "=" in option and
                option.startswith("--") or self.attached and len(group) > 1)

    def setting(self, group: Group) -> str:
        """What one option sets: its name, and for a listed option the setting's (``-l h_rt``)."""
        name = self.name(group[0])
        if name in self.listed and len(group) > 1:
            return f"{name} {group[1].split('=', 1)[0]}"
        return name

    def related(self, setting: str) -> set[str]:
        """The setting and those that set the same thing."""
        result = {setting}
        for names in self.exclusive:
            if setting in names:
                result |= set(names)
        return result


#: characters a scheduler's directive parser reads its own way whatever the quoting (sbatch: a backslash escapes
#: the next character even inside quotes, so shlex's '"'"' reopens the line; '#' outside quotes ends it)
_CLIENT_UNSAFE = re.compile(r"[\\'\"#`$]")
#: sbatch splits a job into components at any directive line holding these words, before it reads its options
_SPLITS_JOB = re.compile(r"packjob|hetjob", re.IGNORECASE)


def client_word(word: str, scheduler: str) -> str:
    """A word of a client's option, refused (SchedulerError: the job fails with the reason) when it holds what
    could make the scheduler read the directive line otherwise than it is written."""
    if _CLIENT_UNSAFE.search(word):
        raise SchedulerError(f"a client's scheduler option may not hold a quote, a backslash, '#', '$' or '`' "
                             f"({scheduler} reads them its own way in a directive line): {word[:60]!r}")
    if _SPLITS_JOB.search(word):
        raise SchedulerError(f"a client's scheduler option may not hold 'packjob' or 'hetjob' ({scheduler} splits "
                             f"the job there): {word[:60]!r}")
    return word


def option_line(group: Group, what: str = "a scheduler option") -> str:
    """One option as shell words, each quoted where it needs it (one line: refused otherwise)."""
    return shlex.join(safe_value(str(word), what) for word in group)


@dataclass(frozen=True)
class ClientPolicy:
    """What a client may add to the administrator's options (``client_submit_params``, ``client_submit_options``)."""
    mode: str
    #: settings a client may ask for (names: ``--mem``, ``-l h_rt``, or an option for all its settings: ``-l``)
    options: frozenset

    @classmethod
    def of(cls, values: dict, dialect: Dialect, mode: str, options: Iterable[str]) -> "ClientPolicy":
        """From a manager's configuration; ``mode`` and ``options``: the defaults for this manager."""
        chosen = values.get("client_submit_params") or mode
        if chosen not in MODES:
            raise SchedulerError(f"client_submit_params must be one of {', '.join(MODES)}, not {chosen!r}")
        listed = values.get("client_submit_options")
        return cls(chosen, frozenset(cls._setting(dialect, str(entry)) for entry in
                                     (options if listed is None else listed) if str(entry).strip()))

    @staticmethod
    def _setting(dialect: Dialect, entry: str) -> str:
        words = entry.split()
        if words == [ANY]:
            return ANY
        name = dialect.name(words[0])
        return f"{name} {words[1]}" if len(words) > 1 else name

    def permits(self, setting: str) -> bool:
        return ANY in self.options or setting in self.options or setting.split(" ")[0] in self.options


@dataclass
class Choice:
    """The client's options that are written (after the daemon's and the administrator's), and what it lost."""
    kept: list[Group] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def choose(dialect: Dialect, policy: ClientPolicy, admin: Iterable[Group], options: Iterable[Group],
           resources: Iterable[Group] = ()) -> Choice:
    """The client's ``options`` (its native specification, as groups) and ``resources`` (what it asked for by
    name, as this scheduler's options) that may be added under ``policy`` to ``admin``: the daemon's and the
    administrator's options."""
    taken: set[str] = set()
    for group in admin:
        for setting in dialect.split(group):
            for name in dialect.related(dialect.setting(setting)):
                taken |= {name} | set(dialect.implies.get(name, ()))
    choice = Choice()
    for group, own in [(group, True) for group in options] + [(group, False) for group in resources]:
        related = dialect.related(dialect.setting(group))
        if related & dialect.daemon:
            why = "pulsar_lite sets it"
        elif policy.mode == "allow":
            why = None
        elif own and policy.mode == "ignore":
            why = "client_submit_params: ignore"
        elif related & taken:
            why = "the manager sets it"
        elif not policy.permits(dialect.setting(group)):
            why = "not in client_submit_options"
        else:
            why = None
        if why:
            choice.dropped.append(f"{option_line(group)} ({why})")
        else:
            choice.kept.append(group)
    return choice


class DropLog:
    """Logs what clients asked for and did not get: one line per job (a job's later submissions say nothing)."""

    def __init__(self, manager: str, size: int = 10000):
        self.manager = manager
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def note(self, job_id: str, dropped: list[str]) -> None:
        if not dropped:
            return
        with self._lock:
            if job_id in self._seen:
                return
            self._seen[job_id] = None
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
        log.warning("job %s [%s]: the client's submit params were not all used (client_submit_params and "
                    "client_submit_options decide): dropped %s", job_id, self.manager, "; ".join(dropped))
