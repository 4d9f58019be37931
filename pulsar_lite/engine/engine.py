"""The job engine: one lifecycle for every transport.

``preprocessing -> queued -> running -> postprocessing -> complete | failed``
(``cancelled`` and ``lost`` from anywhere before postprocessing). Each move is
one transaction in the store; listeners get an event after it commits.
Transports (REST, AMQP) call the public methods; managers call the hooks.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .. import fsutil, wire
from ..config import AppConfig, ManagerConfig
from ..errors import BadRequest, NotFound, StoreUnavailable
from ..inflight import InFlight
from ..logs import for_job, job_context
from ..managers import manager_class
from ..staging import ssh_copy
from ..store import IllegalTransition, JobRecord, Store
from . import script as job_script
from .deferred import Deferred
from .deps import DependencyResolver
from .dirpool import DirectoryPool
from .files import JobFiles
from .hooks import ManagerHooks
from .jobdir import JobDirectory, check_job_id
from .live_output import LiveOutput
from .phases import StagingPhases
from .recovery import Recovery
from .retention import SWEPT_STATES, RetentionSweeper
from .status import FinishedStatuses, job_config, status_payload
from .timers import Timers

log = logging.getLogger(__name__)

ACTIVE = wire.ACTIVE_STATES
Listener = Callable[[str, str, str], None]  # (manager, job_id, new state)


class JobEngine(JobFiles, ManagerHooks, StagingPhases):
    def __init__(self, config: AppConfig):
        self.config = config
        self.store = Store(config.store_path, synchronous=config.store_synchronous,
                           busy_timeout=config.store_busy_timeout)
        #: pushed files on disk before they count as uploaded, as the submit commit that follows them is
        #: (store_synchronous "full": what a job reads survives a power cut as its record does)
        self.durable_files = config.store_synchronous == "full"
        self.timers = Timers()
        #: what managers reported while the store could not be written, recorded once it can
        self.deferred = Deferred(self.store)
        #: (manager, job id, generation) of every job a worker or submission has taken to start (hooks.claim)
        self._claims: set[tuple[str, str, float]] = set()
        #: (manager, job id) of the jobs a staging phase runs for (its transfers write into the job's directory)
        self._staging = InFlight()
        ssh_copy.configure(config.ssh_known_hosts, config.ssh_strict_host_key_checking)
        self.staging_pool = ThreadPoolExecutor(max_workers=max(1, config.staging_concurrency),
                                               thread_name_prefix="pulsar-lite-staging")
        self.deps = DependencyResolver(config.tool_dependency_dir, config.dependency_resolution,
                                       config.dependency_resolvers_config_file, config.passthrough)
        self.manager_configs: dict[str, ManagerConfig] = dict(config.managers)
        self.managers = {
            name: manager_class(mc.type, name)(mc, self, self.timers) for name, mc in self.manager_configs.items()
        }
        self.directory_pools = {
            staging: DirectoryPool(staging, size=config.recycled_job_directories)
            for staging in {mc.staging_directory for mc in self.manager_configs.values()}
        }
        self._locks = [threading.RLock() for _ in range(64)]
        self._listeners: list[Listener] = []
        self._finished_statuses = FinishedStatuses()
        self.started_up = False
        self.stopped = False
        self.amqp = None  # the AMQP face, when one is running (set by server start-up)
        #: stagers other faces register before start (name -> object with needs_preprocessing, stages_out,
        #: stage_in, stage_out), named by a job's launch config "stager"
        self.stagers: dict = {}
        #: called with a job's record, under its lock, before retention removes it (faces keep what they need:
        #: the TES face its task's record)
        self.expiring: list[Callable[[JobRecord], None]] = []
        #: set when the engine stops: staging transfers in flight abort, keeping what they have for a resume
        self.stopping = threading.Event()
        #: pulsar_lite.metrics.Metrics, when start-up made one
        self.metrics = None
        #: False: start() returns only once every job held is recovered (tests that restart an engine)
        self.background_recovery = True
        self.recovery: Recovery | None = None
        #: live tool output (send_stdout_update), when it is on
        self.live_output: LiveOutput | None = None

    # -- lifecycle --------------------------------------------------------
    def start(self) -> None:
        for manager_config in self.manager_configs.values():
            partial = os.path.join(manager_config.staging_directory, ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            os.makedirs(partial, exist_ok=True)
        for pool in self.directory_pools.values():
            pool.reset()
        for manager in self.managers.values():
            manager.start()
        # the jobs held are brought to their true state in the background (engine/recovery.py); status loops
        # follow whatever is re-attached, each job whole (its external id with it), so they may start at once
        self.recovery = Recovery(self)
        self.recovery.start(background=self.background_recovery)
        for manager in self.managers.values():
            manager.start_monitoring()
        if self.config.job_retention is not None:
            RetentionSweeper(self, self.config.job_retention).start()
        if self.config.send_stdout_update:
            self.live_output = LiveOutput(self, self.config.stdout_update_interval, self.config.stdout_update_timeout,
                                          self.config.stdout_update_chunk_size)
            self.live_output.start()
        self.started_up = True

    def stop(self) -> None:
        self.stopped = True
        self.deferred.stop()
        self.stopping.set()  # transfers in flight stop (their partial files resume at the next start)
        for manager in self.managers.values():
            manager.stop()
        self.staging_pool.shutdown(wait=False, cancel_futures=True)
        self.timers.stop()
        self.store.close()
        log.info("job engine stopped; running jobs keep running and are adopted at the next start")

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    #: the states recovery brings to their truth (a job in any other state needs nothing at a restart)
    RECOVERED_STATES = ACTIVE

    def recover_job(self, record: JobRecord) -> None:
        """Bring one unfinished job to its true state after a restart (from the recovery thread), under the
        job's lock and from its record as it is now: a user's cancel or clean since the batch was read is seen,
        and nothing the cancel started is replaced by the stale copy. Raises StoreUnavailable (the recovery
        tries the job again once the store can be written)."""
        with job_context(record.manager, record.job_id), self._lock(record.manager, record.job_id):
            fresh = self.store.get(record.manager, record.job_id)
            if fresh is None or fresh.created != record.created or fresh.state not in self.RECOVERED_STATES:
                return  # cancelled, cleaned or set up afresh meanwhile, or already moved on by a hook
            self._recover_job(fresh)

    def _recover_job(self, record: JobRecord) -> None:
        manager = self.managers.get(record.manager)
        if manager is None:
            self._move(record.manager, record.job_id, wire.State.LOST, expect=ACTIVE,
                       message=f"manager '{record.manager}' is no longer configured")
            return
        log.debug("recovering job %s (%s, manager %s)", record.job_id, record.state, record.manager)
        if record.state == wire.State.PREPROCESSING:
            self.staging_pool.submit(self._preprocess, record.manager, record.job_id)
        elif record.state == wire.State.POSTPROCESSING:
            self.staging_pool.submit(self._postprocess, record.manager, record.job_id)
        else:
            try:
                manager.recover(record)
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.exception("job %s: recovery failed", record.job_id)
                self._move(record.manager, record.job_id, wire.State.LOST, expect=ACTIVE,
                           message=f"recovery after restart failed: {exc}")

    def recovered(self) -> bool:
        """Whether every job held at the start has been brought to its true state."""
        return self.recovery is not None and self.recovery.finished.is_set()

    def wait_recovered(self, timeout: float | None = None) -> bool:
        """True once every job held at the start has been brought to its true state."""
        return self.recovery.wait(timeout)

    # -- helpers ----------------------------------------------------------
    def _lock(self, manager: str, job_id: str) -> threading.RLock:
        return self._locks[zlib.crc32(f"{manager}/{job_id}".encode()) % len(self._locks)]

    def manager_config(self, manager: str) -> ManagerConfig:
        try:
            return self.manager_configs[manager]
        except KeyError:
            raise NotFound(f"unknown manager {manager!r}") from None

    def job_directory(self, manager: str, job_id: str) -> JobDirectory:
        staging = self.manager_config(manager).staging_directory
        return JobDirectory(staging, job_id, self.directory_pools[staging])

    def _emit(self, manager: str, job_id: str, state: str) -> None:
        for listener in self._listeners:
            try:
                listener(manager, job_id, state)
            except Exception:
                log.exception("status listener failed")

    def _move(self, manager: str, job_id: str, state: str | tuple[str, ...], expect=None,
              message: str | None = None, durable: bool = True, settled: frozenset = frozenset(),
              **fields) -> JobRecord | None:
        """Commit a transition and publish it; None when the store refuses it. A refusal is expected only
        when the job is in one of the ``settled`` states (None: gone): a user's cancel, clean or new setup
        came first, which is logged at debug level. Any other refusal means an event was lost and is
        logged as a warning naming the job and what was lost."""
        if self.stopped:
            return None  # shutting down: the state is reconciled at the next start
        try:
            record = self.store.transition(manager, job_id, state, expect=expect, message=message,
                                           durable=durable, **fields)
        except IllegalTransition as exc:
            if exc.current in settled:
                log.debug("job %s [%s]: %s not recorded: the job is %s", job_id, manager, state,
                          exc.current or "gone")
            else:
                log.warning("job %s [%s]: the move to %s%s was lost: %s", job_id, manager, state,
                            f" ({message})" if message else "", exc)
            return None
        for step in state if isinstance(state, tuple) else (state,):
            level = logging.INFO if step in wire.TERMINAL_STATES or message else logging.DEBUG
            log.log(level, "job %s [%s] -> %s%s", job_id, manager, step, f" ({message})" if message else "")
            self._emit(manager, job_id, step)
        return record

    def _fresh_job(self, manager: str, job_dir: JobDirectory, tool_id=None, tool_version=None) -> JobRecord:
        job_dir.remove(recycle=self._recyclable(manager, job_dir.job_id))
        job_dir.create(self.manager_config(manager).job_directory_mode)
        # not waited for: a set-up job is only a promise until its submit, whose commit is durable and
        # takes this one along. Lost in a crash (the OS's: a killed daemon loses no commit), the job is
        # unknown afterwards, and its submit gets a clear 404 (its uploads, each on disk before it was
        # answered, are left to the next setup of the id, which starts from an empty directory)
        return self.store.create(manager, job_dir.job_id, tool_id, tool_version, durable=False)

    # -- transport API ------------------------------------------------------
    def setup(self, manager: str, job_id: str | None, tool_id: str | None = None,
              tool_version: str | None = None, preserve_galaxy_python_environment=None, assign_id: bool = True) -> dict:
        manager_config = self.manager_config(manager)
        if assign_id and manager_config.assign_ids == "uuid":
            job_id = uuid.uuid4().hex
        job_id = check_job_id(job_id)
        job_dir = self.job_directory(manager, job_id)
        with self._lock(manager, job_id):
            self._setup_locked(manager, job_dir, tool_id, tool_version)
        return job_config(job_dir, manager_config, tool_id, tool_version, preserve_galaxy_python_environment)

    def _setup_locked(self, manager: str, job_dir: JobDirectory, tool_id, tool_version) -> None:
        record = self.store.get(manager, job_dir.job_id)
        if record is None or record.terminal:
            self._stop_leftovers(manager, record)
            self._fresh_job(manager, job_dir, tool_id, tool_version)
        elif record.state == wire.SETUP:
            job_dir.create(self.manager_config(manager).job_directory_mode)
            if tool_id or tool_version:
                self.store.update(manager, job_dir.job_id, tool_id=tool_id, tool_version=tool_version)
        # an active job: setup is idempotent, nothing changes

    @for_job
    def submit(self, manager: str, job_id: str, launch: dict, touch_outputs: list | None = None,
               stager: str | None = None) -> None:
        """Queue a job (REST submit and MQ setup message alike). ``stager`` names a registered stager that
        stages the job's files instead of Pulsar's remote_staging (the TES face's: faces never take it from a
        client's launch)."""
        self.manager_config(manager)
        job_id = check_job_id(job_id)
        command_line = launch.get("command_line")
        if not command_line or not isinstance(command_line, str):
            raise BadRequest("missing parameter: command_line")
        if wire.REMOVED_JOBS_DIRECTORY_TOKEN in command_line:
            raise BadRequest(f"{wire.REMOVED_JOBS_DIRECTORY_TOKEN} is no longer supported; "
                             f"use {wire.JOB_DIRECTORY_TOKEN}")
        try:
            launch = wire.read_launch(launch)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if touch_outputs is not None and not isinstance(touch_outputs, list):
            raise BadRequest("touch_outputs must be a JSON list")
        setup_params = launch["setup_params"]
        job_dir = self.job_directory(manager, job_id)
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            if launch.pop("setup"):
                if record is not None and record.state in ACTIVE:
                    log.info("job %s: duplicate submission ignored (%s)", job_id, record.state)
                    return
                self._setup_locked(manager, job_dir, setup_params.get("tool_id"), setup_params.get("tool_version"))
                command_line = command_line.replace(wire.JOB_DIRECTORY_TOKEN, job_dir.path)
                record = self.store.get(manager, job_id)
            if record is None:
                raise NotFound(f"job {job_id} was not set up")
            if record.state != wire.SETUP:
                log.info("job %s: duplicate submission ignored (%s)", job_id, record.state)
                return
            for name in touch_outputs or []:
                target = job_dir.calculate_path(str(name), "output")
                open(target, "a").close()
            launch["command_line"] = command_line
            if stager is not None:
                launch["stager"] = stager
            needs_preprocessing = self._stager(launch).needs_preprocessing(launch)
            try:
                self._write_script(manager, job_dir, launch)
            except Exception as exc:
                log.warning("job %s: cannot prepare the job script: %s", job_id, exc)
                self._move(manager, job_id, wire.State.FAILED, launch_config=launch,
                           message=f"could not prepare the job: {exc}")
                return
            state = wire.State.PREPROCESSING if needs_preprocessing else wire.State.QUEUED
            if self._move(manager, job_id, state, launch_config=launch) is None:
                return
        if needs_preprocessing:
            self.staging_pool.submit(self._preprocess, manager, job_id)
        else:
            self.managers[manager].launch(job_id)

    def _write_script(self, manager: str, job_dir: JobDirectory, launch: dict) -> None:
        manager_config = self.manager_config(manager)
        env = launch.get("env") or []
        if not isinstance(env, list):
            raise BadRequest("env must be a JSON list")
        dependency_commands = self.deps.shell_commands(
            launch.get("dependencies_description"), job_dir.path, job_dir.working, job_dir.sub("tool_files"))
        setup_params = launch.get("setup_params") or {}
        text = job_script.render(
            job_directory=job_dir.path,
            command_line=launch["command_line"],
            env=env,
            manager_env=manager_config.env,
            dependency_commands=dependency_commands,
            tmp_dir=manager_config.tmp_dir,
            galaxy_virtual_env=manager_config.galaxy_virtual_env,
            galaxy_home=manager_config.galaxy_home,
            preserve_galaxy_python_environment=bool(setup_params.get("preserve_galaxy_python_environment")),
            headers=self.managers[manager].script_headers(job_dir.job_id, job_dir.path, launch),
        )
        fsutil.write_bytes(job_dir.sub(job_script.SCRIPT_NAME), text.encode("utf-8"), mode=0o700)
        for stale in ("return_code", "pid"):
            try:
                os.unlink(job_dir.sub(stale))
            except FileNotFoundError:
                pass

    def status(self, manager: str, job_id: str) -> dict:
        manager_config = self.manager_config(manager)
        job_id = check_job_id(job_id)
        record = self.store.get(manager, job_id)
        finished = record is not None and record.terminal
        payload = self._finished_statuses.get((manager, job_id), record) if finished else None
        if payload is None:
            payload = status_payload(self.job_directory(manager, job_id), record, manager_config,
                                     live=self.live_output is not None)
            if finished:
                self._finished_statuses.put((manager, job_id), record, payload)
        return payload

    @for_job
    def cancel(self, manager: str, job_id: str) -> None:
        """A user's cancel. Under the job's lock, which every manager hook takes too, so it is never lost to
        a manager's transition: a job that has not started ends ``cancelled`` at once (and whatever its manager
        may already have started for it is stopped); a job running (or submitted to a scheduler) is marked
        ``cancel_requested`` and stopped, and ends ``cancelled`` when its manager reports its end."""
        self.manager_config(manager)
        job_id = check_job_id(job_id)
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            if record is None or record.terminal or record.state == wire.State.POSTPROCESSING:
                return
            if record.state == wire.State.RUNNING or (record.state == wire.State.QUEUED and record.external_id):
                if not record.cancel_requested:
                    self.store.update(manager, job_id, cancel_requested=1)
                self.managers[manager].kill(self.store.get(manager, job_id))
                return
            moved = self._move(manager, job_id, wire.State.CANCELLED,
                               expect=(wire.SETUP, wire.State.PREPROCESSING, wire.State.QUEUED), cancel_requested=1)
            if moved is not None and record.state == wire.State.QUEUED:
                # a worker may have started it and be waiting for this lock to report it: stop that too
                self.managers[manager].kill(moved)

    @for_job
    def clean(self, manager: str, job_id: str) -> None:
        manager_config = self.manager_config(manager)
        job_id = check_job_id(job_id)
        job_dir = self.job_directory(manager, job_id)
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            active = record is not None and record.state in ACTIVE
            if active:
                self.cancel(manager, job_id)
            else:
                self._stop_leftovers(manager, record)
            # an active job's delete must survive a crash, or the restart would take the job up again
            self._forget(manager, manager_config, job_dir, durable=active,
                         recycle=not active and self._recyclable(manager, job_id))

    def expire(self, manager: str, job_id: str, cutoff: float) -> bool:
        """Remove a job left behind by its client (retention): only when it is still set up or finished and
        unchanged since before ``cutoff``, checked under the job's lock. True when it went."""
        with self._lock(manager, job_id):
            record = self.store.get(manager, job_id)
            if record is None or record.state not in SWEPT_STATES or record.updated >= cutoff:
                return False
            for keep in self.expiring:
                try:
                    keep(record)
                except Exception:  # what the face keeps is lost, the job still goes (its files must not stay)
                    log.exception("job %s [%s]: what its face keeps of it could not be kept", job_id, manager)
            manager_config = self.manager_configs.get(manager)
            if manager_config is None:  # its manager is gone: nowhere to find its directory
                self.store.delete(manager, job_id, durable=False)
            else:
                self._forget(manager, manager_config, self.job_directory(manager, job_id), durable=False,
                             recycle=self._recyclable(manager, job_id))
        return True

    def _recyclable(self, manager: str, job_id: str) -> bool:
        """Whether the job's directory tree may become another job's: only once nothing started for it can
        still write there (a cancelled tool may take seconds to stop; a cluster job, longer; a staging transfer
        until it ends)."""
        instance = self.managers.get(manager)
        if (manager, job_id) in self._staging:
            return False
        return instance is not None and not instance.may_write(job_id)

    def _stop_leftovers(self, manager: str, record: JobRecord | None) -> None:
        """A finished job is cleaned or set up afresh: stop whatever of it still runs (processes a tool left
        behind, a cluster job the scheduler has not let go) before its directory goes."""
        instance = self.managers.get(manager)
        if record is not None and record.terminal and instance is not None and instance.may_write(record.job_id):
            log.info("job %s [%s]: stopping what is left of it", record.job_id, manager)
            instance.kill(record)

    def _forget(self, manager: str, manager_config: ManagerConfig, job_dir: JobDirectory, durable: bool,
                recycle: bool) -> None:
        """Delete a job's record, then its directory unless the manager keeps them (``debug``); under the
        job's lock. ``recycle`` False: the tree is deleted, never given to another job."""
        self.store.delete(manager, job_dir.job_id, durable=durable)
        self._finished_statuses.forget((manager, job_dir.job_id))
        if not manager_config.debug:
            job_dir.remove(recycle=recycle)

    @for_job
    def refuse(self, manager: str, job_id: str, message: str) -> None:
        """A job set up but never to be submitted (a face found its request unusable): ``failed``, saying why."""
        with self._lock(manager, job_id):
            self._move(manager, job_id, wire.State.FAILED, expect=(wire.SETUP,), message=message)
