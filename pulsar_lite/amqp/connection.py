"""One broker: how to open a kombu connection to it and keep trying until it answers."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import kombu

from .settings import AmqpSettings

log = logging.getLogger(__name__)

#: reconnect backoff (seconds): 1, 2, 3, ... capped; a restarted broker is picked up within this cap
RECONNECT_INTERVAL_START = 1.0
RECONNECT_INTERVAL_STEP = 1.0
RECONNECT_INTERVAL_MAX = 5.0


class Stopping(Exception):
    """Raised inside kombu's retry loop when the face shuts down."""


def broker_label(url: str) -> str:
    """The broker's name in logs and in the ledger: its URL with the password masked."""
    return kombu.Connection(url).as_uri()


@dataclass
class Broker:
    url: str
    settings: AmqpSettings
    label: str = ""

    def __post_init__(self):
        if not self.label:
            self.label = broker_label(self.url)

    def connection(self, publisher: bool = False) -> kombu.Connection:
        options = {}
        if self.url.startswith("memory:"):
            options["polling_interval"] = 0.01  # the in-memory transport polls; keep tests event-fast
        if publisher:
            options["confirm_publish"] = True  # a row leaves the outbox only after the broker has it
        kwargs = {"heartbeat": self.settings.heartbeat, "transport_options": options}
        if self.settings.ssl:
            kwargs["ssl"] = dict(self.settings.ssl)
        return kombu.Connection(self.url, **kwargs)

    def connect(self, connection: kombu.Connection, stop: threading.Event, role: str) -> None:
        """Block until connected (backoff between attempts); raise :class:`Stopping` on shutdown."""

        def check_stop():
            if stop.is_set():
                raise Stopping()

        def errback(exc, interval):
            log.warning("AMQP %s: cannot reach %s (%s); retrying in %.0fs", role, self.label, exc, interval)

        check_stop()
        connection.ensure_connection(errback=errback, callback=check_stop, max_retries=None,
                                     interval_start=RECONNECT_INTERVAL_START,
                                     interval_step=RECONNECT_INTERVAL_STEP,
                                     interval_max=RECONNECT_INTERVAL_MAX)
        check_stop()


def release(connection: kombu.Connection | None) -> None:
    """Close a connection that may already be dead, without raising."""
    if connection is None:
        return
    try:
        connection.release()
    except Exception as exc:  # a broken socket cannot be closed cleanly
        log.debug("closing a broken AMQP connection: %s", exc)
        try:
            connection.collect()
        except Exception:
            pass


def is_connection_error(connection: kombu.Connection | None, exc: BaseException) -> bool:
    """A broken or refused connection (retry as is), as opposed to the broker refusing what we asked."""
    import kombu.exceptions

    known = (OSError, kombu.exceptions.OperationalError, kombu.exceptions.ConnectionError)
    if connection is not None:
        known = (*known, *connection.connection_errors)
    return isinstance(exc, known)


class Backoff:
    """Growing waits after repeated failures that are not refused connections (e.g. a queue declared
    elsewhere with other arguments), so a persistent problem does not turn into a hot loop."""

    def __init__(self, start: float = 0.2, maximum: float = 30.0):
        self.start = start
        self.maximum = maximum
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.maximum, self.start * (2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0
