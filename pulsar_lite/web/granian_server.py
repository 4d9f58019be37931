"""Serve the REST face with granian (Rust HTTP/1.1 server, WSGI interface) instead of paste.

Chosen with ``web_server: granian`` or ``pulsar-lite serve --server granian``. granian
runs a supervisor process and one worker process; the worker is forked from this
process after the configuration is loaded, builds the engine and the WSGI application
(``_load_app``) and runs requests on ``web_threads`` Python threads (idle connections and
waiting requests are held by granian's Rust runtime, not by threads; a request whose body is still
arriving does hold its thread: granian reads the body as the application asks for it). If the worker
dies, the supervisor starts a new one, which reloads and reconciles every job from the
store like any restart. Only one worker: the engine owns the store and the job
processes, so it must be a single process.
"""
from __future__ import annotations

import json
import logging
import multiprocessing.util
import os
import ssl
import threading
import time
import urllib.request
from pathlib import Path

from ..config.schema import DEFAULT_WEB_THREADS
from ..errors import ConfigError

#: the readiness probe of its own /healthz (loopback: the certificate names the host's public name)
_UNVERIFIED = ssl._create_unverified_context()

log = logging.getLogger("pulsar_lite")

#: room for the request headers on top of the longest accepted request line
HEADER_ROOM = 64 * 1024
#: the longest header read timeout granian accepts
GRANIAN_MAX_HEADER_READ_TIMEOUT_MS = 60_000


def _import_granian():
    try:
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings
        from granian.server import Server
    except ImportError as exc:
        raise ConfigError(f"web_server: granian needs the granian package ({exc}); "
                          f"install it with: pip install 'pulsar_lite[granian]'") from None
    return Server, Interfaces, HTTP1Settings


def _load_app(config):
    """Runs in the granian worker: engine (reload + reconcile) and WSGI app, stopped when the worker exits."""
    from .. import startup

    startup.configure(config)
    app = startup.build_app(config)
    # multiprocessing runs finalizers with an exit priority when the worker process ends (granian
    # stops it with SIGTERM); the engine closes its store and the AMQP face its connections
    multiprocessing.util.Finalize(app, startup.stop, args=(app.engine,), exitpriority=10)
    log.info("pulsar_lite worker %s serving (granian)", os.getpid())
    return app


def header_read_timeout_ms(timeout: float | None) -> int:
    """granian's limit for reading request headers, in its range (1 ms to 60 s); None: its longest."""
    if timeout is None:
        return GRANIAN_MAX_HEADER_READ_TIMEOUT_MS
    return max(1, min(GRANIAN_MAX_HEADER_READ_TIMEOUT_MS, int(timeout * 1000)))


def serve_granian(config) -> None:
    Server, Interfaces, HTTP1Settings = _import_granian()
    host, port = config.host, int(config.port)
    secure = {}
    if config.ssl_pem:
        from .. import tls

        tls.server_context(config.ssl_pem)  # refused here, with the reason, when it cannot serve
        secure = {"ssl_cert": Path(config.ssl_pem), "ssl_key": Path(config.ssl_pem)}
    server = Server(
        "pulsar_lite",  # the target name; _load_app below builds the application instead
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=config.web_threads or DEFAULT_WEB_THREADS,
        backlog=1024,
        http1_settings=HTTP1Settings(max_buffer_size=max(8192, config.max_request_line + HEADER_ROOM),
                                     header_read_timeout=header_read_timeout_ms(config.web_io_timeout)),
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        log_enabled=True,
        log_level=config.log_level.lower(),
        **secure,
    )
    log.info("pulsar_lite serving on %s://%s:%s/ with granian (staging %s, state %s)",
             "https" if secure else "http", host, port,
             ", ".join(m.staging_directory for m in config.managers.values()), config.store_path)
    threading.Thread(target=_notify_when_serving, args=(host, port, bool(secure)), name="pulsar-lite-ready",
                     daemon=True).start()
    # systemctl reload (SIGHUP): granian would start a second worker beside the one holding the job state, which
    # cannot take it, and then stop both; a renewed certificate needs a restart under granian
    server.signal_handler_reload = lambda *args, **kwargs: log.info("SIGHUP: nothing reloaded (granian: restart "
                                                                     "to load a renewed ssl_pem)")
    server.serve(target_loader=lambda: _load_app(config), wrap_loader=False)


def _notify_when_serving(host: str, port: int, secure: bool = False, timeout: float = 300) -> None:
    """READY=1 from the main process (systemd's NotifyAccess=main) once the worker answers /healthz."""
    from .. import startup

    if not os.environ.get("NOTIFY_SOCKET"):
        return
    address = f"[{host}]" if ":" in host else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{'https' if secure else 'http'}://{address}:{port}/healthz", timeout=2,
                                        context=_UNVERIFIED if secure else None) as response:
                if json.load(response).get("status") == "ok":
                    startup.notify("READY=1")
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
