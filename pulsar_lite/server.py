"""Start-up in explicit steps: config -> logging -> store + engine -> faces -> serve."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading

from . import affinity
from .config import AppConfig
from .config.schema import DEFAULT_WEB_THREADS
from .engine import JobEngine
from .engine.filecache import FileCache
from .errors import ConfigError
from .store import claim_state

log = logging.getLogger("pulsar_lite")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def start_engine(config: AppConfig) -> JobEngine:
    """Step 1: the store and the engine (reload + reconcile unfinished jobs). The TES service registers its
    stager first, so that recovery can stage its tasks' files."""
    engine = JobEngine(config)
    engine.tes = None
    if config.tes:
        from .tes import TesService

        engine.tes = TesService(engine, config)
    engine.start()
    if engine.tes is not None:
        engine.tes.recover()
    return engine


def start_message_queue(engine: JobEngine, config: AppConfig):
    """Step 2: the AMQP face, when message_queue_url is set (kombu is imported only then)."""
    if not config.values.get("message_queue_url"):
        return None
    from .amqp import start_amqp

    return start_amqp(engine, config)


def build_app(config: AppConfig, engine: JobEngine | None = None):
    """Step 3: the REST face (a WSGI application) over the engine."""
    from .web import RestApp

    if engine is None:
        engine = start_engine(config)
        engine.amqp = start_message_queue(engine, config)
    file_cache = (FileCache(config.file_cache_dir, engine.store, durable=engine.durable_files)
                  if config.file_cache_dir else None)
    return RestApp(engine, file_cache=file_cache)


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


def _stop(engine: JobEngine) -> None:
    face = getattr(engine, "amqp", None)
    if face is not None:
        face.stop()
    engine.stop()


def serve_without_web(config: AppConfig) -> None:
    """MQ-only mode: no HTTP listener, jobs arrive over the message queue."""
    affinity.pin(config.daemon_cpus)
    engine = start_engine(config)
    engine.amqp = start_message_queue(engine, config)
    if engine.amqp is None:
        log.warning("--no-web without message_queue_url: nothing can submit jobs to this daemon")
    stopping = threading.Event()

    def stop(signum, frame):
        log.info("signal %s: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("pulsar_lite running without web face (state %s)", config.store_path)
    while not stopping.wait(1):
        pass
    _stop(engine)


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
        from .web.granian_server import serve_granian

        # the worker process takes the state; refuse here, at once, when another daemon has it (a worker
        # failing on it would be restarted over and over)
        os.close(claim_state(config.store_path))
        return serve_granian(config)
    from paste import httpserver

    app = build_app(config)
    threads = config.web_threads or DEFAULT_WEB_THREADS
    server = httpserver.serve(
        app, host=host, port=port, handler=_handler_class(config.max_request_line, config.web_io_timeout),
        use_threadpool=True, threadpool_workers=threads,
        threadpool_options={"max_requests": 0, "spawn_if_under": threads},
        request_queue_size=128, start_loop=False, protocol_version="HTTP/1.1")

    def stop(signum, frame):
        log.info("signal %s: stopping", signum)
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("pulsar_lite serving on http://%s:%s/ (staging %s, state %s)", host, port,
             ", ".join(m.staging_directory for m in config.managers.values()), config.store_path)
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        _stop(app.engine)
        # let non-daemon helper threads end; job processes keep running and are adopted on restart
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(timeout=1)
