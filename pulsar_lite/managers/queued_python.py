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


def process_matches(pid: int, script: str) -> bool:
    """True when ``pid`` is alive and is the job script (guards against pid reuse)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z" and script.encode() in cmdline


class QueuedPythonManager(Manager):
    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        self.num_workers = int(config.num_concurrent_jobs)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(self.num_workers)
        self._running: dict[str, int] = {}  # job id -> pid (own children and adopted)
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

    def kill(self, record: JobRecord) -> None:
        with self._lock:
            pid = self._running.get(record.job_id) or record.pid
        if not pid:
            return
        self._signal(pid, signal.SIGTERM)
        grace = float(self.config.kill_grace_period)
        self.timers.call_later(grace, lambda: self._signal(pid, signal.SIGKILL))

    def recover(self, record: JobRecord) -> None:
        job_dir = self.hooks.job_directory(self.name, record.job_id)
        script = os.path.join(job_dir.path, "command.sh")
        pid = record.pid
        pid_text = job_dir.read_text("pid", limit=32)
        if pid_text and pid_text.strip().isdigit():
            pid = int(pid_text.strip())
        if pid and process_matches(pid, script):
            log.info("job %s: adopting process %s that survived a restart", record.job_id, pid)
            self._adopt(record.job_id, pid, record.created)
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
        elif record.state == "queued":
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
            except Exception as exc:  # never lose the worker; report the job as failed
                log.exception("job %s: could not be run", job_id)
                self.hooks.finished(self.name, job_id, None, message=f"could not start the job: {exc}")
            finally:
                self._slots.release()

    def _run(self, job_id: str) -> None:
        generation = self.hooks.runnable(self.name, job_id)
        if generation is None:
            return  # cancelled or cleaned while it waited in the queue
        job_dir = self.hooks.job_directory(self.name, job_id)
        script = os.path.join(job_dir.path, "command.sh")
        metadata = job_dir.metadata
        with open(os.path.join(metadata, "job_stdout"), "wb") as out, \
                open(os.path.join(metadata, "job_stderr"), "wb") as err:
            try:
                with affinity.unpinned():  # the job and what it starts get every CPU, not the daemon's one
                    process = subprocess.Popen(
                        ["/bin/bash", script], cwd=job_dir.working, env=clean_environment(),
                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, close_fds=True)
            except OSError as exc:
                self.hooks.finished(self.name, job_id, None, message=f"could not start the job script: {exc}",
                                    generation=generation)
                return
        with self._lock:
            self._running[job_id] = process.pid
        try:
            if not self.hooks.started(self.name, job_id, pid=process.pid, generation=generation):
                self._signal(process.pid, signal.SIGKILL)  # cancelled, cleaned or set up afresh meanwhile
            returncode = process.wait()
        finally:
            with self._lock:
                self._running.pop(job_id, None)
        self.hooks.finished(self.name, job_id, self._exit_code(job_dir, returncode), generation=generation)

    @staticmethod
    def _exit_code(job_dir, returncode: int) -> int:
        if returncode < 0:  # killed by a signal: report that, as Pulsar does (-9)
            return returncode
        text = job_dir.read_text("return_code", limit=64)
        try:
            return int(text.strip()) if text is not None else returncode
        except ValueError:
            return returncode

    # adoption ----------------------------------------------------------------
    def _adopt(self, job_id: str, pid: int, generation: float) -> None:
        holds_slot = self._slots.acquire(blocking=False)
        with self._lock:
            self._adopted[job_id] = (pid, holds_slot, generation)
            self._running[job_id] = pid
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch_adopted, name=f"{self.name}-adopted",
                                                 daemon=True)
                self._watcher.start()

    def _watch_adopted(self) -> None:
        interval = max(float(self.config.min_polling_interval or 0.5), 0.05)
        while not self._stopping.wait(interval):
            with self._lock:
                adopted = list(self._adopted.items())
            for job_id, (pid, holds_slot, generation) in adopted:
                script = os.path.join(self.hooks.job_directory(self.name, job_id).path, "command.sh")
                if process_matches(pid, script):
                    continue
                with self._lock:
                    self._adopted.pop(job_id, None)
                    self._running.pop(job_id, None)
                if holds_slot:
                    self._slots.release()
                job_dir = self.hooks.job_directory(self.name, job_id)
                text = job_dir.read_text("return_code", limit=64)
                try:
                    code = int(text.strip()) if text is not None else None
                except ValueError:
                    code = None
                message = None if code is not None else "the adopted job process ended without recording an exit code"
                self.hooks.finished(self.name, job_id, code, message=message, generation=generation)
            with self._lock:
                if not self._adopted:
                    self._watcher = None
                    return

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
