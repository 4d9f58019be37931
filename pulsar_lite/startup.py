"""Start-up in explicit steps, one direction: the command line (or a server's worker) builds the parts here,
the servers only serve them.

    configure logging -> store + engine (TES stager registered first) -> recovery in the background ->
    status loops -> AMQP face -> metrics -> REST face (WSGI app) -> the server accepts -> READY=1

``stop`` takes them down in the other order: the AMQP face (its outbox flushed for a few seconds), then
the engine (running jobs go on; transfers in flight stop and resume at the next start).
"""
from __future__ import annotations

import logging
import os
import socket

from .config import AppConfig
from .engine import JobEngine
from .logs import configure_logging

log = logging.getLogger("pulsar_lite")


def configure(config: AppConfig) -> None:
    configure_logging(config.log_level, config.log_format)


def start_engine(config: AppConfig) -> JobEngine:
    """The store and the engine; the TES service registers its stager first, so that recovery can stage its
    tasks' files; metrics subscribe before any job moves."""
    if config.tes:
        from .tes.auth import check

        check(config)  # a wrong tes_users_file or tes_cors_origins stops the start before anything runs
    engine = JobEngine(config)
    engine.tes = None
    if config.tes:
        from .tes import TesService

        engine.tes = TesService(engine, config)
    from .metrics import Metrics

    engine.metrics = Metrics(engine)
    engine.start()
    if engine.tes is not None:
        engine.tes.recover()
    return engine


def start_message_queue(engine: JobEngine, config: AppConfig):
    """The AMQP face, when message_queue_url is set (kombu is imported only then)."""
    if not config.values.get("message_queue_url"):
        return None
    from .amqp import start_amqp

    return start_amqp(engine, config)


def start_metrics_server(engine: JobEngine, config: AppConfig):
    """``metrics_port``: /metrics on a port of its own (for a daemon without a web face, or a private port)."""
    if not config.metrics_port:
        return None
    from .metrics import serve_metrics

    return serve_metrics(engine.metrics, config.metrics_host, int(config.metrics_port))


def build_app(config: AppConfig, engine: JobEngine | None = None):
    """The REST face (a WSGI application) over the engine; every part below it when ``engine`` is None."""
    from .engine.filecache import FileCache
    from .web import RestApp

    if engine is None:
        engine = start_parts(config)
    file_cache = (FileCache(config.file_cache_dir, engine.store, durable=engine.durable_files)
                  if config.file_cache_dir else None)
    return RestApp(engine, file_cache=file_cache)


def start_parts(config: AppConfig) -> JobEngine:
    """Engine, AMQP face and metrics server: everything but the HTTP face."""
    engine = start_engine(config)
    engine.amqp = start_message_queue(engine, config)
    engine.metrics_server = start_metrics_server(engine, config)
    return engine


def stop(engine: JobEngine) -> None:
    face = getattr(engine, "amqp", None)
    if face is not None:
        face.stop(flush=5.0)
    server = getattr(engine, "metrics_server", None)
    if server is not None:
        server.shutdown()
    engine.stop()


def notify(state: str) -> None:
    """Tell systemd (``Type=notify``) about the daemon: READY=1 once transports accept work, STOPPING=1 when
    it stops. Nothing without ``NOTIFY_SOCKET``."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", address, exc)


__all__ = ["build_app", "configure", "configure_logging", "notify", "start_engine", "start_message_queue",
           "start_parts", "stop"]
