"""One publisher thread per broker: drains its pending rows with publisher confirms.

Woken by an event the moment something is queued (a job changed state, a
reply is due); otherwise it wakes every ``status_outbox_drain_interval``
seconds as a safety net, to send heartbeats, and to republish status updates
the client has not acknowledged (``amqp_acknowledge``).
"""
from __future__ import annotations

import logging
import socket
import threading
import time

import kombu

from ..store_health import is_unwritable
from .connection import Backoff, Broker, Stopping, is_connection_error, release
from .ledger import Ledger
from .logsafe import clip
from .router import Router
from .topology import FORCE_NOACK, Topology

log = logging.getLogger(__name__)

#: a message the broker refuses this many times in a row (not a connection problem) is dropped
MAX_REFUSALS = 5


class PublisherThread(threading.Thread):
    def __init__(self, broker: Broker, topology: Topology, ledger: Ledger, router: Router | None,
                 stop: threading.Event, index: int = 0):
        super().__init__(name=f"amqp-publisher-{index}", daemon=True)
        self.broker = broker
        self.settings = broker.settings
        self.topology = topology
        self.ledger = ledger
        self.router = router
        self.stop_event = stop
        self.wake = threading.Event()
        self.connected = threading.Event()
        self.published = 0  # messages confirmed by the broker, for health reports and tests
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._failures: dict[int, int] = {}
        self._last_read = 0.0
        self._store_waiting = False  # said once while the job store cannot be written

    # -- loop -------------------------------------------------------------------------
    def run(self) -> None:
        backoff = Backoff()
        while not self.stop_event.is_set():
            self.wake.clear()
            try:
                if self.router is not None:
                    self.router.route_outbox()
                self._ensure_connected()
                self._drain()
                self._republish()
                self._read_incoming()
                self._connection.heartbeat_check()
                backoff.reset()
                self._store_waiting = False
            except Stopping:
                break
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                if is_unwritable(exc) and not is_connection_error(self._connection, exc):
                    # the broker is fine: keep the connection, try again in a moment
                    if not self._store_waiting:
                        log.warning("AMQP publisher for %s: status updates wait while the job store cannot be "
                                    "written (%s)", self.broker.label, exc)
                    self._store_waiting = True
                    self.stop_event.wait(1.0)
                    continue
                if is_connection_error(self._connection, exc):
                    delay = 0.2  # the next connect backs off by itself while the broker is down
                    log.warning("AMQP publisher: %s on %s (%s); reconnecting", type(exc).__name__,
                                self.broker.label, exc)
                else:
                    delay = backoff.next()
                    log.error("AMQP publisher: %s on %s (%s); reconnecting in %.1fs", type(exc).__name__,
                              self.broker.label, exc, delay,
                              exc_info=not type(exc).__module__.startswith(("amqp", "kombu")))
                self._disconnect()
                self.stop_event.wait(delay)
                continue
            self.wake.wait(self._idle_timeout())
        self._disconnect()
        log.info("AMQP publisher for %s stopped", self.broker.label)

    def _idle_timeout(self) -> float:
        timeout = self.settings.drain_interval
        if self.settings.heartbeat:
            timeout = min(timeout, self.settings.heartbeat / 4.0)
        if self.settings.acknowledge:
            oldest = self.ledger.next_republish(self.broker.label)
            if oldest is not None:
                timeout = min(timeout, max(0.05, oldest + self.settings.ack_republish_time - time.time()))
        return max(timeout, 0.05)

    # -- connection ----------------------------------------------------------------------
    def _read_incoming(self) -> None:
        """Take in what the broker sent while we were idle (its heartbeats): without reading them,
        the heartbeat check would count them as missed and drop a healthy connection."""
        heartbeat = self.settings.heartbeat
        if not heartbeat or time.monotonic() - self._last_read < heartbeat / 4.0:
            return
        self._last_read = time.monotonic()
        while True:
            try:
                self._connection.drain_events(timeout=0.001)
            except socket.timeout:
                return

    def _ensure_connected(self) -> None:
        if self._connection is not None and self._connection.connected:
            return
        self._disconnect()
        connection = self.broker.connection(publisher=True)
        try:
            self.broker.connect(connection, self.stop_event, "publisher")
            channel = connection.channel()
            self.topology.exchange(channel).declare()
            for queue in self.topology.published():
                queue(channel).declare()  # status updates wait in the queue until a client consumes
            self._producer = kombu.Producer(channel, exchange=self.topology.exchange, serializer="json",
                                            auto_declare=False)
        except BaseException:
            release(connection)
            raise
        self._connection = connection
        self.connected.set()
        log.info("AMQP publisher: connected to %s", self.broker.label)

    def _disconnect(self) -> None:
        self.connected.clear()
        self._producer = None
        release(self._connection)
        self._connection = None

    # -- publishing ------------------------------------------------------------------------
    def _publish(self, routing_key: str, payload: dict) -> None:
        options = dict(self.settings.publish_options)
        if "retry_policy" in options:
            options["retry_policy"] = dict(options["retry_policy"], errback=self._retry_errback)
        timeout = self.settings.publish_timeout
        self._producer.publish(payload, routing_key=routing_key, exchange=self.topology.exchange,
                               timeout=timeout, confirm_timeout=timeout, **options)
        self.published += 1

    def _retry_errback(self, exc, interval) -> None:
        log.warning("AMQP publisher: publish to %s failed (%s); kombu retries in %ss", self.broker.label, exc,
                    interval)

    def _drain(self) -> None:
        while not self.stop_event.is_set():
            batch = self.ledger.pending(self.broker.label, limit=100)
            if not batch:
                return
            confirmed = []
            try:
                for item in batch:
                    try:
                        self._publish(item.routing_key, item.payload)
                    except Exception as exc:
                        self._count_failure(item, exc)
                        raise
                    self._failures.pop(item.id, None)
                    confirmed.append(item)
                    log.debug("AMQP published to %s: %s", item.routing_key, _summary(item.payload))
                    if self.stop_event.is_set():
                        return
            finally:
                # the broker has these: one transaction forgets them all (a crash before it only
                # means duplicates, which receivers tolerate)
                self.ledger.sent(*confirmed)

    def _count_failure(self, item, exc: Exception) -> None:
        """Drop a message the broker refuses again and again (not for connection problems)."""
        if self._connection is None or is_connection_error(self._connection, exc):
            return
        count = self._failures.get(item.id, 0) + 1
        self._failures[item.id] = count
        if count >= MAX_REFUSALS:
            log.error("AMQP publisher: %s refused %d times by %s (%s: %s); dropped: %s", item.routing_key, count,
                      self.broker.label, type(exc).__name__, exc, _summary(item.payload))
            self._failures.pop(item.id, None)
            self.ledger.sent(item)

    def _republish(self) -> None:
        if not self.settings.acknowledge:
            return
        due = self.ledger.due_republish(self.broker.label, time.time() - self.settings.ack_republish_time)
        for ack_uuid, routing_key, payload in due:
            payload[FORCE_NOACK] = True
            log.info("AMQP: status update %s for job %s not acknowledged; republishing", ack_uuid,
                     payload.get("job_id"))
            self._publish(routing_key, payload)
            self.ledger.republished(ack_uuid)


def _summary(payload: dict) -> str:
    if "job_id" in payload:
        return f"job {payload['job_id']} {payload.get('status')}"
    return ", ".join(f"{k}={clip(v)}" for k, v in payload.items())  # an ack reply echoes the client's uuid
