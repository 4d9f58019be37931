"""GA4GH TES v1.1.0 protocol facts, in one place: routes, states, views, the task document's fields and
their checks, paging tokens, time format.

The OpenAPI document of ga4gh/task-execution-schemas (tag v1.1) is the contract. Clients such as py-tes
refuse any field the schema does not define (at every level), a null file ``type``, an empty time, a
``cpu_cores`` that is not an integer: what this module emits is exactly the schema's fields.
"""
from __future__ import annotations

import base64
import json
import logging
import posixpath
import time

from ..errors import BadRequest

log = logging.getLogger(__name__)

BASE_PATH = "/ga4gh/tes/v1"
#: also answered, as py-tes tries it second (an empty prefix is tried third: the REST face's 404s)
ALT_BASE_PATHS = ("/v1",)
SPEC_VERSION = "1.1.0"


class State:
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"


STATES = (State.UNKNOWN, State.QUEUED, State.INITIALIZING, State.RUNNING, State.PAUSED, State.COMPLETE,
          State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED, State.PREEMPTED, State.CANCELING)
FINAL_STATES = frozenset({State.COMPLETE, State.EXECUTOR_ERROR, State.SYSTEM_ERROR, State.CANCELED,
                          State.PREEMPTED})
VIEWS = ("MINIMAL", "BASIC", "FULL")
DEFAULT_PAGE_SIZE = 256
MAX_PAGE_SIZE = 2047  # "Must be less than 2048"
FILE_TYPES = ("FILE", "DIRECTORY")

#: the schema's fields of each object (and nothing else may be emitted)
TASK_FIELDS = ("id", "state", "name", "description", "inputs", "outputs", "resources", "executors", "volumes",
               "tags", "logs", "creation_time")
INPUT_FIELDS = ("name", "description", "url", "path", "type", "content", "streamable")
OUTPUT_FIELDS = ("name", "description", "url", "path", "path_prefix", "type")
RESOURCE_FIELDS = ("cpu_cores", "preemptible", "ram_gb", "disk_gb", "zones", "backend_parameters",
                   "backend_parameters_strict")
#: the camelCase spellings of resource names (the spec README's example, and clients built from it) beside the
#: schema's snake_case ones; read as the schema's, emitted only as the schema's (``preemptible``, ``zones``: the same)
RESOURCE_ALIASES = {"cpuCores": "cpu_cores", "ramGb": "ram_gb", "diskGb": "disk_gb",
                    "backendParameters": "backend_parameters", "backendParametersStrict": "backend_parameters_strict"}
EXECUTOR_FIELDS = ("image", "command", "workdir", "stdin", "stdout", "stderr", "env", "ignore_error")
#: fields a client sends that the server sets: ignored on create
READ_ONLY = ("id", "state", "logs", "creation_time")


def rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


# -- the task document a client sends ---------------------------------------------------------------------------------
def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _list(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a JSON array")
    return value


def _string(value, what: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadRequest(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    if required and not value:
        raise BadRequest(f"{what} must not be empty")
    return value


def _absolute(value, what: str, required: bool = True) -> str | None:
    path = _string(value, what, required)
    if path is None:
        return None
    if not path.startswith("/") or "\x00" in path or "\n" in path:
        raise BadRequest(f"{what} must be an absolute path: {path[:100]!r}")
    if ".." in path.split("/"):
        raise BadRequest(f"{what} must not contain '..': {path[:100]!r}")
    return posixpath.normpath(path)


def _bool(value, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{what} must be true or false")
    return value


def _string_map(value, what: str) -> dict[str, str]:
    if value is None:
        return {}
    mapping = _object(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise BadRequest(f"{what} must map strings to strings")
    return dict(mapping)


def _known(obj: dict, fields: tuple[str, ...], what: str) -> None:
    """Fields the schema does not define are ignored (the schema allows additional properties, and clients
    written for other TES versions send some); logged so that a misspelt field can be found."""
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        log.info("TES %s: ignored field(s) the schema does not define: %s", what, ", ".join(unknown))


def has_wildcards(path: str) -> bool:
    return any(c in path for c in "*?[")


def _leads_to(prefix: str, path: str) -> bool:
    """Whether the (normalized, absolute) ``prefix`` is ``path`` or a directory on its way."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def read_task(body) -> dict:
    """A CreateTask body checked against the schema, with defaults filled in (file types, ignore_error, ...).
    Raises BadRequest with a one-line reason."""
    task = _object(body, "the task")
    _known(task, TASK_FIELDS, "task")
    executors = _list(task.get("executors"), "executors")
    if not executors:
        raise BadRequest("executors is required: at least one")
    clean = {"name": _string(task.get("name"), "name"), "description": _string(task.get("description"), "description"),
             "tags": _string_map(task.get("tags"), "tags"), "executors": [], "inputs": [], "outputs": [],
             "volumes": [_absolute(v, "volumes[]") for v in _list(task.get("volumes"), "volumes")]}
    for n, raw in enumerate(executors):
        executor = _object(raw, f"executors[{n}]")
        _known(executor, EXECUTOR_FIELDS, f"executors[{n}]")
        command = _list(executor.get("command"), f"executors[{n}].command")
        if not command or not all(isinstance(c, str) for c in command):
            raise BadRequest(f"executors[{n}].command must be a non-empty array of strings")
        image = _string(executor.get("image"), f"executors[{n}].image", required=True)
        if image.startswith("-") or any(c.isspace() for c in image):
            raise BadRequest(f"executors[{n}].image is not an image name: {image[:100]!r}")
        clean["executors"].append({
            "image": image,
            "command": list(command),
            "workdir": _absolute(executor.get("workdir"), f"executors[{n}].workdir", required=False),
            "stdin": _absolute(executor.get("stdin"), f"executors[{n}].stdin", required=False),
            "stdout": _absolute(executor.get("stdout"), f"executors[{n}].stdout", required=False),
            "stderr": _absolute(executor.get("stderr"), f"executors[{n}].stderr", required=False),
            "env": _string_map(executor.get("env"), f"executors[{n}].env"),
            "ignore_error": _bool(executor.get("ignore_error"), f"executors[{n}].ignore_error"),
        })
    for n, raw in enumerate(_list(task.get("inputs"), "inputs")):
        entry = _object(raw, f"inputs[{n}]")
        _known(entry, INPUT_FIELDS, f"inputs[{n}]")
        content = _string(entry.get("content"), f"inputs[{n}].content")
        url = None if content else _string(entry.get("url"), f"inputs[{n}].url", required=True)
        clean["inputs"].append({
            "name": _string(entry.get("name"), f"inputs[{n}].name"),
            "description": _string(entry.get("description"), f"inputs[{n}].description"),
            "url": url, "path": _absolute(entry.get("path"), f"inputs[{n}].path"),
            "type": _file_type(entry.get("type"), f"inputs[{n}].type"), "content": content,
            "streamable": _bool(entry.get("streamable"), f"inputs[{n}].streamable")})
    for n, raw in enumerate(_list(task.get("outputs"), "outputs")):
        entry = _object(raw, f"outputs[{n}]")
        _known(entry, OUTPUT_FIELDS, f"outputs[{n}]")
        path = _absolute(entry.get("path"), f"outputs[{n}].path")
        prefix = _absolute(entry.get("path_prefix"), f"outputs[{n}].path_prefix", required=False)
        if has_wildcards(path) and not prefix:
            raise BadRequest(f"outputs[{n}].path_prefix is required: the path has wildcards")
        if has_wildcards(path) and not _leads_to(prefix, path):
            raise BadRequest(f"outputs[{n}].path_prefix must be a prefix of its path (whole directories): "
                             f"{prefix[:100]!r} of {path[:100]!r}")
        clean["outputs"].append({
            "name": _string(entry.get("name"), f"outputs[{n}].name"),
            "description": _string(entry.get("description"), f"outputs[{n}].description"),
            "url": _string(entry.get("url"), f"outputs[{n}].url", required=True), "path": path,
            "path_prefix": prefix if has_wildcards(path) else None,
            "type": _file_type(entry.get("type"), f"outputs[{n}].type")})
    clean["resources"] = _resources(task.get("resources"))
    return clean


def _file_type(value, what: str) -> str:
    if value is None:
        return "FILE"
    if value not in FILE_TYPES:
        raise BadRequest(f"{what} must be FILE or DIRECTORY")
    return value


def _resources(value) -> dict:
    if value is None:
        return {}
    resources = dict(_object(value, "resources"))
    for camel, snake in RESOURCE_ALIASES.items():
        if camel in resources:
            spelt = resources.pop(camel)
            if snake in resources and resources[snake] != spelt:
                raise BadRequest(f"resources.{camel} and resources.{snake} are the same field with two values: "
                                 f"give one")
            resources[snake] = spelt
    _known(resources, RESOURCE_FIELDS, "resources")
    clean = {}
    cores = resources.get("cpu_cores")
    if cores is not None:
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
            raise BadRequest("resources.cpu_cores must be a positive integer")
        clean["cpu_cores"] = cores
    for key in ("ram_gb", "disk_gb"):
        amount = resources.get(key)
        if amount is not None:
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
                raise BadRequest(f"resources.{key} must be a positive number")
            clean[key] = amount
    if resources.get("preemptible") is not None:
        clean["preemptible"] = _bool(resources["preemptible"], "resources.preemptible")
    zones = _list(resources.get("zones"), "resources.zones")
    if zones:
        if not all(isinstance(z, str) for z in zones):
            raise BadRequest("resources.zones must be an array of strings")
        clean["zones"] = zones
    parameters = _string_map(resources.get("backend_parameters"), "resources.backend_parameters")
    if parameters:
        clean["backend_parameters"] = {k.lower(): v for k, v in parameters.items()}  # keys are case-insensitive
    clean["backend_parameters_strict"] = _bool(resources.get("backend_parameters_strict"),
                                               "resources.backend_parameters_strict")
    return clean


# -- query parameters --------------------------------------------------------------------------------------------------
def read_view(value: str | None) -> str:
    view = (value or "MINIMAL").upper()
    if view not in VIEWS:
        raise BadRequest(f"view must be one of {', '.join(VIEWS)}")
    return view


def read_page_size(value: str | None) -> int:
    if value in (None, ""):
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise BadRequest("page_size must be an integer") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return size


def read_state_filter(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}")
    return value


def read_tag_filter(keys: list[str], values: list[str]) -> dict[str, str]:
    """tag_key and tag_value zipped by position; a missing value matches any value of the key."""
    return {key: (values[n] if n < len(values) else "") for n, key in enumerate(keys)}


def tags_match(wanted: dict[str, str], tags: dict[str, str]) -> bool:
    return all(key in tags and (not value or tags[key] == value) for key, value in wanted.items())


def page_token(created: float, task_id: str) -> str:
    """An opaque token: where the next page starts (the last task of this one, in creation order)."""
    return base64.urlsafe_b64encode(json.dumps([created, task_id]).encode()).decode().rstrip("=")


def read_page_token(token: str | None) -> tuple[float, str] | None:
    if not token:
        return None
    try:
        created, task_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return float(created), str(task_id)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("page_token is not one this server gave out") from None
