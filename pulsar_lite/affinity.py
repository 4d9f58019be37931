"""Keep the daemon's own threads on one CPU; give the jobs it starts every CPU.

The daemon's threads take turns holding the interpreter lock, so its Python code runs on one CPU
at a time whatever the machine has. Spread over several CPUs, every hand-over of the lock is a
wake-up sent to another CPU, which on a virtual machine is a trip through the hypervisor: on the
2-CPU machine the benchmarks run on, pinning the daemon to one CPU cut its context switches per job
by 60 % and its CPU per job by about a fifth (``benchmarks/README.md``). What the daemon gives up
is running native work (granian's HTTP handling, SQLite and system calls with the lock released)
beside its Python code.

On Linux a CPU mask belongs to a thread and is inherited by the threads and processes it creates.
So :func:`pin` runs in the main thread before any other thread exists, and a thread that starts
job processes widens its own mask around each start (:func:`unpinned`): a job, and everything it
starts, may use every CPU the daemon itself was started with (a systemd ``CPUAffinity=`` still
applies to both).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from .errors import ConfigError

log = logging.getLogger(__name__)

#: every CPU the daemon was started with, once :func:`pin` has narrowed its own threads' mask
_started_with: frozenset[int] | None = None


def parse_cpus(value) -> str | tuple[int, ...]:
    """The ``daemon_cpus`` setting: "auto", "off", or CPU numbers ("3", "2,3", "0-1,4"). YAML reads a bare
    ``off`` as false (and ``on`` as true): those mean off and auto."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    text = str(value).strip().lower()
    if text in ("auto", "off"):
        return text
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"expected auto, off or CPU numbers such as 3, 2,3 or 0-1 (got {value!r})")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"empty CPU range {part.strip()!r}")
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def choose(setting: str | tuple[int, ...], allowed: set[int]) -> set[int] | None:
    """The CPUs the daemon's threads get, or None to leave them as they are."""
    if setting == "off":
        return None
    if setting == "auto":
        # one CPU, the highest: the first CPUs tend to take more of the machine's interrupts
        return {max(allowed)} if len(allowed) > 1 else None
    wanted = set(setting)
    outside = wanted - allowed
    if outside:
        raise ConfigError(f"daemon_cpus: CPU(s) {', '.join(map(str, sorted(outside)))} are not among the CPUs this "
                          f"process may use ({', '.join(map(str, sorted(allowed)))})")
    return None if wanted == allowed else wanted


def pin(setting: str | tuple[int, ...]) -> set[int] | None:
    """Narrow the calling thread's CPU mask (call it in the main thread before any other thread is
    started; every later thread and process inherits it). Returns the CPUs, or None when unchanged."""
    global _started_with
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    cpus = choose(setting, allowed)
    if cpus is None:
        return None
    os.sched_setaffinity(0, cpus)
    _started_with = frozenset(allowed)
    log.info("daemon threads on CPU %s of %s (daemon_cpus: %s); jobs get all of them",
             ",".join(map(str, sorted(cpus))), ",".join(map(str, sorted(allowed))),
             setting if isinstance(setting, str) else ",".join(map(str, setting)))
    return cpus


@contextmanager
def unpinned() -> Iterator[None]:
    """The calling thread runs with every CPU the daemon was started with inside the block, so that a
    process it starts there inherits them all; its own mask is restored afterwards."""
    if _started_with is None:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _started_with)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
