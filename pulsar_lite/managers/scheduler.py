"""The scheduler-manager base, shared by every cluster manager (queued_cli, queued_condor, queued_drmaa).

A cluster manager hands job scripts to a batch scheduler and follows them there. This module does all
of that but talking to the scheduler, which a subclass does in five small methods (``submit_job``,
``query``, ``history``, ``delete_job``, ``find_submitted``; what they exchange is in ``contract.py``). What
it promises, for every scheduler:

* **Submission** runs on a small bounded pool (``submit_concurrency``), never on a request thread. Before
  the scheduler's submit command the intent is recorded in the store (the job's ``external_id`` becomes
  ``submitting:<job name>``); after it, the scheduler's id, through the ``submitted`` hook, under the
  job's lock. Only a clear refusal fails the job: a submission whose outcome is unknown (a timeout, a
  dropped connection), or a daemon killed between intent and id, is looked up by the job's name before
  anything is sent again: neither lost nor submitted twice (``submitting.py``, ``lookup.py``).
* **One status query per interval** (``min_polling_interval``, default 2 s) for all of the manager's jobs,
  from one thread per manager. Clients' status requests are answered from the store, never from here.
  Jobs that left the queue are looked up in the scheduler's record of finished jobs (one more query, only
  for those), and their exit code is read from the ``return_code`` file the job script writes. A file not
  visible yet (NFS caches attributes and "no such file" answers) is waited for: the job directory is read
  afresh and the file looked for again at each poll, for ``return_code_grace`` seconds (30 by default).
  After that the scheduler's own exit code decides where it has one (Slurm's ``COMPLETED`` with ``0:0``);
  a job the scheduler no longer knows, or that it ended without an exit code, is ``failed`` with a message
  saying so. A scheduler-side end (time limit, memory, node failure, a delete behind the daemon's back,
  preemption) is ``failed`` with the scheduler's reason. Nothing is ever guessed ``complete``.
* **Cancel** in every state: the delete command runs on the submission pool (never under the job's lock),
  one at a time per job, and is repeated every ``DELETE_RETRY`` seconds until the scheduler has let the
  job go.
* **Recovery**: at start-up every queued or running job is re-attached by its stored external id, before
  the status loop starts (``start_monitoring``); a periodic reconcile pass compares the store with the
  jobs followed here.
"""
from __future__ import annotations

import logging
import os
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .. import wire
from ..inflight import InFlight
from ..logs import job_context
from ..store import JobRecord
from .base import Manager
from .contract import Observed, SchedulerError, Submission
from .following import Following
from .lookup import Lookup, LookingUp
from .submitting import SUBMITTING, Submitting, Tracked

__all__ = ["SchedulerManager"]

log = logging.getLogger(__name__)

DEFAULT_POLLING_INTERVAL = 2.0
#: status_time_budget spaces the rounds only from this many jobs followed on
BUDGET_FROM_JOBS = 100
#: seconds an ended job's return_code file is waited for (filesystem lag: NFS caches for up to 60 s, but a
#: fresh read of the directory ends most of that)
DEFAULT_RETURN_CODE_GRACE = 30.0


class SchedulerManager(Following, Submitting, LookingUp, Manager):
    """Base class of cluster managers; subclasses talk to one scheduler."""

    #: the scheduler's name in messages ("Slurm", "HTCondor", ...)
    scheduler = "the scheduler"
    #: seconds a held job is left held for an operator to release it, when held_job_grace is not set
    DEFAULT_HELD_JOB_GRACE = 3600.0

    def __init__(self, config, hooks, timers):
        super().__init__(config, hooks, timers)
        interval = config.values.get("min_polling_interval")
        self.interval = max(float(interval if interval is not None else DEFAULT_POLLING_INTERVAL), 0.05)
        self.failure_timeout = float(config.values.get("scheduler_failure_timeout") or 3600)
        self.reconcile_interval = max(float(config.values.get("reconcile_interval") or 60), self.interval)
        budget = config.values.get("status_time_budget")
        self.time_budget = min(max(float(budget if budget is not None else 0.05), 0.001), 1.0)
        window = config.values.get("unknown_outcome_window")
        self.unknown_outcome_window = max(float(window if window is not None else 120.0), 0.0)
        held = config.values.get("held_job_grace")
        self.held_job_grace = max(float(held if held is not None else self.DEFAULT_HELD_JOB_GRACE), 0.0)
        grace = config.values.get("return_code_grace")
        self.return_code_grace = max(float(grace if grace is not None else DEFAULT_RETURN_CODE_GRACE), 0.0)
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(config.values.get("submit_concurrency") or 2)),
                                        thread_name_prefix=f"{self.name}-submit")
        self._tracked: dict[str, Tracked] = {}  # job id -> the job's run in the scheduler
        #: earlier runs of a job id set up afresh (or second copies) that the scheduler has not let go yet: still
        #: deleted until it does, though ``_tracked`` follows the job id's new run
        self._leftovers: list[Tracked] = []
        self._submitting = InFlight()  # job ids a submission is working on (claimed or about to be)
        self._looking: dict[str, Lookup] = {}  # job id -> the search for its submission, whose outcome is unknown
        self._tries: dict[tuple[str, float], int] = {}  # (job id, generation) -> submissions with unknown outcome
        #: (job id, generation) -> (since when, next pause): submissions waiting for a scheduler out of reach
        self._down: dict[tuple[str, float], tuple[float, float]] = {}
        #: why the last submission could not reach the scheduler (None once one has)
        self.down_error: str | None = None
        self._query_error: str | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        self._last_reconcile = time.monotonic()
        #: counters for tests and metrics: scheduler queries made, and the time the last one took
        self.queries = 0
        self.last_query_seconds = 0.0

    # -- what a subclass implements ----------------------------------------------------------------
    def submit_job(self, submission: Submission) -> str:
        """Submit the job; return the scheduler's id. Raise SchedulerError."""
        raise NotImplementedError

    def query(self, external_ids: list[str]) -> dict[str, Observed]:
        """One scheduler query about all of these jobs; a job the answer leaves out has left the queue.
        Raise SchedulerError when the scheduler cannot answer."""
        raise NotImplementedError

    def history(self, external_ids: list[str]) -> dict[str, Observed]:
        """What the scheduler's record of finished jobs says of these (which left the queue); {} when it
        keeps none."""
        return {}

    def delete_job(self, external_id: str) -> None:
        """Remove the job from the scheduler (queued or running). Raise SchedulerError."""
        raise NotImplementedError

    def find_submitted(self, name: str, since: float) -> list[str]:
        """Ids of this daemon's user's jobs named ``name`` submitted at or after ``since`` (epoch seconds), live
        or finished, the one to keep first (one that started, else the oldest)."""
        return []

    def script_headers(self, job_id: str, job_directory: str, launch: dict) -> str:
        """Lines placed right after the job script's ``#!`` line (e.g. ``#SBATCH`` directives)."""
        return ""

    # -- names and files ----------------------------------------------------------------------------
    def job_name(self, job_id: str) -> str:
        """``job_name_template`` with ``$job_id``, ``$manager`` and ``$generation`` (the job's run: its setup
        time in milliseconds), by which a submission whose outcome is unknown is looked for."""
        template = self.config.values.get("job_name_template") or "pulsar_$job_id"
        values = {"job_id": job_id, "manager": self.name}
        if "generation" in template:
            record = self.hooks.record(self.name, job_id)
            values["generation"] = f"{record.created * 1000:.0f}" if record is not None else "0"
        return string.Template(template).safe_substitute(values)

    def submission(self, job_id: str, launch: dict) -> Submission:
        job_dir = self.hooks.job_directory(self.name, job_id)
        return Submission(job_id=job_id, name=self.job_name(job_id), job_directory=job_dir.path,
                          script=os.path.join(job_dir.path, "command.sh"),
                          stdout=os.path.join(job_dir.metadata, "job_stdout"),
                          stderr=os.path.join(job_dir.metadata, "job_stderr"), launch=launch)

    def _return_code(self, job_id: str, refresh: bool = False) -> int | None:
        job_dir = self.hooks.job_directory(self.name, job_id)
        if refresh:  # a fresh read of the directory: an NFS client drops its cached "no such file" for it
            try:
                os.listdir(job_dir.path)
            except OSError:
                pass
        return job_dir.return_code()

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Before recovery: nothing runs yet (the status loop starts in start_monitoring)."""

    def start_monitoring(self) -> None:
        """After recovery re-attached every job: the status loop starts."""
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the manager contract ---------------------------------------------------------------------------
    def launch(self, job_id: str) -> None:
        self._pool.submit(self._submit, job_id)

    def kill(self, record: JobRecord) -> None:
        """Called under the job's lock: only note the wish; the delete runs on the pool."""
        with self._lock:
            tracked = self._tracked.get(record.job_id)
            if tracked is None or tracked.generation != record.created:
                tracked = None
                if record.external_id and not record.external_id.startswith(SUBMITTING):
                    tracked = Tracked(record.job_id, record.created, record.external_id,
                                      started=record.state == wire.State.RUNNING)
                    self._replace_locked(tracked)
            if tracked is not None:
                tracked.cancel = True
        # a job still being submitted (no id yet) is deleted by its submitter: the submitted hook refuses it
        if tracked is not None:
            self._request_delete(tracked)

    def recover(self, record: JobRecord) -> None:
        external_id = record.external_id
        if not external_id:
            log.info("job %s [%s]: never reached %s; submitting it now", record.job_id, self.name, self.scheduler)
            self.hooks.requeue(self.name, record.job_id, generation=record.created)
        elif external_id.startswith(SUBMITTING):
            self._pool.submit(self._find_lost_submission, record)
        else:
            log.info("job %s [%s]: re-attached to %s job %s", record.job_id, self.name, self.scheduler,
                     external_id)
            self._track(Tracked(record.job_id, record.created, external_id,
                                started=record.state == wire.State.RUNNING, cancel=record.cancel_requested))

    def may_write(self, job_id: str) -> bool:
        """Until the scheduler has let the job go (it is followed until then, cancelled or not)."""
        with self._lock:
            return job_id in self._tracked or job_id in self._looking or job_id in self._submitting \
                or any(t.job_id == job_id for t in self._leftovers)

    def _request_delete(self, tracked: Tracked) -> None:
        with self._lock:
            if tracked.deleting:
                return
            tracked.deleting = True
        self._pool.submit(self._delete, tracked)

    def _delete(self, tracked: Tracked) -> None:
        try:
            with self._lock:
                if not self._followed_locked(tracked):
                    return  # it ended while the delete waited for the pool
            self.delete_job(tracked.external_id)
            log.info("job %s [%s]: deleted %s job %s", tracked.job_id, self.name, self.scheduler, tracked.external_id)
        except SchedulerError as exc:
            log.warning("job %s [%s]: deleting %s job %s failed (tried again while it is listed): %s", tracked.job_id,
                        self.name, self.scheduler, tracked.external_id, exc)
        finally:
            tracked.last_delete = time.monotonic()
            tracked.deleting = False

    # -- following jobs ---------------------------------------------------------------------------------------
    def _track(self, tracked: Tracked) -> None:
        """Follow ``tracked``; the same run of the job followed already keeps its entry (a cancel noted there,
        and the delete it asked for, are never replaced by a copy that knows less)."""
        with self._lock:
            known = self._tracked.get(tracked.job_id)
            if known is not None and known.generation == tracked.generation \
                    and known.external_id == tracked.external_id:
                known.cancel = known.cancel or tracked.cancel
                known.started = known.started or tracked.started
                return
            self._replace_locked(tracked)

    def _replace_locked(self, tracked: Tracked) -> None:
        """``tracked`` becomes the job id's run followed here; one it replaces that is being deleted (an earlier
        run given up or cancelled, whose job id was set up afresh) stays followed, and deleted, until the
        scheduler lets it go: released later, it would run into the new run's directory."""
        known = self._tracked.get(tracked.job_id)
        if known is not None and known is not tracked and known.cancel \
                and not any(t is known for t in self._leftovers):
            log.warning("job %s [%s]: %s job %s of an earlier run is still deleted while %s follows the new run",
                        tracked.job_id, self.name, self.scheduler, known.external_id, tracked.external_id)
            self._leftovers.append(known)
        self._tracked[tracked.job_id] = tracked

    def _followed_locked(self, tracked: Tracked) -> bool:
        return self._tracked.get(tracked.job_id) is tracked or any(t is tracked for t in self._leftovers)

    def unreachable(self) -> str | None:
        """Why the scheduler cannot be reached now (for /readyz and doctor), or None."""
        with self._lock:
            waiting = len(self._down)
        # each read once: the status loop and the submissions change them meanwhile (no lock of theirs)
        failing_since, query_error, down_error = self._failing_since, self._query_error, self.down_error
        if failing_since is not None and query_error:
            return (f"{self.scheduler} has not answered status queries for {time.monotonic() - failing_since:.0f}"
                    f" s: {query_error}")
        if waiting and down_error:
            return f"{self.scheduler} cannot be reached; {waiting} job(s) wait to be submitted: {down_error}"
        return None

    def pending_deletes(self) -> int:
        """Jobs ended here (cancelled, given up) that the scheduler has not let go yet (for metrics)."""
        with self._lock:
            return sum(1 for t in self._tracked.values() if t.cancel) + len(self._leftovers)

    def held_jobs(self) -> int:
        """Jobs the scheduler holds, waiting for an operator within held_job_grace (for metrics)."""
        with self._lock:
            return sum(1 for t in self._tracked.values() if t.held_at is not None and not t.cancel)

    def followed(self) -> int:
        with self._lock:
            return len(self._tracked) + len(self._leftovers)

    def tracked_ids(self) -> list[str]:
        with self._lock:
            return [t.external_id for t in (*self._tracked.values(), *self._leftovers)]

    def _loop(self) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self.poll()
                if began - self._last_reconcile >= self.reconcile_interval:
                    self._last_reconcile = began
                    self.reconcile()
            except Exception:
                log.exception("[%s] status loop", self.name)
            took = time.monotonic() - began
            # with many jobs (a big site) a round that takes long pushes the next one back: the loop and the
            # scheduler's status commands keep to status_time_budget of the time. A few jobs are asked about at
            # every interval whatever a slow scheduler makes a round cost (a short job's start is not missed)
            spaced = took / self.time_budget if self.followed() >= BUDGET_FROM_JOBS else 0.0
            self._stopping.wait(max(self.interval, spaced) - took)

    def poll(self) -> None:
        """One round: one query for every job followed, then act on what changed."""
        with self._lock:
            jobs = [*self._tracked.values(), *self._leftovers]
        if not jobs:
            return
        began = time.monotonic()
        metrics = getattr(self.hooks, "metrics", None)
        try:
            observed = self.query([t.external_id for t in jobs])
        except Exception as exc:
            if not isinstance(exc, SchedulerError):  # a defect, but never a reason for jobs to stay stuck
                log.exception("[%s] status query", self.name)
                exc = SchedulerError(f"{type(exc).__name__}: {exc}")
            if metrics is not None:
                metrics.poll_errors.labels(self.name).inc()
            self._query_failed(jobs, exc)
            return
        finally:
            self.queries += 1
            self.last_query_seconds = time.monotonic() - began
            if metrics is not None:
                metrics.poll_seconds.labels(self.name).observe(self.last_query_seconds)
            log.debug("[%s] status query for %d job(s) in %.3f s", self.name, len(jobs), self.last_query_seconds)
        self._failing_since = self._query_error = None
        for tracked in [t for t in jobs if t.external_id not in observed and t.cancel]:
            jobs.remove(tracked)  # cancelled and let go by the scheduler: done, whatever its record says
            self._end(tracked, self._return_code(tracked.job_id), None)
        left = [t for t in jobs if t.external_id not in observed]
        if left:
            try:
                observed.update(self.history([t.external_id for t in left]))
            except SchedulerError as exc:
                log.warning("[%s] %s's record of finished jobs cannot be read: %s", self.name, self.scheduler, exc)
        for tracked in jobs:
            with job_context(self.name, tracked.job_id):
                seen = observed.get(tracked.external_id)
                if tracked in left and seen is not None and seen.phase in (Observed.QUEUED, Observed.RUNNING,
                                                                           Observed.HELD):
                    self._runaway(tracked, seen)  # the queue forgot it; its record of finished jobs did not
                else:
                    self._follow(tracked, seen)

    def reconcile(self) -> None:
        """Compare the store with the jobs followed here: adopt a queued or running job nobody follows (it has
        an external id), forget one the store no longer holds as active. Not while the start's recovery is
        still re-attaching jobs: it would find them not followed yet."""
        if not self.hooks.recovered():
            return
        records = {r.job_id: r for r in self.hooks.active_jobs(self.name)}
        with self._lock:
            followed = dict(self._tracked)
        for job_id, tracked in followed.items():
            record = records.get(job_id)
            if tracked.cancel:
                continue  # followed until the scheduler has let it go, whatever the store says now
            if record is None or record.created != tracked.generation or record.terminal:
                with self._lock:
                    if self._tracked.get(job_id) is tracked:
                        del self._tracked[job_id]
        for job_id, record in records.items():
            if job_id in followed or record.state not in (wire.State.QUEUED, wire.State.RUNNING):
                continue
            if record.external_id and not record.external_id.startswith(SUBMITTING):
                log.warning("job %s [%s]: followed again (reconcile)", job_id, self.name)
                self.recover(record)
