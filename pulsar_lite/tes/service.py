"""TES tasks as jobs of the one engine: create, read, list, cancel, and the stager that moves their files.

A task is a job whose id is ``tes-<32 hex digits>`` (the Pulsar faces refuse ids with that prefix, so the
two never meet in the store), whose command runs its executors (``runtime.script``) and whose staging is
this module's ``TesStager``. So a task runs on whichever manager runs it (locally or on a cluster),
survives restarts as a job does, and shows in the job listings; the task document itself is kept in the
store's ``tes_tasks`` table, with its ``owner``: the Basic user who created it (none when an administrator
did, ``auth.py``). A caller who is not an administrator sees, lists and cancels only their own tasks; any
other task is "no such task" to them (404, not 403: whether an id exists is not theirs to know).
"""
from __future__ import annotations

import logging
import os
import time
import uuid

from .. import fsutil, wire
from ..errors import BadRequest, NotFound
from ..netpolicy import AddressPolicy
from ..staging import StagingStats
from ..staging.remote import Remote
from ..store_tes import ACTIVE, TaskRow
from . import policy, runtime, staging
from .lifetime import TaskLifetime
from .protocol import (
    FINAL_STATES,
    SPEC_VERSION,
    State,
    page_token,
    read_task,
    rfc3339,
)

log = logging.getLogger(__name__)

ID_PREFIX = "tes-"
STAGER = "tes"
#: backend_parameters keys this backend acts on
BACKEND_PARAMETERS = ("manager", "native_specification", "queue")
STREAM_TAIL = 64 * 1024


def is_task_id(job_id: str | None) -> bool:
    return bool(job_id) and job_id.startswith(ID_PREFIX)


class TesStager:
    """Stages a task's inputs before it is queued and its outputs after its executors ended."""

    def __init__(self, service: "TesService"):
        self.service = service

    def needs_preprocessing(self, launch: dict) -> bool:
        return True  # the task's input mirror is laid out even without inputs

    def stages_out(self, record) -> bool:
        return True

    def stage_in(self, job_dir, record, policy) -> StagingStats:
        task = self.service.document(record.job_id)
        started = time.monotonic()
        files, size = staging.stage_in(task, job_dir.path, self.service.file_roots, policy, self.service.remote)
        return StagingStats(files, size, time.monotonic() - started)

    def stage_out(self, job_dir, record, policy) -> StagingStats:
        """Outputs are sent after the executors ended, whether they succeeded or not (as Funnel does: a client
        wants the logs of what failed); not when the job failed for a reason of the system (its manager's
        message: the scheduler ended it, it could not start), which is the task's SYSTEM_ERROR."""
        if record.message:
            return StagingStats()
        task = self.service.document(record.job_id)
        started = time.monotonic()
        files, size = staging.stage_out(task, job_dir.path, self.service.file_roots, policy, self.service.remote,
                                        executor_failed=record.returncode != 0)
        return StagingStats(files, size, time.monotonic() - started)


def default_manager(config) -> str:
    """The manager that runs TES tasks: ``tes_manager``, else ``_default_``, else the first one."""
    managers = list(config.managers)
    return config.tes_manager or (wire.DEFAULT_MANAGER if wire.DEFAULT_MANAGER in managers else managers[0])


class TesService:
    def __init__(self, engine, config):
        self.engine = engine
        self.config = config
        self.runtime = config.tes_container_runtime
        self.command = config.tes_container_command or self.runtime
        self.file_roots = [os.path.abspath(r) for r in config.tes_file_roots or []]
        self.images = [str(p) for p in config.tes_allowed_images or []]
        #: how the daemon's own transfers reach a task's URLs: which addresses (docs/security.md), CA, FTP TLS
        networks = AddressPolicy(config.tes_fetch_allowed_networks, config.tes_fetch_denied_networks,
                                 "tes_fetch_allowed_networks", "tes_fetch_denied_networks")
        self.remote = Remote(networks=networks, ca_bundle=config.tes_fetch_ca_bundle, ftp_tls=config.tes_ftp_tls)
        self.default_manager = default_manager(config)
        engine.manager_config(self.default_manager)
        self.options = {"network": config.tes_container_network, "pull": config.tes_container_pull,
                        "extra": list(config.tes_container_options or []), "user": config.tes_container_user,
                        "capabilities": list(config.tes_container_capabilities or []),
                        "no_new_privileges": config.tes_container_no_new_privileges,
                        "pids_limit": config.tes_container_pids_limit}
        engine.stagers[STAGER] = TesStager(self)
        self.lifetime = TaskLifetime(self)

    is_task = staticmethod(is_task_id)

    # -- start-up ----------------------------------------------------------------------------------------------
    def recover(self) -> None:
        """The final state of tasks that ended unrecorded (``lifetime``); tasks whose job was set up but never
        submitted (the daemon died in between): submit them now."""
        self.lifetime.settle()
        self.lifetime.start()
        for task_id, manager, document in self.engine.store.tasks_in_job_state(wire.SETUP):
            log.info("TES task %s: was created but not submitted when the daemon stopped; submitting", task_id)
            self._submit(task_id, manager, document)

    # -- create ----------------------------------------------------------------------------------------------------
    def create(self, body, owner: str | None = None) -> str:
        task = read_task(body)
        policy.check_images(task, self.images, self.runtime)
        policy.check_urls(task, self.file_roots)
        try:
            runtime.mounts(task)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self._check_addresses(task)
        parameters = task["resources"].get("backend_parameters") or {}
        unsupported = policy.check_backend_parameters(task["resources"], BACKEND_PARAMETERS)
        manager = parameters.get("manager") or self.default_manager
        if manager not in self.engine.manager_configs:
            raise BadRequest(f"backend_parameters manager {manager!r} is not a manager of this server")
        task["system_logs"] = []
        if owner is not None:
            task["owner"] = owner  # never rendered: render() picks the schema's fields
        if unsupported:
            for key in unsupported:
                del parameters[key]  # "shall not store or return unsupported keys"
            task["system_logs"].append(f"backend_parameters not supported here, ignored: {', '.join(unsupported)}")
        for key, value in task["resources"].items():
            if key in ("disk_gb", "preemptible", "zones"):
                task["system_logs"].append(f"resources.{key} ({value}) is accepted but not enforced by this backend")
        task_id = ID_PREFIX + uuid.uuid4().hex
        created = time.time()
        self.engine.setup(manager, task_id, tool_id="tes", tool_version=SPEC_VERSION, assign_id=False)
        self.engine.store.put_task(task_id, manager, created, task["name"], task)
        self._submit(task_id, manager, task)
        log.info("TES task %s (%s) created on manager %s", task_id, task["name"] or "no name", manager)
        return task_id

    def _check_addresses(self, task: dict) -> None:
        """A URL whose host is an IP address the daemon may not connect to is refused at once (a host name is
        judged by the address libcurl connects to, when the task's files are staged)."""
        for kind in ("inputs", "outputs"):
            for n, entry in enumerate(task[kind]):
                url = entry.get("url") or ""
                if staging.scheme(url) in staging.REMOTE_SCHEMES:
                    why = self.remote.networks.refusal_of_url(url)
                    if why is not None:
                        raise BadRequest(f"{kind}[{n}].url {staging.public_url(url)}: {why}")

    def _submit(self, task_id: str, manager: str, task: dict) -> None:
        job_dir = self.engine.job_directory(manager, task_id)
        command_line = runtime.script(task_id, task, job_dir.path, self.runtime, self.command, self.options)
        parameters = task["resources"].get("backend_parameters") or {}
        submit_params = {k: parameters[k] for k in ("native_specification", "queue") if k in parameters}
        resources = task["resources"]
        if resources.get("cpu_cores"):
            submit_params["cores"] = resources["cpu_cores"]
        if resources.get("ram_gb"):
            submit_params["memory"] = int(resources["ram_gb"] * 1024)
        os.makedirs(os.path.join(job_dir.path, "tes"), exist_ok=True)
        self.engine.submit(manager, task_id, {"command_line": command_line, "submit_params": submit_params},
                           stager=STAGER)

    # -- read ---------------------------------------------------------------------------------------------------------
    def document(self, task_id: str) -> dict:
        found = self.engine.store.get_task(task_id)
        if found is None:
            raise NotFound(f"no TES task {task_id}")
        return found[2]

    def _find(self, task_id: str, caller) -> TaskRow:
        """The row of a task ``caller`` may see (None: the daemon itself), whether its job is there or only its
        record (the owner is kept in both); else NotFound."""
        row = self.engine.store.task_row(task_id) if is_task_id(task_id) and wire.valid_job_id(task_id) else None
        if row is None or not visible(row.document, caller):
            raise NotFound(f"no TES task {task_id}")
        return row

    def get(self, task_id: str, view: str, caller=None) -> dict:
        return self.render_row(self._find(task_id, caller), view)

    def final_state(self, manager: str, task_id: str) -> str:
        """The state of a task whose job has ended (``lifetime`` records it)."""
        return self.state(task_id, manager, None)

    def state(self, task_id: str, manager: str, task: dict, record=None) -> str:
        record = record if record is not None else self.engine.store.get(manager, task_id)
        if record is None:
            return State.SYSTEM_ERROR
        state = record.state
        if state == wire.State.CANCELLED:
            return State.CANCELED
        if record.cancel_requested and state in (wire.State.QUEUED, wire.State.RUNNING):
            return State.CANCELING
        if state in (wire.SETUP, wire.State.QUEUED):
            return State.QUEUED
        if state == wire.State.PREPROCESSING:
            return State.INITIALIZING
        if state in (wire.State.RUNNING, wire.State.POSTPROCESSING):
            return State.RUNNING
        if state == wire.State.COMPLETE:
            if record.returncode == 0:
                return State.COMPLETE
            return State.SYSTEM_ERROR if self._runtime_failure(task, manager, task_id) else State.EXECUTOR_ERROR
        if state == wire.State.FAILED and record.message and "preempted" in record.message.lower():
            return State.PREEMPTED
        return State.SYSTEM_ERROR  # failed (staging, scheduler, refused) or lost

    def _executor_ends(self, manager: str, task_id: str, task: dict) -> list[dict]:
        """What the job's script recorded of each executor that started."""
        job_path = self.engine.job_directory(manager, task_id).path
        directory = os.path.join(job_path, "tes")
        logs = []
        for index in range(len(task["executors"])):
            start = _read(job_path, os.path.join(directory, f"{index}.start"))
            if start is None:
                break
            end = (_read(job_path, os.path.join(directory, f"{index}.end")) or "").split()
            entry = {"start_time": _epoch(start)}
            if len(end) == 2:
                entry["end_time"], entry["exit_code"] = _epoch(end[0]), int(end[1]) if end[1].lstrip("-").isdigit() else -1
            logs.append(entry)
        return logs

    def _runtime_failure(self, task: dict | None, manager: str, task_id: str) -> bool:
        if self.runtime not in runtime.OCI_RUNTIMES:
            return False
        ends = self._executor_ends(manager, task_id, task if task is not None else self.document(task_id))
        return bool(ends) and ends[-1].get("exit_code") in runtime.RUNTIME_FAILURES

    def render_row(self, row: TaskRow, view: str) -> dict:
        """A task as a view shows it: from its job while there is one, from its record once the job is gone."""
        if view == "MINIMAL" and row.final_state:
            return {"id": row.id, "state": row.final_state}
        record = self.engine.store.get(row.manager, row.id)
        if record is None and row.record is not None:
            task_log = dict(row.record)
            if view != "FULL":
                task_log.pop("system_logs", None)
            return _document(row.id, row.final_state, row.created, row.document, view, task_log)
        if row.document is None:  # (MINIMAL, a task that has not ended: its state needs no document)
            return {"id": row.id, "state": self.state(row.id, row.manager, None, record)}
        return self.render(row.id, row.manager, row.created, row.document, view, record)

    def render(self, task_id: str, manager: str, created: float, task: dict, view: str, record=None) -> dict:
        record = record if record is not None else self.engine.store.get(manager, task_id)
        state = self.state(task_id, manager, task, record)
        if view == "MINIMAL":
            return {"id": task_id, "state": state}
        return _document(task_id, state, created, task, view,
                         self._task_log(task_id, manager, task, record, state, view == "FULL"))

    def _task_log(self, task_id, manager, task, record, state, full) -> dict:
        job_dir = self.engine.job_directory(manager, task_id).path
        transitions = self.engine.store.transitions(manager, task_id) if record is not None else []
        ends = self._executor_ends(manager, task_id, task)
        executor_logs = []
        for index, entry in enumerate(ends):
            log_entry = {"start_time": rfc3339(entry["start_time"]), "end_time": rfc3339(entry.get("end_time")),
                         "exit_code": entry.get("exit_code")}  # none while it runs
            if full:
                for stream in ("stdout", "stderr"):
                    log_entry[stream] = _tail(job_dir, runtime.stream_path(task, job_dir, index, stream))
            executor_logs.append(_drop_none(log_entry))
        started = next((ts for s, ts, _ in transitions if s == wire.State.PREPROCESSING), None)
        ended = next((ts for s, ts, _ in transitions if s in wire.TERMINAL_STATES), None)
        task_log = {"start_time": rfc3339(started), "end_time": rfc3339(ended), "logs": executor_logs,
                    "outputs": staging.sent_outputs(job_dir),
                    "metadata": {"manager": manager, "job_state": record.state if record else "gone"}}
        if full:
            system_logs = list(task.get("system_logs") or [])
            if record is not None and record.message:
                system_logs.append(record.message)
            system_logs += _refused(job_dir) + staging.output_notes(job_dir)
            if state == State.SYSTEM_ERROR and ends and ends[-1].get("exit_code") in runtime.RUNTIME_FAILURES:
                stderr = _tail(job_dir, runtime.stream_path(task, job_dir, len(ends) - 1, "stderr"), 2000)
                system_logs.append(f"executor {len(ends) - 1}: {runtime.RUNTIME_FAILURES[ends[-1]['exit_code']]}"
                                   f" (exit {ends[-1]['exit_code']}): {stderr}")
            task_log["system_logs"] = system_logs
        return _drop_none(task_log)

    def list(self, view: str, page_size: int, after, name_prefix: str | None, state: str | None,
             tags: dict[str, str], caller=None) -> dict:
        """A page of the tasks ``caller`` may see, in creation order. The store filters by owner (a caller who
        is not an administrator is given only their own tasks), name prefix, tags and a final state (indexed: no
        other task is read); a state a task has before it ends is decided for each task that has not ended.
        The token resumes right after the last task looked at (opaque: its creation time and id), so each task
        comes once."""
        store = self.engine.store
        owner = None if caller is None or caller.admin else caller.name or ""
        if state is None or state in FINAL_STATES:
            rows = store.task_page(after, page_size + 1, name_prefix, tags, state, whole=view != "MINIMAL",
                                   owner=owner)
            result = {"tasks": [self.render_row(row, view) for row in rows[:page_size]]}
            if len(rows) > page_size:
                result["next_page_token"] = page_token(rows[page_size - 1].created, rows[page_size - 1].id)
            return result
        tasks, last, ended = [], after, {}
        while len(tasks) < page_size:
            rows = store.task_page(last, 500, name_prefix, tags, ACTIVE, owner=owner)
            for row in rows:
                last = (row.created, row.id)
                if not visible(row.document, caller):
                    continue  # (the store's owner filter already left it out)
                record = store.get(row.manager, row.id)
                current = self.state(row.id, row.manager, row.document, record)
                if current in FINAL_STATES:
                    ended[row.id] = current  # its end was not recorded (the daemon stopped in between)
                elif current == state:
                    tasks.append(self.render(row.id, row.manager, row.created, row.document, view, record))
                    if len(tasks) == page_size:
                        break
            if len(rows) < 500:
                break
        if ended:
            store.set_task_states(ended)
        result = {"tasks": tasks}
        if last is not None and last != after and store.task_page(last, 1, name_prefix, tags, ACTIVE,
                                                                  whole=False, owner=owner):
            result["next_page_token"] = page_token(*last)
        return result

    # -- cancel ---------------------------------------------------------------------------------------------------------
    def cancel(self, task_id: str, caller=None) -> None:
        self.engine.cancel(self._find(task_id, caller).manager, task_id)  # a retired task's: nothing to do

    # -- service-info ---------------------------------------------------------------------------------------------------
    def service_info(self) -> dict:
        from .. import __version__

        config = self.config
        info = {"id": config.tes_service_id, "name": config.tes_service_name,
                "type": {"group": "org.ga4gh", "artifact": "tes", "version": SPEC_VERSION},
                "description": f"GA4GH TES on pulsar_lite: executors in {self.runtime} containers, run by the "
                               f"managers of this server ({', '.join(self.engine.manager_configs)})",
                "organization": {"name": config.tes_organization_name, "url": config.tes_organization_url},
                "version": __version__,
                "storage": list(config.tes_storage or []) + [f"file://{root}" for root in self.file_roots],
                "tesResources_backend_parameters": list(BACKEND_PARAMETERS)}
        return info


def visible(task: dict, caller) -> bool:
    """Whether ``caller`` (None: the daemon itself) may see ``task``: an administrator every task, a user
    their own."""
    return caller is None or caller.admin or (caller.name is not None and task.get("owner") == caller.name)


def _read(job_directory: str, path: str) -> str | None:
    """A small file the job's script wrote (read below the job directory: fsutil.open_below)."""
    data = fsutil.read_bytes(path, limit=256, root=job_directory)
    return data.decode(errors="replace").strip() if data is not None else None


def _refused(job_directory: str) -> list[str]:
    """What the job's script refused to do in the task's mirror (``runtime.SAFE_PATHS``), a line each."""
    data = fsutil.read_bytes(os.path.join(job_directory, "tes", "refused"), limit=16 * 1024,
                             root=job_directory)
    return [line for line in data.decode(errors="replace").splitlines() if line] if data else []


def _epoch(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _tail(job_directory: str, path: str, limit: int = STREAM_TAIL) -> str:
    """The last ``limit`` bytes of an executor's stream (the container may have made it a symlink: read
    below the task's mirror when it is a path there, else below the job directory: fsutil.open_below)."""
    mirror = os.path.join(job_directory, "tes", "root")
    root = mirror if path.startswith(mirror + "/") else job_directory
    data = fsutil.read_bytes(path, limit=limit, tail=limit, root=root)
    return data.decode("utf-8", errors="replace") if data is not None else ""


def _drop_none(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if v is not None}


def _document(task_id: str, state: str, created: float, task: dict, view: str, task_log: dict) -> dict:
    """The BASIC or FULL view of a task (``task``: its document as stored)."""
    full = view == "FULL"
    return _drop_none({"id": task_id, "state": state, "name": task["name"], "description": task["description"],
                       "inputs": [_input(i, full) for i in task["inputs"]],
                       "outputs": [_drop_none(dict(o, url=staging.public_url(o["url"]))) for o in task["outputs"]],
                       "resources": _resources(task["resources"]),
                       "executors": [_executor(e, full) for e in task["executors"]], "volumes": task["volumes"],
                       "tags": task["tags"], "creation_time": rfc3339(created), "logs": [task_log]})


def _input(entry: dict, full: bool) -> dict:
    """An input as a view shows it: its inline ``content`` in FULL only (the spec leaves it out of BASIC), a
    URL's password never."""
    shown = {k: v for k, v in entry.items() if v is not None and (full or k != "content")}
    if shown.get("url"):
        shown["url"] = staging.public_url(shown["url"])
    return shown


def _executor(entry: dict, full: bool) -> dict:
    """An executor as a view shows it: its ``env`` in FULL only. The spec's BASIC has it, but env values are
    where clients put credentials (API keys, tokens), and BASIC is what clients poll and log."""
    return {k: v for k, v in entry.items() if v is not None and (full or k != "env")}


def _resources(resources: dict) -> dict:
    shown = dict(resources)
    if not shown.get("backend_parameters"):
        shown.pop("backend_parameters", None)  # py-tes 1.1.0 reads it as a list: leave out an empty one
    return shown
