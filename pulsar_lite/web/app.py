"""The REST face: a WSGI application (requests read through WebOb) over the job engine.

Routing (:mod:`pulsar_lite.web.routes`), authentication, error mapping and responses live here;
handlers live in
:mod:`pulsar_lite.web.handlers`. Every parameter comes from the query string,
upload bodies are raw bytes (never parsed as forms), and every failure a
client can cause is a 4xx with a one-line reason.
"""
from __future__ import annotations

import hmac
import json
import logging
import uuid
from http import HTTPStatus

from webob import Request

from .. import wire
from ..errors import PulsarLiteError, StoreUnavailable
from . import handlers
from .routes import MethodNotAllowed, NoRoute, Router

log = logging.getLogger(__name__)

#: where _dispatch leaves the route's name for the request counter
ROUTE_KEY = "pulsar_lite.route"
#: "404 Not Found" and the like, for every status the face answers with
STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class RestApp:
    def __init__(self, engine, file_cache=None):
        self.engine = engine
        self.config = engine.config
        self.file_cache = file_cache
        token = self.config.private_token
        self._token = token.encode() if token else None
        routes = []
        for name, method, template in wire.ROUTES:
            routes.append((template, method, getattr(handlers, name)))
        for name, method, template in wire.ROUTES:
            if name not in wire.OPEN_ROUTES:
                routes.append((wire.MANAGER_PREFIX + template, method, getattr(handlers, name)))
        self._router = Router(routes)
        self._open = {getattr(handlers, name) for name in wire.OPEN_ROUTES}
        self._metrics = getattr(engine, "metrics", None)
        service = getattr(engine, "tes", None)
        self.tes = None
        if service is not None:
            from ..tes.auth import TesAuth
            from ..tes.cors import Cors
            from ..tes.face import TesFace

            auth = TesAuth(self.config, self._authorized)  # private_token opens TES only without TES credentials
            auth.announce()
            self.tes = TesFace(service, auth, Cors(self.config.tes_cors_origins))

    # -- WSGI ---------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        status, headers, body = self.handle(request)
        metrics = self._metrics
        if metrics is not None:
            metrics.requests.labels(environ.get(ROUTE_KEY, "unmatched"), str(status)).inc()
        start_response(STATUS_LINES.get(status) or f"{status} Error", headers)
        return body

    def handle(self, request: Request) -> tuple[int, list[tuple[str, str]], object]:
        """(status, headers, WSGI body) for ``request``."""
        try:
            path = request.path_info or "/"
        except UnicodeDecodeError:
            return _error(400, "the request path is not valid UTF-8")
        if self.tes is not None:
            from ..tes.face import tes_path

            sub_path = tes_path(path)
            if sub_path is not None:
                request.environ[ROUTE_KEY] = "tes"
                return self.tes.handle(request, sub_path)
        try:
            handler, groups = self._router.match(request.method, path)
        except MethodNotAllowed:
            return _error(405, f"method {request.method} not allowed on {path}")
        except NoRoute:
            return _error(404, f"no such route: {request.method} {path}")
        return self._dispatch(request, path, handler, groups)

    def _dispatch(self, request: Request, path: str, handler, groups: dict):
        request.environ[ROUTE_KEY] = handler.__name__
        try:
            if handler not in self._open and not self._authorized(request):
                return _error(401, "missing or wrong private_token")
            manager = groups.pop("manager_name", wire.DEFAULT_MANAGER)
            if handler not in self._open:
                self.engine.manager_config(manager)  # unknown manager -> 404
            result = handler(self, request, manager, **groups)
        except PulsarLiteError as exc:
            if isinstance(exc, StoreUnavailable):  # the outage itself is logged once, by the store
                log.info("%s %s: 503, %s", request.method, path, exc)
            elif exc.status >= 500:
                log.error("%s %s: %s", request.method, path, exc)
            elif exc.status == 408:  # a client that stalls: the operator may want to know who
                log.warning("%s %s from %s: %s", request.method, path, request.environ.get("REMOTE_ADDR", "?"), exc)
            return _error(exc.status, str(exc))
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("internal error (reference %s) handling %s %s", reference, request.method, path)
            return _error(500, f"internal server error (reference {reference}, see the server log)")
        if result is handlers.OK:
            return _reply(200, "text/plain", b"OK")
        if isinstance(result, handlers.Raw):
            return _reply(result.status, result.content_type, result.body)
        if isinstance(result, handlers.Reply):
            return _reply(result.status, "application/json", json.dumps(result.payload).encode())
        if isinstance(result, handlers.FileBody):
            return 200, [("Content-Type", "application/octet-stream"),
                         ("Content-Length", str(result.remaining))], result
        return _reply(200, "application/json", json.dumps(result).encode())

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        offered = handlers.query(request).get("private_token")
        if offered is None:
            header = request.environ.get("HTTP_AUTHORIZATION", "")
            if header[:7].lower() == "bearer ":
                offered = header[7:].strip()
        if offered is None:
            return False
        return hmac.compare_digest(offered.encode(), self._token)


def _reply(status: int, content_type: str, body: bytes):
    return status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], [body]


def _error(status: int, message: str):
    message = message.replace("\n", " ").strip()
    return _reply(status, "text/plain; charset=UTF-8", (message + "\n").encode("utf-8", "replace"))
