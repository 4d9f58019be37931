"""Build the status payload clients receive (REST ``status`` and MQ ``status_update``)."""
from __future__ import annotations

import os
import threading

from .. import fsutil, wire
from ..store import JobRecord
from . import live_output
from .jobdir import JobDirectory


def trim_stream(data: bytes, cap: int) -> bytes:
    """Keep the start and the end of ``data`` within ``cap`` bytes (start gets the larger share)."""
    if len(data) <= cap:
        return data
    marker = wire.STREAM_ELISION.encode()
    room = max(cap - len(marker), 0)
    tail = room // 2
    head = room - tail
    return data[:head] + marker + (data[-tail:] if tail else b"")


def read_stream(path: str, maximum: int, cap: int | None = wire.STATUS_STREAM_CAP, root: str | None = None) -> str:
    """A stream's text, at most ``maximum`` bytes read, ``cap`` kept. With ``root`` (the job directory),
    ``path`` is relative to it and never read from outside it (fsutil.open_below)."""
    data = fsutil.read_bytes(path, limit=maximum, tail=maximum // 2, marker=wire.STREAM_ELISION.encode(),
                             root=root)
    if data is None:
        return ""
    if cap is not None:
        data = trim_stream(data, cap)
    return data.decode("utf-8", errors="replace")


def system_properties(manager_config) -> dict:
    props = {"separator": os.sep}
    for key in ("galaxy_home", "galaxy_virtual_env", "galaxy_config_file", "galaxy_dataset_files_path",
                "galaxy_datatypes_config_file"):
        value = getattr(manager_config, key, None)
        if value:
            props[key] = value
    if "galaxy_home" not in props and os.environ.get("GALAXY_HOME"):
        props["galaxy_home"] = os.environ["GALAXY_HOME"]
    if "galaxy_virtual_env" not in props and os.environ.get("GALAXY_VIRTUAL_ENV"):
        props["galaxy_virtual_env"] = os.environ["GALAXY_VIRTUAL_ENV"]
    return props


def job_config(job_dir: JobDirectory, manager_config, tool_id: str | None, tool_version: str | None,
               preserve_galaxy_python_environment=None) -> dict:
    """The setup reply (reference section 1.4)."""
    base = job_dir.path
    reply = {
        "job_directory": base,
        "working_directory": os.path.join(base, "working"),
        "metadata_directory": os.path.join(base, "metadata"),
        "outputs_directory": os.path.join(base, "outputs"),
        "configs_directory": os.path.join(base, "configs"),
        "tools_directory": os.path.join(base, "tool_files"),
        "inputs_directory": os.path.join(base, "inputs"),
        "unstructured_files_directory": os.path.join(base, "unstructured"),
        "path_separator": os.sep,
        "job_id": job_dir.job_id,
        "system_properties": system_properties(manager_config),
        "pulsar_version": wire.PULSAR_VERSION,
        "preserve_galaxy_python_environment": preserve_galaxy_python_environment,
    }
    if tool_id:
        reply["tool_id"] = tool_id
    if tool_version:
        reply["tool_version"] = tool_version
    return reply


def status_payload(job_dir: JobDirectory, record: JobRecord | None, manager_config, live: bool = False) -> dict:
    """A job's status; ``live``: live output is on (its streams are left out once Galaxy has all of them)."""
    state = record.state if record else wire.State.LOST
    job_id = job_dir.job_id
    if state not in wire.TERMINAL_STATES:
        return {"complete": "false", "status": wire.wire_state(state), "job_id": job_id}
    maximum = manager_config.maximum_stream_size
    metadata = job_dir.metadata
    root = job_dir.path  # every stream is the job's to replace with a symlink: read below the job directory
    stderr = read_stream("metadata/tool_stderr", maximum, root=root)
    said = record is not None and record.message and state in (wire.State.FAILED, wire.State.LOST)
    if said:
        stderr = (stderr + "\n" if stderr else "") + f"pulsar_lite: {record.message}"
    returncode = record.returncode if record is not None else None
    launch = (record.launch_config or {}) if record is not None else {}
    payload = {
        "job_id": job_id,
        "complete": "true",
        "status": state,
        "returncode": returncode,
        "stdout": read_stream("metadata/tool_stdout", maximum, root=root),
        "stderr": stderr,
        "job_stdout": read_stream("metadata/job_stdout", maximum, cap=None, root=root),
        "job_stderr": read_stream("metadata/job_stderr", maximum, cap=None, root=root),
        "working_directory": job_dir.working,
        "metadata_directory": metadata,
        "job_directory": job_dir.path,
        "working_directory_contents": job_dir.listing("working"),
        "metadata_directory_contents": job_dir.listing("metadata"),
        "outputs_directory_contents": job_dir.listing("outputs"),
        "job_directory_contents": [n for n in job_dir.listing("", recursive=False) if not n.startswith(".")],
        "system_properties": system_properties(manager_config),
        "pulsar_version": wire.PULSAR_VERSION,
        "realized_dynamic_file_sources": realized_dynamic_file_sources(job_dir, launch.get("dynamic_file_sources")),
    }
    if live and not said and live_output.delivered_everything(root):
        # Galaxy has every byte of both streams from the live posts: it reads its own copies (null, as Pulsar)
        payload["stdout"] = payload["stderr"] = None
    return payload


class FinishedStatuses:
    """Status payloads of finished jobs, kept for the next poll of the same job.

    Galaxy reads a finished job's status at least twice (the poll that sees it finish, then the full status
    it finishes the job with), and building it reads four streams and lists four directories. Nothing in a
    finished job's directory changes until the job is cleaned or set up again, and both write a new record,
    so a payload is only handed out again for the very record it was built from (the store hands out the
    same instance until the job's row is written). At most ``size`` payloads, each with at most
    ``stream_bytes`` of output streams, are kept; the oldest go first."""

    STREAMS = ("stdout", "stderr", "job_stdout", "job_stderr")

    def __init__(self, size: int = 64, stream_bytes: int = 64 * 1024):
        self.size = size
        self.stream_bytes = stream_bytes
        self._entries: dict[tuple[str, str], tuple[JobRecord, dict]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], record: JobRecord) -> dict | None:
        """A copy of the payload built from ``record`` (the caller may change the copy), or None."""
        entry = self._entries.get(key)
        return dict(entry[1]) if entry is not None and entry[0] is record else None

    def put(self, key: tuple[str, str], record: JobRecord, payload: dict) -> None:
        if sum(len(payload.get(name) or "") for name in self.STREAMS) > self.stream_bytes:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (record, dict(payload))
            while len(self._entries) > self.size:
                del self._entries[next(iter(self._entries))]

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)


def realized_dynamic_file_sources(job_dir: JobDirectory, sources) -> list:
    """The client's dynamic file sources (``galaxy.json`` and the like, below ``working``) with their
    contents, read below the job directory (JobDirectory.read_text)."""
    realized = []
    for source in sources or []:
        if not isinstance(source, dict) or not source.get("path"):
            continue
        relative = str(source["path"])
        if relative.startswith("/") or ".." in relative.split("/"):
            continue
        text = job_dir.read_text(os.path.join("working", relative))
        if text is None:
            continue
        entry = dict(source)
        entry["contents"] = text
        realized.append(entry)
    return realized
