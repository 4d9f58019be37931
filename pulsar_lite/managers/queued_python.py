"""``queued_python``: run job scripts on this host, ``num_concurrent_jobs`` at a time.

A fixed pool of worker threads takes job ids from a FIFO queue. Each job runs
in its own session (process group) so a cancel kills the whole tree, and so
that a running job survives a daemon restart: at start-up such jobs are
adopted (their exit code is read from ``return_code`` when they end).
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading

from .. import affinity
from ..inflight import InFlight
from ..logs import job_context
from ..store import JobRecord
from .base import Manager

log = logging.getLogger(__name__)


def clean_environment() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
    for key in ("HOME", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    ctype = os.environ.get("LC_CTYPE", "")
    env["LC_CTYPE"] = ctype if "UTF-8" in ctype.upper() or "UTF8" in ctype.upper() else "C.UTF-8"
    return env


def _process(pid: int) -> tuple[bytes, bytes]:
    """(state letter, command line) of process ``pid`` from /proc; OSError when there is none."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        cmdline = handle.read()
    if not fields:
        raise OSError(f"unreadable /proc/{pid}/stat")
    return fields[0], cmdline


def process_matches(pid: int, script: str) -> bool:
    """True when ``pid`` is alive and is the job script (guards against pid reuse)."""
    try:
        state, cmdline = _process(pid)
    except OSError:
        return False
    return state != b"Z" and script.encode() in cmdline


def group_is_the_jobs(pid: int, script: str) -> bool:
    """Whether signalling process group ``pid`` reaches the job (started with ``script`` as its group leader)
    and nobody else: the leader is the job script, or has ended (a zombie, or gone: Linux does not hand out a
    pid again while a process group still carries it, so what is left of the group is the job's). False when
    ``pid`` now belongs to another program (after a reboot, or once the job's whole group had ended)."""
    try:
        state, cmdline = _process(pid)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return state == b"Z" or script.encode() in cmdline


def group_alive(pgid: int) -> bool:
    """Whether a process group ``pgid`` still has a member (a job's leftover children after its script ended)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class QueuedPythonManager(Manager):
    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.num_workers = int(config.num_concurrent_jobs)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(self.num_workers)
        #: job id -> (pid, generation) of every job script this daemon follows (own children and adopted)
        self._running: dict[str, tuple[int, float]] = {}
        #: job ids a worker is starting (claimed or about to be, no pid yet)
        self._starting = InFlight()
        #: job id -> (process group, generation) of jobs whose script ended while processes it started live on
        self._lingering: dict[str, tuple[int, float]] = {}
        self._adopted: dict[str, tuple[int, bool, float]] = {}  # job id -> (pid, holds a slot, generation)
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        for index in range(self.num_workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-worker-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for _ in self._workers:
            self._queue.put(None)

    # contract ----------------------------------------------------------------
    def launch(self, job_id: str) -> None:
        self._queue.put(job_id)

    def script(self, job_id: str) -> str:
        return os.path.join(self.hooks.job_directory(self.name, job_id).path, "command.sh")

    def kill(self, record: JobRecord) -> None:
        """SIGTERM to the job's process group, SIGKILL ``kill_grace_period`` later; only to a process that is
        the job's (a stored pid may be another program's after a reboot). Also what is left of a job whose
        script has ended, and a job whose start was never recorded (found by the pid file its script wrote)."""
        script = self.script(record.job_id)
        with self._lock:
            followed = self._running.get(record.job_id) or self._lingering.get(record.job_id)
        if followed is not None and followed[1] == record.created:
            pid = followed[0]
        else:
            pid = next((p for p in (record.pid, self._pid_file(record.job_id)) if p and process_matches(p, script)),
                       None)
            if pid is None:
                return
        self._signal_job(pid, script, signal.SIGTERM)
        grace = float(self.config.kill_grace_period)
        self.timers.call_later(grace, lambda: self._signal_job(pid, script, signal.SIGKILL))

    def may_write(self, job_id: str) -> bool:
        """While its script runs, while it is being started, while processes it left behind live on, and while
        the pid file its script wrote names a live job script (a start that was never recorded)."""
        if job_id in self._starting:
            return True
        with self._lock:
            if job_id in self._running or job_id in self._lingering:
                return True
        pid = self._pid_file(job_id)
        return pid is not None and process_matches(pid, self.script(job_id))

    def _pid_file(self, job_id: str) -> int | None:
        text = self.hooks.job_directory(self.name, job_id).read_text("pid", limit=32)
        return int(text.strip()) if text and text.strip().isdigit() else None

    def recover(self, record: JobRecord) -> None:
        job_dir = self.hooks.job_directory(self.name, record.job_id)
        script = os.path.join(job_dir.path, "command.sh")
        pid = record.pid
        pid_text = job_dir.read_text("pid", limit=32)
        if pid_text and pid_text.strip().isdigit():
            pid = int(pid_text.strip())
        if pid and process_matches(pid, script):
            log.info("job %s: adopting process %s that survived a restart", record.job_id, pid)
            self.hooks.adopted(self.name, record.job_id, record.created)
            self._adopt(record.job_id, pid, record.created)
            if record.cancel_requested:  # cancelled before the restart: its kill may not have been sent
                self.kill(record)
            return
        return_code = job_dir.read_text("return_code", limit=64)
        if return_code is not None:
            try:
                code = int(return_code.strip())
            except ValueError:
                code = None
            self.hooks.finished(self.name, record.job_id, code, generation=record.created)
        elif pid_text:
            self.hooks.finished(self.name, record.job_id, None,
                                message="the job process ended while pulsar_lite was not running "
                                        "and recorded no exit code", generation=record.created)
        elif record.state == "queued" and not record.cancel_requested:
            self.launch(record.job_id)  # never started: back in the queue, nothing to write
        else:
            self.hooks.requeue(self.name, record.job_id, generation=record.created)

    # workers -----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._slots.acquire()
            try:
                with job_context(self.name, job_id):
                    self._run(job_id)
            except Exception:  # a defect: said, and the worker goes on with the next job
                log.exception("job %s: the worker failed", job_id)
            finally:
                self._slots.release()

    def _run(self, job_id: str) -> None:
        with self._starting.holding(job_id):  # from now on its directory is not handed to another job
            generation = self.hooks.claim(self.name, job_id)
            if generation is None:
                return  # cancelled, cleaned or started by another worker while it waited in the queue
            job_dir = self.hooks.job_directory(self.name, job_id)
            try:
                process = self._start(job_dir)
            except Exception as exc:
                self.hooks.finished(self.name, job_id, None, message=f"could not start the job script: {exc}",
                                    generation=generation)
                return
            with self._lock:
                self._running[job_id] = (process.pid, generation)
        # the process exists: from here on it is waited for and its own end reported, whatever else happens
        try:
            try:
                keep = self.hooks.started(self.name, job_id, pid=process.pid, generation=generation)
            except Exception:
                log.exception("job %s: its start could not be reported", job_id)
                keep = True
            if not keep:  # cancelled, cleaned or set up afresh meanwhile
                self._signal_job(process.pid, process.args[1], signal.SIGKILL)
            returncode = process.wait()
        finally:
            self._ended(job_id, process.pid, generation)
        self.hooks.finished(self.name, job_id, self._exit_code(job_dir, returncode), generation=generation)

    def _ended(self, job_id: str, pid: int, generation: float) -> None:
        """The job's script has ended: forget it, or follow what it left running in its process group (its
        directory is not handed on while that lives)."""
        lingering = group_alive(pid)
        with self._lock:
            if self._running.get(job_id, (None, None))[1] == generation:
                del self._running[job_id]
            if lingering:
                self._lingering[job_id] = (pid, generation)
                self._ensure_watcher()

    def _start(self, job_dir) -> subprocess.Popen:
        script = os.path.join(job_dir.path, "command.sh")
        with open(os.path.join(job_dir.metadata, "job_stdout"), "wb") as out, \
                open(os.path.join(job_dir.metadata, "job_stderr"), "wb") as err:
            with affinity.unpinned():  # the job and what it starts get every CPU, not the daemon's one
                return subprocess.Popen(
                    ["/bin/bash", script], cwd=job_dir.working, env=clean_environment(),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, close_fds=True)

    @staticmethod
    def _exit_code(job_dir, returncode: int) -> int:
        if returncode < 0:  # killed by a signal: report that, as Pulsar does (-9)
            return returncode
        code = job_dir.return_code()
        return code if code is not None else returncode

    # adopted and lingering processes ----------------------------------------
    def _adopt(self, job_id: str, pid: int, generation: float) -> None:
        holds_slot = self._slots.acquire(blocking=False)
        with self._lock:
            self._adopted[job_id] = (pid, holds_slot, generation)
            self._running[job_id] = (pid, generation)
            self._ensure_watcher()

    def _ensure_watcher(self) -> None:
        """Under self._lock: one thread follows adopted scripts and lingering process groups while there are any."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name=f"{self.name}-watcher", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        interval = max(float(self.config.min_polling_interval or 0.5), 0.05)
        while not self._stopping.wait(interval):
            with self._lock:
                adopted = list(self._adopted.items())
                lingering = list(self._lingering.items())
            for job_id, (pid, holds_slot, generation) in adopted:
                try:
                    self._check_adopted(job_id, pid, holds_slot, generation)
                except Exception:  # a defect: said; the watcher goes on (the job is looked at again)
                    log.exception("job %s: following the adopted process %s failed", job_id, pid)
            for job_id, (pgid, generation) in lingering:
                if not group_alive(pgid):
                    with self._lock:
                        if self._lingering.get(job_id) == (pgid, generation):
                            del self._lingering[job_id]
            with self._lock:
                if not self._adopted and not self._lingering:
                    self._watcher = None
                    return

    def _check_adopted(self, job_id: str, pid: int, holds_slot: bool, generation: float) -> None:
        if process_matches(pid, self.script(job_id)):
            return
        code = self.hooks.job_directory(self.name, job_id).return_code()
        message = None if code is not None else "the adopted job process ended without recording an exit code"
        with self._lock:
            self._adopted.pop(job_id, None)
            if holds_slot:
                self._slots.release()
        self._ended(job_id, pid, generation)
        try:
            self.hooks.finished(self.name, job_id, code, message=message, generation=generation)
        except Exception:
            with self._lock:  # looked at again next round: never left running for good
                self._adopted[job_id] = (pid, False, generation)
                self._running[job_id] = (pid, generation)
            raise

    @staticmethod
    def _signal_job(pid: int, script: str, sig: int) -> None:
        """Signal the job's process group, unless ``pid`` has become another program's meanwhile."""
        if not group_is_the_jobs(pid, script):
            log.info("not signalling process group %s: it is no longer the job's", pid)
            return
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
