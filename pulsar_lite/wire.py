"""Protocol facts of the Galaxy Pulsar wire protocol, in one place.

Every transport (REST, AMQP, ...) and the job engine take states, route
names, file types, queue names and payload constants from here, so a
protocol detail is written down exactly once.
"""
from __future__ import annotations

import re

#: Version reported to clients (setup reply, status payload, /healthz).
#: Galaxy gates features on it (>= 0.15.13.dev0 for collector descriptions).
PULSAR_VERSION = "0.16.0"

DEFAULT_MANAGER = "_default_"


class State:
    PREPROCESSING = "preprocessing"
    QUEUED = "queued"
    RUNNING = "running"
    POSTPROCESSING = "postprocessing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


#: Internal state of a job that was set up (or had files uploaded) but not
#: submitted yet. It is reported on the wire as ``preprocessing``.
SETUP = "setup"

ALL_STATES = (
    SETUP,
    State.PREPROCESSING,
    State.QUEUED,
    State.RUNNING,
    State.POSTPROCESSING,
    State.COMPLETE,
    State.FAILED,
    State.CANCELLED,
    State.LOST,
)
TERMINAL_STATES = frozenset({State.COMPLETE, State.FAILED, State.CANCELLED, State.LOST})
#: States of a submitted job that has not finished (its manager or its staging still has work to do).
ACTIVE_STATES = (State.PREPROCESSING, State.QUEUED, State.RUNNING, State.POSTPROCESSING)
#: States published as ``status_update`` messages by message-queue transports.
PUBLISHED_STATES = frozenset({State.RUNNING, State.COMPLETE, State.FAILED, State.LOST})
#: Allowed forward moves of the lifecycle (SETUP may be re-entered when a
#: finished job id is set up afresh; that is a reset, not a transition).
TRANSITIONS = {
    SETUP: {State.PREPROCESSING, State.QUEUED, State.FAILED, State.CANCELLED},
    State.PREPROCESSING: {State.QUEUED, State.FAILED, State.CANCELLED},
    State.QUEUED: {State.RUNNING, State.POSTPROCESSING, State.FAILED, State.CANCELLED, State.LOST},
    State.RUNNING: {State.POSTPROCESSING, State.FAILED, State.CANCELLED, State.LOST},
    State.POSTPROCESSING: {State.COMPLETE, State.FAILED},
}


def wire_state(state: str) -> str:
    """The status string a client sees for an internal state."""
    return State.PREPROCESSING if state == SETUP else state


def complete_flag(state: str) -> str:
    """``complete`` is the *string* "true"/"false" on the wire."""
    return "true" if state in TERMINAL_STATES else "false"


# --------------------------------------------------------------------------
# Job directory layout (reference section 4.4)

JOB_SUBDIRS = ("inputs", "working", "outputs", "configs", "tool_files", "metadata")

#: path type -> (sub directory or "" for the job directory, nested names allowed)
FILE_TYPES = {
    "input": ("inputs", True),
    "unstructured": ("unstructured", True),
    "config": ("configs", False),
    "tool": ("tool_files", True),
    "jobdir": ("", False),
    "workdir": ("working", False),
    "metadata": ("metadata", True),
    "output": ("outputs", True),
    "output_workdir": ("working", True),
    "output_metadata": ("metadata", True),
    "output_jobdir": ("", False),
}
#: Types whose names may carry fnmatch globs (upload, path, collection).
GLOB_TYPES = frozenset({"output_workdir"})
#: Directory used by ``download_output`` per type; every other type -> outputs.
DOWNLOAD_DIRS = {"output": "outputs", "output_workdir": "working", "output_metadata": "metadata"}

# --------------------------------------------------------------------------
# Streams

#: Streams in a status reply are capped to this many bytes (head + tail).
STATUS_STREAM_CAP = 64 * 1024
STREAM_ELISION = "\n..\n"

DEFAULT_DYNAMIC_OUTPUTS = (
    r"primary_.*|galaxy.json|metadata_.*|dataset_\d+\.dat|__instrument_.*|"
    r"dataset_\d+_files.+|outputs_populated/.*|tool_stdout|tool_stderr"
)

# --------------------------------------------------------------------------
# REST route table (reference section 1.3). Each route is also reachable
# under ``/managers/{manager_name}``. ``None`` as method = any method.

ROUTES = (
    ("setup", "POST", "/jobs"),
    ("clean", "DELETE", "/jobs/{job_id}"),
    ("submit", "POST", "/jobs/{job_id}/submit"),
    ("status", None, "/jobs/{job_id}/status"),
    ("cancel", "PUT", "/jobs/{job_id}/cancel"),
    ("upload_file", "POST", "/jobs/{job_id}/files"),
    ("path", "GET", "/jobs/{job_id}/files/path"),
    ("download_output", "GET", "/jobs/{job_id}/files"),
    ("file_available", "GET", "/cache/status"),
    ("cache_required", "PUT", "/cache"),
    ("cache_insert", "POST", "/cache"),
    ("object_store_exists", None, "/objects/{object_id}/exists"),
    ("object_store_file_ready", None, "/objects/{object_id}/file_ready"),
    ("object_store_create", "POST", "/objects/{object_id}"),
    ("object_store_empty", None, "/objects/{object_id}/empty"),
    ("object_store_size", None, "/objects/{object_id}/size"),
    ("object_store_delete", "DELETE", "/objects/{object_id}"),
    ("object_store_get_data", "GET", "/objects/{object_id}"),
    ("object_store_get_filename", None, "/objects/{object_id}/filename"),
    ("object_store_update_from_file", "PUT", "/objects/{object_id}"),
    ("object_store_get_store_usage_percent", None, "/object_store_usage_percent"),
    ("healthz", "GET", "/healthz"),
    ("readyz", "GET", "/readyz"),  # pulsar_lite's own: 200 once ready for work, else 503 (load balancers)
    ("metrics", "GET", "/metrics"),  # pulsar_lite's own: Prometheus (its own optional token: metrics_token)
)
#: routes answered without private_token
OPEN_ROUTES = frozenset({"healthz", "readyz", "metrics"})
MANAGER_PREFIX = "/managers/{manager_name}"

#: Submit query parameters that carry JSON documents.
SUBMIT_JSON_PARAMS = (
    "params",
    "dependencies_description",
    "setup_params",
    "remote_staging",
    "env",
    "submit_extras",
    "dynamic_file_sources",
    "cvmfsexec",
    "token_endpoint",
)

#: Keys of a launch config (what MQ setup messages carry and what is stored).
LAUNCH_KEYS = (
    "remote_staging",
    "command_line",
    "dependencies_description",
    "submit_params",
    "env",
    "setup_params",
    "dynamic_file_sources",
    "token_endpoint",
    "cvmfsexec",
)

#: A launch config's keys with Pulsar's value when a launch leaves them out (manager_endpoint_util.submit_job).
LAUNCH_DEFAULTS = {
    "remote_staging": {},
    "dependencies_description": None,
    "submit_params": {},
    "env": [],
    "setup_params": {},
    "dynamic_file_sources": None,
    "token_endpoint": None,
    "cvmfsexec": None,
}
#: JSON type each launch key must have when present (None is always accepted and means the default).
LAUNCH_TYPES = {"remote_staging": dict, "submit_params": dict, "env": list, "setup_params": dict,
                "dependencies_description": dict, "dynamic_file_sources": list}


def read_launch(body: dict) -> dict:
    """One reading of a launch, for every face: the REST submit's parameters (JSON decoded, ``params`` given as
    ``submit_params``) or an MQ setup message. Returns the launch config (``LAUNCH_KEYS`` with Pulsar's defaults
    for what is absent) plus ``setup``: whether the job is set up first, as Pulsar decides it — a truthy ``setup``
    flag ("allow just specifying setup=True in launch message") or non-empty ``setup_params``. Set up with the
    launch's own job id, and the tool id and version from ``setup_params`` (top-level ``tool_id``/``tool_version``
    are not read, as in Pulsar; a ``setup_params.job_id`` that names another job is not followed: Pulsar would
    set up that directory and launch in this one). Raises ValueError with a one-line reason for a key of the
    wrong type."""
    launch = {}
    for key in LAUNCH_KEYS:
        value = body.get(key)
        expected = LAUNCH_TYPES.get(key)
        if value is not None and expected is not None and not isinstance(value, expected):
            raise ValueError(f"{key} must be a JSON {'object' if expected is dict else 'list'}")
        launch[key] = value if value is not None else _fresh(LAUNCH_DEFAULTS.get(key))
    launch["setup"] = bool(body.get("setup")) or bool(launch["setup_params"])
    return launch


def _fresh(default):
    return type(default)() if isinstance(default, (dict, list)) else default


JOB_DIRECTORY_TOKEN = "__PULSAR_JOB_DIRECTORY__"
REMOVED_JOBS_DIRECTORY_TOKEN = "__PULSAR_JOBS_DIRECTORY__"

# --------------------------------------------------------------------------
# AMQP naming (reference section 2.2)

AMQP_EXCHANGE = "pulsar"
AMQP_CONSUMED = ("setup", "kill", "status")


def amqp_queue_name(logical: str, manager: str = DEFAULT_MANAGER, key_prefix: str | None = None) -> str:
    """``pulsar__setup``, ``pulsar_<manager>__setup`` or ``<prefix>_setup``."""
    if key_prefix:
        prefix = key_prefix
    elif manager == DEFAULT_MANAGER:
        prefix = "pulsar_"
    else:
        prefix = f"pulsar_{manager}_"
    return f"{prefix}_{logical}"


# --------------------------------------------------------------------------
# Identifiers

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")
_MANAGER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


#: Job ids the engine gives GA4GH TES tasks (pulsar_lite.tes) start with this; the Pulsar faces refuse to set
#: up or submit such ids, so a Pulsar job and a TES task never share a job in the store.
RESERVED_JOB_ID_PREFIX = "tes-"


def reserved_job_id(job_id) -> str | None:
    """Why a Pulsar client may not use ``job_id``, or None."""
    if isinstance(job_id, str) and job_id.startswith(RESERVED_JOB_ID_PREFIX):
        return f"job ids starting with {RESERVED_JOB_ID_PREFIX!r} are reserved for TES tasks"
    return None


def valid_job_id(job_id: str) -> bool:
    return bool(job_id) and job_id not in (".", "..") and bool(_JOB_ID_RE.match(job_id))


def valid_manager_name(name: str) -> bool:
    return bool(_MANAGER_RE.match(name or ""))
