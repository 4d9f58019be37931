"""The REST face: a WebOb WSGI application over the job engine.

Routing, authentication and error mapping live here; handlers live in
:mod:`pulsar_lite.web.handlers`. Every parameter comes from the query string,
upload bodies are raw bytes (never parsed as forms), and every failure a
client can cause is a 4xx with a one-line reason.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import uuid

from webob import Request, Response

from .. import wire
from ..errors import PulsarLiteError
from . import handlers

log = logging.getLogger(__name__)


def _compile(template: str) -> re.Pattern:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}$")


class RestApp:
    def __init__(self, engine, file_cache=None):
        self.engine = engine
        self.config = engine.config
        self.file_cache = file_cache
        token = self.config.private_token
        self._token = token.encode() if token else None
        self._routes = []
        for name, method, template in wire.ROUTES:
            handler = getattr(handlers, name)
            self._routes.append((_compile(template), method, handler, False))
            if name != "healthz":
                self._routes.append((_compile(wire.MANAGER_PREFIX + template), method, handler, True))

    # -- WSGI ---------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path_info or "/"
        matched_path = False
        for pattern, method, handler, prefixed in self._routes:
            match = pattern.match(path)
            if not match:
                continue
            matched_path = True
            if method is not None and request.method != method:
                continue
            return self._dispatch(request, handler, match.groupdict())
        if matched_path:
            return _error(405, f"method {request.method} not allowed on {path}")
        return _error(404, f"no such route: {request.method} {path}")

    def _dispatch(self, request: Request, handler, groups: dict) -> Response:
        try:
            if handler is not handlers.healthz and not self._authorized(request):
                return _error(401, "missing or wrong private_token")
            manager = groups.pop("manager_name", wire.DEFAULT_MANAGER)
            if handler is not handlers.healthz:
                self.engine.manager_config(manager)  # unknown manager -> 404
            result = handler(self, request, manager, **groups)
        except PulsarLiteError as exc:
            if exc.status >= 500:
                log.error("%s %s: %s", request.method, request.path_info, exc)
            elif exc.status == 408:  # a client that stalls: the operator may want to know who
                log.warning("%s %s from %s: %s", request.method, request.path_info,
                            request.environ.get("REMOTE_ADDR", "?"), exc)
            return _error(exc.status, str(exc))
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("internal error (reference %s) handling %s %s", reference, request.method,
                          request.path_info)
            return _error(500, f"internal server error (reference {reference}, see the server log)")
        if isinstance(result, Response):
            return result
        return json_response(result)

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        offered = handlers.query(request).get("private_token")
        if offered is None:
            header = request.headers.get("Authorization", "")
            if header[:7].lower() == "bearer ":
                offered = header[7:].strip()
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode(), self._token)


def json_response(value) -> Response:
    body = json.dumps(value).encode()
    return Response(body=body, content_type="application/json", charset=None)


def ok_response() -> Response:
    return Response(body=b"OK", content_type="text/plain", charset=None)


def _error(status: int, message: str) -> Response:
    message = message.replace("\n", " ").strip()
    return Response(status=status, body=(message + "\n").encode("utf-8", "replace"),
                    content_type="text/plain", charset="utf-8")
