"""The TES HTTP face: GA4GH TES v1.1 routes at /ga4gh/tes/v1 (and /v1), inside the REST face's WSGI app.

Unknown paths answer 404 before any authentication, as clients such as py-tes try several base paths and
move on only after a 404; a CORS preflight is answered before it too (``cors.py``). Errors are JSON objects
``{"message": ..., "status_code": ...}`` (the spec leaves their body to the implementation). Who may use
the routes, and which tasks each caller sees: ``auth.py``.
"""
from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import parse_qsl

from ..errors import BadRequest, NotFound, PayloadTooLarge, PulsarLiteError
from . import protocol
from .auth import TesAuth
from .cors import Cors
from .service import TesService

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024 * 1024
BASES = (protocol.BASE_PATH, *protocol.ALT_BASE_PATHS)


def tes_path(path: str) -> str | None:
    """The part of ``path`` under a TES base path, or None when it is not a TES path."""
    for base in BASES:
        if path == base or path.startswith(base + "/"):
            return path[len(base):] or "/"
    return None


class TesFace:
    def __init__(self, service: TesService, auth: TesAuth, cors: Cors | None = None):
        self.service = service
        self.auth = auth
        self.cors = cors or Cors([])

    def handle(self, request, sub_path: str) -> tuple[int, list, list]:
        status, headers, body = self._handle(request, sub_path)
        return status, headers + self.cors.headers(request.environ.get("HTTP_ORIGIN")), body

    def _handle(self, request, sub_path: str) -> tuple[int, list, list]:
        method = request.method
        if method == "OPTIONS" and self.cors.enabled:
            methods = _methods(sub_path)
            if not methods:
                return _error(404, f"no such TES route: {method} {sub_path}")
            return 204, self.cors.preflight(request.environ.get("HTTP_ORIGIN"), methods), []
        try:
            handler, arguments = self._route(method, sub_path)
        except PulsarLiteError as exc:
            return _error(exc.status, str(exc))
        try:
            caller = self.auth.caller(request)  # shared token: reads the query string (400 when not UTF-8)
            if caller is None:
                status, headers, body = _error(401, "missing or wrong credentials (Authorization: Bearer <token>, "
                                                    "or Basic)")
                return status, headers + self.auth.challenges(), body
            return _reply(200, handler(request, caller, *arguments))
        except PulsarLiteError as exc:
            if exc.status >= 500:
                log.error("TES %s %s: %s", method, sub_path, exc)
            return _error(exc.status, str(exc))
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("internal error (reference %s) handling TES %s %s", reference, method, sub_path)
            return _error(500, f"internal server error (reference {reference}, see the server log)")

    def _route(self, method: str, path: str):
        methods = _methods(path)
        if not methods:
            raise NotFound(f"no such TES route: {method} {path}")
        parts = path.strip("/").split("/")
        if parts == ["service-info"]:
            return self._expect(method, "GET", self.service_info), ()
        if parts == ["tasks"]:
            if method == "GET":
                return self.list_tasks, ()
            return self._expect(method, "POST", self.create_task), ()
        if parts[1].endswith(":cancel"):
            return self._expect(method, "POST", self.cancel_task), (parts[1][:-len(":cancel")],)
        return self._expect(method, "GET", self.get_task), (parts[1],)

    @staticmethod
    def _expect(method: str, wanted: str, handler):
        if method != wanted:
            raise _MethodNotAllowed(f"method {method} not allowed here (use {wanted})")
        return handler

    # -- handlers --------------------------------------------------------------------------------------
    def service_info(self, request, caller) -> dict:
        return self.service.service_info()

    def create_task(self, request, caller) -> dict:
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise PayloadTooLarge(f"a task document may not be larger than {MAX_BODY} bytes")
        body = request.body_file.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"a task document may not be larger than {MAX_BODY} bytes")
        try:
            document = json.loads(body or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        return {"id": self.service.create(document, owner=None if caller.admin else caller.name)}

    def get_task(self, request, caller, task_id: str) -> dict:
        query = _query(request)
        return self.service.get(task_id, protocol.read_view(_one(query, "view")), caller)

    def list_tasks(self, request, caller) -> dict:
        query = _query(request)
        return self.service.list(
            view=protocol.read_view(_one(query, "view")),
            page_size=protocol.read_page_size(_one(query, "page_size")),
            after=protocol.read_page_token(_one(query, "page_token")),
            name_prefix=_one(query, "name_prefix") or None,
            state=protocol.read_state_filter(_one(query, "state")),
            tags=protocol.read_tag_filter(query.get("tag_key", []), query.get("tag_value", [])),
            caller=caller)

    def cancel_task(self, request, caller, task_id: str) -> dict:
        self.service.cancel(task_id, caller)
        return {}


class _MethodNotAllowed(PulsarLiteError):
    status = 405


def _methods(path: str) -> tuple[str, ...]:
    """The methods the TES route at ``path`` takes; () when there is no such route."""
    parts = path.strip("/").split("/")
    if parts == ["service-info"]:
        return ("GET",)
    if parts == ["tasks"]:
        return ("GET", "POST")
    if len(parts) == 2 and parts[0] == "tasks" and parts[1]:
        return ("POST",) if parts[1].endswith(":cancel") else ("GET",)
    return ()


def _query(request) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(request.environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
    except UnicodeError:
        raise BadRequest("the query string is not valid UTF-8") from None
    query: dict[str, list[str]] = {}
    for key, value in pairs:
        query.setdefault(key, []).append(value)
    return query


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _reply(status: int, payload) -> tuple[int, list, list]:
    body = json.dumps(payload).encode()
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], [body]


def _error(status: int, message: str):
    return _reply(status, {"message": message.replace("\n", " ").strip(), "status_code": status})
