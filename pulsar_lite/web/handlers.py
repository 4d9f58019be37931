"""REST handlers, one per route of :data:`pulsar_lite.wire.ROUTES`.

Each takes ``(app, request, manager, **path_args)`` and returns a JSON-able
value, :data:`OK` (a plain ``OK``) or a :class:`FileBody` (a file's bytes).
"""
from __future__ import annotations

import json
import os
from urllib.parse import unquote_plus

from .. import __version__, wire
from ..errors import BadRequest, LengthRequired, NotSupported, PayloadTooLarge
from ..fsutil import CHUNK


QUERY_KEY = "pulsar_lite.query"
#: what a handler returns for a plain ``OK`` reply
OK = object()


def parse_query(text: str) -> dict[str, str]:
    """Query parameters as webob's ``request.GET`` reads them: '&' and ';' separate, '+' is a space,
    %-escapes are UTF-8, a name without '=' has the value '', the last of a repeated name wins (only
    the fields that hold an escape are unquoted: half the cost of ``urllib.parse.parse_qsl``).
    UnicodeError when the text is not UTF-8."""
    if not text.isascii():
        text = text.encode("latin-1").decode("utf-8")  # PEP 3333: the raw bytes, as latin-1
    params = {}
    for field in text.replace(";", "&").split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors="strict")
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="strict")
        params[name] = value
    return params


def query(request) -> dict[str, str]:
    """The query string's parameters, parsed once per request; BadRequest when it is not UTF-8."""
    environ = request.environ
    params = environ.get(QUERY_KEY)
    if params is None:
        try:
            params = parse_query(environ.get("QUERY_STRING", ""))
        except UnicodeError:
            raise BadRequest("the query string is not valid UTF-8") from None
        environ[QUERY_KEY] = params
    return params


def _param(request, name: str, required: bool = False, default=None):
    value = query(request).get(name)
    if value is None or (required and value == ""):
        if required:
            raise BadRequest(f"missing parameter: {name}")
        return default
    if "\x00" in value:
        raise BadRequest(f"parameter {name} contains a NUL byte")
    return value


def _json_param(request, name: str, default=None):
    value = query(request).get(name)
    if value is None or value == "":
        return default
    try:
        return json.loads(value)
    except ValueError:
        raise BadRequest(f"parameter {name} is not valid JSON") from None


def _body(app, request):
    """The raw request body stream and its length (never form-decoded)."""
    length = request.environ.get("CONTENT_LENGTH")
    if length in (None, ""):
        if request.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            raise LengthRequired("chunked uploads are not supported: send Content-Length")
        return request.environ["wsgi.input"], 0
    try:
        size = int(length)
    except ValueError:
        raise BadRequest("invalid Content-Length") from None
    limit = app.config.max_upload_size
    if limit and size > limit:
        raise PayloadTooLarge(f"request body of {size} bytes is larger than max_upload_size ({limit} bytes)")
    return request.environ["wsgi.input"], size


# -- jobs ---------------------------------------------------------------------
def _pulsar_job_id(job_id):
    reserved = wire.reserved_job_id(job_id)
    if reserved:
        raise BadRequest(reserved)
    return job_id


def setup(app, request, manager):
    return app.engine.setup(
        manager,
        _pulsar_job_id(_param(request, "job_id", required=True)),
        tool_id=_param(request, "tool_id"),
        tool_version=_param(request, "tool_version"),
        preserve_galaxy_python_environment=_param(request, "preserve_galaxy_python_environment"),
    )


def clean(app, request, manager, job_id):
    app.engine.clean(manager, job_id)
    return OK


def submit(app, request, manager, job_id):
    _pulsar_job_id(job_id)
    launch = {name: _json_param(request, name) for name in wire.SUBMIT_JSON_PARAMS}
    launch["command_line"] = _param(request, "command_line", required=True)
    launch["submit_params"] = launch.pop("params") or {}
    token_endpoint = launch.get("token_endpoint")
    if isinstance(token_endpoint, dict):
        launch["token_endpoint"] = token_endpoint.get("token_endpoint")
    extras = launch.pop("submit_extras") or {}
    if not isinstance(extras, dict):
        raise BadRequest("submit_extras must be a JSON object")
    if launch.get("cvmfsexec"):
        raise NotSupported("cvmfsexec is not supported by pulsar_lite")
    app.engine.submit(manager, job_id, launch, touch_outputs=extras.get("touch_outputs") or [])
    return OK


def status(app, request, manager, job_id):
    return app.engine.status(manager, job_id)


def cancel(app, request, manager, job_id):
    app.engine.cancel(manager, job_id)
    return OK


# -- files --------------------------------------------------------------------
def upload_file(app, request, manager, job_id):
    name = _param(request, "name", required=True)
    file_type = _param(request, "type", required=True)
    cache_token = _param(request, "cache_token")
    if cache_token:
        cache_path = _file_cache(app).cached_path(cache_token)
        path = app.engine.upload(manager, job_id, name, file_type, None, None, cache_path=cache_path)
    else:
        stream, length = _body(app, request)
        path = app.engine.upload(manager, job_id, name, file_type, stream, length)
    return {"path": path}


def path(app, request, manager, job_id):
    name = _param(request, "name", required=True)
    file_type = _param(request, "type", required=True)
    return {"path": app.engine.path(manager, job_id, name, file_type)}


def download_output(app, request, manager, job_id):
    name = _param(request, "name", required=True)
    file_type = _param(request, "type", default="output")
    fd, size = app.engine.open_output(manager, job_id, name, file_type)
    return FileBody(fd, size)


class FileBody:
    """A response body read from an open descriptor: its first ``size`` bytes (the Content-Length),
    ``fsutil.CHUNK`` at a time (a small output in one read). The descriptor is closed when the server closes
    the body, whether or not the body was read (a generator's ``finally`` would not run when it was
    never started)."""

    def __init__(self, fd: int, size: int):
        self.fd, self.remaining = fd, size

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.remaining <= 0 or self.fd < 0:
            raise StopIteration
        chunk = os.read(self.fd, min(CHUNK, self.remaining))
        if not chunk:  # the file shrank while it was being sent
            raise StopIteration
        self.remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


# -- cache ----------------------------------------------------------------------
def _file_cache(app):
    if app.file_cache is None:
        raise BadRequest("file caching is not enabled on this server (set file_cache_dir)")
    return app.file_cache


def _client_ip(request) -> str:
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        return forwarded.split(",")[-1].strip()
    return request.environ.get("REMOTE_ADDR", "")


def file_available(app, request, manager):
    return _file_cache(app).status(_client_ip(request), _param(request, "path", required=True))


def cache_required(app, request, manager):
    return _file_cache(app).required(_client_ip(request), _param(request, "path", required=True))


def cache_insert(app, request, manager):
    cache = _file_cache(app)
    stream, length = _body(app, request)
    cache.insert(_client_ip(request), _param(request, "path", required=True), stream, length)
    return None


# -- object store (not provided) ----------------------------------------------------
def _no_object_store(app, request, manager, object_id=None):
    raise BadRequest("object store routes need an object store, which pulsar_lite does not provide "
                     "(object_store_config_file is not supported)")


object_store_exists = object_store_file_ready = object_store_create = _no_object_store
object_store_empty = object_store_size = object_store_delete = _no_object_store
object_store_get_data = object_store_get_filename = object_store_update_from_file = _no_object_store
object_store_get_store_usage_percent = _no_object_store


# -- health ---------------------------------------------------------------------------
class Reply:
    """A JSON reply with a status of its own (handlers otherwise answer 200)."""

    def __init__(self, status: int, payload):
        self.status = status
        self.payload = payload


class Raw:
    """A reply of bytes with a content type of its own."""

    def __init__(self, status: int, content_type: str, body: bytes):
        self.status = status
        self.content_type = content_type
        self.body = body


def metrics(app, request, manager):
    """Prometheus text format; with metrics_token set, only for ``Authorization: Bearer <metrics_token>``."""
    from ..metrics import CONTENT_TYPE

    token = app.config.metrics_token
    if token:
        import hmac

        header = request.environ.get("HTTP_AUTHORIZATION", "")
        offered = header[7:].strip() if header[:7].lower() == "bearer " else query(request).get("token", "")
        if not hmac.compare_digest(offered.encode(), token.encode()):
            return Raw(401, "text/plain; charset=UTF-8", b"missing or wrong metrics_token\n")
    registry = getattr(app.engine, "metrics", None)
    if registry is None:
        return Raw(404, "text/plain; charset=UTF-8", b"metrics are not collected by this engine\n")
    return Raw(200, CONTENT_TYPE, registry.exposition())


def readyz(app, request, manager):
    """200 when the daemon is ready for work: the store writable, every job held at the start recovered, every
    broker connected; 503 otherwise, saying what is missing. A manager whose scheduler cannot be reached is
    listed under ``degraded`` (its jobs wait; the daemon still takes work)."""
    engine = app.engine
    recovery = engine.recovery
    waiting = []
    reply = {"ready": True}
    if recovery is not None:
        reply["recovery"] = {"jobs": recovery.total, "remaining": recovery.remaining,
                             "finished": recovery.finished.is_set()}
        if not recovery.finished.is_set():
            blocked = f" (waiting: {recovery.error})" if recovery.error else ""
            waiting.append(f"recovering {recovery.remaining} of {recovery.total} job(s){blocked}")
    health = engine.store.health
    reply["store"] = {**health.status(), "deferred": len(engine.deferred)}
    if health.failing:
        waiting.append(f"the job store cannot be written ({health.error}); {len(engine.deferred)} change(s) of "
                       f"jobs wait to be recorded")
    if not engine.started_up or engine.stopped:
        waiting.append("the engine is not running")
    degraded = {name: why for name, why in ((name, getattr(manager, "unreachable", lambda: None)())
                                            for name, manager in engine.managers.items()) if why}
    if degraded:  # still ready: the others serve, and its jobs are accepted and wait for their scheduler
        reply["degraded"] = [f"manager {name}: {why}" for name, why in sorted(degraded.items())]
    face = getattr(engine, "amqp", None)
    if face is not None:
        health = face.health()
        reply["message_queue"] = health
        if not face.ready():
            waiting.extend(face.not_ready() or ["a message broker is not connected"])
    if waiting:
        reply.update(ready=False, waiting=waiting)
        return Reply(503, reply)
    return reply


def healthz(app, request, manager):
    reply = {"version": wire.PULSAR_VERSION, "pulsar_lite_version": __version__,
             "status": "ok" if app.engine.started_up else "starting"}
    face = getattr(app.engine, "amqp", None)
    if face is not None:
        reply["message_queue"] = face.health()
    return reply
