"""Serving: the HTTP server (paste, or granian in web/granian_server.py) or none (MQ only), over the parts
``pulsar_lite.startup`` builds. SIGTERM stops gracefully: no new connections, requests in flight finish,
the AMQP outbox is flushed for a few seconds, transfers in flight stop where they can resume, exit 0."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading

from . import affinity, startup, tls
from .config import AppConfig
from .config.schema import DEFAULT_WEB_THREADS
from .errors import ConfigError
from .store import claim_state

log = logging.getLogger("pulsar_lite")


def _handler_class(max_request_line: int, io_timeout: float | None):
    from paste.httpserver import WSGIHandler

    class Handler(WSGIHandler):
        """Paste's handler with a bounded request line (submit sends long query strings) and a timeout on
        every read and write of the connection. paste gives each accepted connection a thread: without a
        timeout a client that goes silent mid-upload, or keeps an idle connection open, holds its thread
        for good (and web_threads such clients the whole server). (paste's own socket_timeout does not
        work with its thread pool, which makes each connection blocking again; StreamRequestHandler
        applies ``timeout`` when the handler starts on its thread.)"""

        timeout = io_timeout

        def setup(self):
            super().setup()
            # a reply's status line and headers, then its body, are two small writes: with Nagle's algorithm
            # the second waits for the client's delayed ACK of the first, 40 ms on every keep-alive request
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def handle_one_request(self):
            self.raw_requestline = self.rfile.readline(max_request_line + 1)
            if not self.raw_requestline:
                self.close_connection = 1
                return
            if len(self.raw_requestline) > max_request_line:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414, "request line longer than max_request_line")
                self.close_connection = 1
                return
            if not self.parse_request():
                return
            self.wsgi_execute()

        def log_request(self, code="-", size="-"):
            log.debug("%s %s", code, self.requestline.split("?", 1)[0])

    return Handler


def serve_without_web(config: AppConfig) -> None:
    """MQ-only mode: no HTTP listener, jobs arrive over the message queue."""
    affinity.pin(config.daemon_cpus)
    engine = startup.start_parts(config)
    if engine.amqp is None:
        log.warning("--no-web without message_queue_url: nothing can submit jobs to this daemon")
    stopping = threading.Event()

    def stop(signum, frame):
        log.info("signal %s: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: log.info("SIGHUP: nothing to reload without a web face"))
    log.info("pulsar_lite running without web face (state %s)", config.store_path)
    startup.notify("READY=1")
    while not stopping.wait(1):
        pass
    startup.notify("STOPPING=1")
    startup.stop(engine)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, before the engine takes up any job. (granian binds
    with SO_REUSEPORT: a second daemon would otherwise share the port and get half the requests.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror} (is another pulsar_lite "
                              f"or another server running there?)") from None


def serve(config: AppConfig) -> None:
    host, port = config.host, int(config.port)
    check_port_free(host, port)
    if not config.private_token:
        log.warning("no private_token is set: anyone who can reach %s:%s can run jobs as this user", host, port)
    affinity.pin(config.daemon_cpus)  # before any thread (granian: its worker process inherits the mask)
    if config.web_server == "granian":
        from .tes.auth import check

        check(config)  # here, at once: a worker failing on a wrong tes_users_file would be restarted over and over
        from .web.granian_server import serve_granian

        # the worker process takes the state; refuse here, at once, when another daemon has it (a worker
        # failing on it would be restarted over and over)
        os.close(claim_state(config.store_path))
        return serve_granian(config)
    from paste import httpserver

    context = tls.server_context(config.ssl_pem) if config.ssl_pem else None  # before any job is taken up
    app = startup.build_app(config)
    inflight = InFlight(app)
    threads = config.web_threads or DEFAULT_WEB_THREADS
    server = httpserver.serve(
        inflight, host=host, port=port, handler=_handler_class(config.max_request_line, config.web_io_timeout),
        use_threadpool=True, threadpool_workers=threads,
        # daemon threads: one idle on a kept-alive connection must not hold the process at exit
        daemon_threads=True, threadpool_options={"max_requests": 0, "spawn_if_under": threads},
        request_queue_size=128, start_loop=False, protocol_version="HTTP/1.1")

    if context is not None:
        server.socket = tls.wrap_listener(server.socket, context)
        def reload(signum, frame):
            try:
                tls.reload(server.socket, config.ssl_pem)
            except Exception:  # never out of the signal handler into the accept loop
                log.exception("SIGHUP: ssl_pem %s not loaded again", config.ssl_pem)

        signal.signal(signal.SIGHUP, reload)
    else:  # systemctl reload: nothing to load again (never the default action, which ends the process)
        signal.signal(signal.SIGHUP, lambda signum, frame: log.info("SIGHUP: nothing to reload (no ssl_pem)"))

    def stop(signum, frame):
        log.info("signal %s: stopping", signum)
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("pulsar_lite serving on %s://%s:%s/ (staging %s, state %s)", "https" if context else "http", host, port,
             ", ".join(m.staging_directory for m in config.managers.values()), config.store_path)
    sys.stdout.flush()
    startup.notify("READY=1")
    try:
        server.serve_forever()
    finally:
        startup.notify("STOPPING=1")
        server.socket.close()  # no new connections
        if not inflight.wait_idle(STOP_REQUESTS_TIMEOUT):
            log.warning("stopping with %d request(s) still in flight after %.0f s", inflight.count,
                        STOP_REQUESTS_TIMEOUT)
        server.thread_pool.shutdown(0)  # its idle workers (the busy ones, if any, are daemon threads)
        startup.stop(app.engine)
        log.info("pulsar_lite stopped")


#: seconds a stop waits for requests in flight (an upload finishing) before it goes on: well within the
#: systemd unit's TimeoutStopSec (30), with room for the AMQP outbox's flush (5)
STOP_REQUESTS_TIMEOUT = 20.0


class InFlight:
    """WSGI middleware counting requests in flight, a download's body until it is closed included."""

    def __init__(self, app):
        self.app = app
        self.engine = app.engine
        self.count = 0
        self._idle = threading.Condition()

    def __call__(self, environ, start_response):
        with self._idle:
            self.count += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return _Counted(body, self._done)

    def _done(self) -> None:
        with self._idle:
            self.count -= 1
            if self.count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self.count == 0, timeout)


class _Counted:
    def __init__(self, body, done):
        self.body = body
        self.done = done

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()
