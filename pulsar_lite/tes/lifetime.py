"""A TES task's life in the store beyond what its job's record says: its final state, kept where ListTasks can
filter on it, and its record once the job is gone.

* A task's final state is written when its job ends (a listener of the engine's moves), and at start-up for
  every task whose state was not (an older pulsar_lite wrote the row, or the daemon stopped in between).
* ``job_retention`` removes a finished task's job and files like any job's; just before, the task's record is
  kept in its row (``TaskStore.retire_task``): its document without the inputs' contents and the executors'
  env, URLs' passwords masked, its owner kept (``kept_document``), its final state,
  and its log as the FULL view showed it, without the executors' stdout and stderr (its times, exit codes,
  outputs and system_logs). GET and ListTasks answer from it.
* ``tes_task_record_retention`` seconds later, a sweep on the engine's timer thread removes the record.
"""
from __future__ import annotations

import logging
import time

from .. import wire
from ..engine.retention import SWEEP_BATCH, sweep_interval
from ..store_tes import ACTIVE
from . import staging
from .protocol import FINAL_STATES, State, rfc3339

log = logging.getLogger(__name__)

#: final states written per transaction at start-up
SETTLE_BATCH = 1000


class TaskLifetime:
    def __init__(self, service):
        self.service = service
        self.engine = service.engine
        self.store = service.engine.store
        self.retention = service.config.tes_task_record_retention
        self.engine.subscribe(self._moved)
        self.engine.expiring.append(self._retire)

    # -- final states -------------------------------------------------------------------------------------------
    def _moved(self, manager: str, job_id: str, state: str) -> None:
        if state in wire.TERMINAL_STATES and self.service.is_task(job_id):
            self.store.set_task_states({job_id: self.service.final_state(manager, job_id)})

    def settle(self) -> int:
        """At start-up: the final state of every task whose row does not have it yet (and the tags of rows an
        older pulsar_lite wrote); how many were settled."""
        states: dict[str, str] = {}
        tags: dict[str, dict] = {}
        settled = 0
        for task_id, manager, final_state, job_state in self.store.tasks_to_settle(wire.TERMINAL_STATES):
            if final_state is None:
                row = self.store.task_row(task_id)
                tags[task_id] = (row.document.get("tags") or {}) if row else {}
            if job_state is None:
                states[task_id] = State.SYSTEM_ERROR  # the job is gone (as GET has always said)
            elif job_state in wire.TERMINAL_STATES:
                states[task_id] = self.service.final_state(manager, task_id)
            else:
                states[task_id] = ACTIVE
            if len(states) >= SETTLE_BATCH:
                self.store.set_task_states(states, tags)
                settled += len(states)
                states, tags = {}, {}
        if states:
            self.store.set_task_states(states, tags)
            settled += len(states)
        if settled:
            log.info("TES: the final state of %d task(s) recorded at start-up", settled)
        return settled

    # -- records ------------------------------------------------------------------------------------------------
    def _retire(self, record) -> None:
        """Before retention removes a task's job (under its lock): keep the task's record."""
        if not self.service.is_task(record.job_id):
            return
        row = self.store.task_row(record.job_id)
        if row is None:
            return
        now = time.time()
        state = self.service.state(row.id, row.manager, row.document, record)
        full = self.service.render(row.id, row.manager, row.created, row.document, "FULL", record)
        task_log = full["logs"][0]
        for entry in task_log.get("logs", []):
            entry.pop("stdout", None)
            entry.pop("stderr", None)
        if state not in FINAL_STATES:  # set up and never submitted (its face was off for job_retention)
            state = State.SYSTEM_ERROR
            task_log.setdefault("system_logs", []).append("the task's job was removed (job_retention) before "
                                                          "it ran")
        task_log.setdefault("metadata", {})["files_removed"] = rfc3339(now)
        document = kept_document(row.document)
        self.store.retire_task(row.id, document, state, task_log, now)
        log.info("TES task %s: its job and files are removed (job_retention); its record stays", row.id)

    def start(self) -> None:
        if self.retention is not None:
            self.engine.timers.call_later(sweep_interval(self.retention), self._tick)

    def sweep(self, now: float | None = None, limit: int = SWEEP_BATCH) -> int:
        """Remove the task records retired before ``now - tes_task_record_retention`` (at most ``limit``)."""
        cutoff = (time.time() if now is None else now) - self.retention
        expired = self.store.task_records_before(cutoff, limit)
        if expired:
            self.store.forget_tasks(expired)
            log.info("TES: %d task record(s) removed (tes_task_record_retention)", len(expired))
        return len(expired)

    def _tick(self) -> None:
        if self.engine.stopped:
            return
        delay = sweep_interval(self.retention)
        try:
            if self.sweep() >= SWEEP_BATCH:
                delay = 1.0
        finally:
            if not self.engine.stopped:
                self.engine.timers.call_later(delay, self._tick)


def kept_document(task: dict) -> dict:
    """What a task's record keeps of its document: its owner (a retired task is as private as a live one), not
    its inputs' ``content`` nor its executors' ``env`` (FULL-only fields, often credentials), and its URLs with
    their password masked (``staging.public_url``: the transfers are over)."""
    def masked(entry: dict) -> dict:
        return dict(entry, url=staging.public_url(entry["url"])) if entry.get("url") else dict(entry)

    return dict(task, inputs=[masked({k: v for k, v in entry.items() if k != "content"}) for entry in task["inputs"]],
                outputs=[masked(entry) for entry in task["outputs"]],
                executors=[{k: v for k, v in entry.items() if k != "env"} for entry in task["executors"]])
