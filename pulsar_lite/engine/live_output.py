"""Live tool output (Pulsar's ``send_stdout_update``): while a job runs, the new bytes of its
``metadata/tool_stdout`` and ``metadata/tool_stderr`` are posted to Galaxy's job-files API, which appends them
to the job's ``outputs/tool_stdout|tool_stderr`` (Galaxy 24.2+ shows them to the user as they come).

One thread for every job of the daemon (never one per job): every ``stdout_update_interval`` seconds it sends
what each running job has written since the last post, at most ``stdout_update_chunk_size`` bytes per stream
per post, each post given ``stdout_update_timeout`` seconds. A job is followed when it starts running and its
launch has remote staging with a ``files_endpoint`` (the same condition as Pulsar's); the URL is
``files_endpoint&path=<dirname(client working_directory)>/outputs/tool_stdout&file_type=output``. What was
delivered is kept in the job's ``metadata/live_output_state`` (``{"metadata/tool_stdout": offset, ...,
"delivered": bool}``), so a restart resumes where it stopped. A failed post is tried again after a pause
doubling up to 300 s. When the job ends, the staging phase sends the rest before the final status is built.

The final status carries ``stdout``/``stderr`` ``null`` only when Galaxy has every byte of both (Galaxy then
reads its own files); otherwise the streams as ever, which Galaxy writes over what it got live.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .. import fsutil, wire
from ..staging import transfer

log = logging.getLogger(__name__)

STATE_FILE = "live_output_state"
STREAMS = ("metadata/tool_stdout", "metadata/tool_stderr")
#: the longest pause after failed posts
BACKOFF_MAX = 300.0


@dataclass
class Followed:
    manager: str
    job_id: str
    generation: float
    root: str  # the job directory
    urls: dict  # stream (metadata/tool_stdout) -> the URL its bytes are posted to
    offsets: dict = field(default_factory=dict)
    delivered: bool = False
    failures: int = 0
    next_try: float = 0.0
    #: one send at a time (the thread's round and the staging phase's flush)
    lock: threading.Lock = field(default_factory=threading.Lock)


def urls_of(launch: dict | None) -> dict | None:
    """The URL each stream's new bytes go to, or None when the job has no remote staging with a files_endpoint."""
    remote = (launch or {}).get("remote_staging") or {}
    if not isinstance(remote, dict):
        return None
    mapper = remote.get("action_mapper") or {}
    endpoint = mapper.get("files_endpoint") if isinstance(mapper, dict) else None
    outputs = remote.get("client_outputs") or {}
    working = outputs.get("working_directory") if isinstance(outputs, dict) else None
    if not endpoint or not working or not isinstance(endpoint, str) or not isinstance(working, str):
        return None
    directory = os.path.dirname(working.rstrip("/\\")) or working
    separator = "&" if "?" in endpoint else "?"
    return {stream: f"{endpoint}{separator}" + urlencode({"path": f"{directory}/outputs/{os.path.basename(stream)}",
                                                          "file_type": "output"})
            for stream in STREAMS}


def read_state(root: str) -> dict:
    """The job's live output state (empty when there is none or it cannot be read: nothing was delivered)."""
    data = fsutil.read_bytes(f"metadata/{STATE_FILE}", limit=4096, root=root)
    try:
        state = json.loads(data) if data else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def delivered_everything(root: str) -> bool:
    """Whether Galaxy has every byte of both streams (at least one post of them accepted): the final status
    then leaves them out."""
    state = read_state(root)
    if not state.get("delivered"):
        return False
    for stream in STREAMS:
        opened = _regular(stream, root)
        size = 0
        if opened is not None:
            os.close(opened[0])
            size = opened[1]
        if _offset(state, stream) != size:
            return False
    return True


def _regular(stream: str, root: str) -> tuple[int, int] | None:
    """The stream's descriptor and size, below the job directory (a job's symlink out of it is not read)."""
    try:
        return fsutil.open_regular(stream, root)
    except fsutil.PathEscapes:
        return None


def _offset(state: dict, stream: str) -> int:
    value = state.get(stream, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class LiveOutput:
    def __init__(self, engine, interval: float, timeout: float, chunk_size: int):
        self.engine = engine
        self.interval = max(float(interval), 0.1)
        self.timeout = max(float(timeout), 1.0)
        self.chunk_size = max(int(chunk_size), 1024)
        self._jobs: dict[tuple[str, str], Followed] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- which jobs ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.engine.subscribe(self._changed)
        for record in self.engine.store.jobs_in_states((wire.State.RUNNING,)):
            self._follow(record)
        self._thread = threading.Thread(target=self._run, name="pulsar-lite-live-output", daemon=True)
        self._thread.start()

    def _changed(self, manager: str, job_id: str, state: str) -> None:
        if state == wire.State.RUNNING:
            record = self.engine.store.get(manager, job_id)
            if record is not None:
                self._follow(record)
        elif state in wire.TERMINAL_STATES:
            with self._lock:
                self._jobs.pop((manager, job_id), None)

    def _follow(self, record) -> None:
        urls = urls_of(record.launch_config)
        if urls is None:
            return
        root = self.engine.job_directory(record.manager, record.job_id).path
        state = read_state(root)
        followed = Followed(record.manager, record.job_id, record.created, root, urls,
                            {stream: _offset(state, stream) for stream in STREAMS}, bool(state.get("delivered")))
        with self._lock:
            self._jobs.setdefault((record.manager, record.job_id), followed)

    def following(self) -> int:
        with self._lock:
            return len(self._jobs)

    # -- sending ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.engine.stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                jobs = list(self._jobs.values())
            now = time.monotonic()
            for followed in jobs:
                if self.engine.stopping.is_set():
                    return
                if followed.next_try <= now:
                    try:
                        self._send(followed, everything=False)
                    except Exception:  # a defect: said, and the other jobs still served
                        log.exception("job %s: live output failed", followed.job_id)

    def flush(self, manager: str, job_id: str) -> None:
        """Send what the job has not delivered yet (its run is over: from the staging phase, before the final
        status), then stop following it. A failure leaves the streams to the final status."""
        with self._lock:
            followed = self._jobs.pop((manager, job_id), None)
        if followed is not None:
            self._send(followed, everything=True)

    def _send(self, followed: Followed, everything: bool) -> None:
        with followed.lock:
            self._send_locked(followed, everything)

    def _send_locked(self, followed: Followed, everything: bool) -> None:
        sent_any = False
        try:
            for stream in STREAMS:
                while True:
                    data = self._new_bytes(followed, stream)
                    if not data:
                        break
                    transfer.post_data(followed.urls[stream], data, os.path.basename(stream), timeout=self.timeout)
                    followed.offsets[stream] += len(data)
                    sent_any = True
                    if not everything:
                        break  # one chunk per stream per round: every job gets its turn
        except Exception as exc:  # TransferError, or a URL libcurl cannot take (UnicodeEncodeError): a failed post
            followed.failures += 1
            pause = min(self.interval * 2 ** followed.failures, BACKOFF_MAX)
            followed.next_try = time.monotonic() + pause
            log.log(logging.WARNING if followed.failures == 1 else logging.DEBUG,
                    "job %s [%s]: live output not delivered (%s); trying again in %.0f s", followed.job_id,
                    followed.manager, exc, pause)
        else:
            followed.failures, followed.next_try = 0, 0.0
        if sent_any:
            followed.delivered = True
            self._save(followed)

    def _new_bytes(self, followed: Followed, stream: str) -> bytes:
        opened = _regular(stream, followed.root)
        if opened is None:
            return b""
        fd, size = opened
        try:
            offset = followed.offsets.get(stream, 0)
            if size < offset:  # truncated (a new run of the script): start again from its beginning
                offset = followed.offsets[stream] = 0
            return os.pread(fd, min(size - offset, self.chunk_size), offset) if size > offset else b""
        finally:
            os.close(fd)

    def _save(self, followed: Followed) -> None:
        state = {**followed.offsets, "delivered": followed.delivered}
        try:
            directory = fsutil.open_directory("metadata", root=followed.root)
        except (OSError, fsutil.PathEscapes) as exc:
            log.debug("job %s: live output state not saved: %s", followed.job_id, exc)
            return
        try:
            fsutil.write_bytes_at(directory, STATE_FILE, json.dumps(state).encode())
        except OSError as exc:
            log.debug("job %s: live output state not saved: %s", followed.job_id, exc)
        finally:
            os.close(directory)
