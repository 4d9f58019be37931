"""One consumer thread per broker: every manager's setup/status/kill queues on one connection.

The loop never ends on a broker problem: a lost connection, a broker restart or
a broker that is down at start-up all lead to the same path (close, reconnect
with backoff, declare the queues again, consume again).
"""
from __future__ import annotations

import functools
import logging
import socket
import threading

import kombu

from .connection import Backoff, Broker, Stopping, is_connection_error, release
from .handlers import MessageHandler
from .topology import Topology

log = logging.getLogger(__name__)

PREFETCH = 10


class ConsumerThread(threading.Thread):
    def __init__(self, broker: Broker, topology: Topology, handler: MessageHandler, stop: threading.Event,
                 index: int = 0):
        super().__init__(name=f"amqp-consumer-{index}", daemon=True)
        self.broker = broker
        self.topology = topology
        self.handler = handler
        self.stop_event = stop
        self.consuming = threading.Event()  # set while queues are declared and consumed
        self.connections = 0  # successful (re)connections, for health reports and tests

    def run(self) -> None:
        backoff = Backoff(start=1.0)
        while not self.stop_event.is_set():
            connection = self.broker.connection()
            try:
                self.broker.connect(connection, self.stop_event, "consumer")
                self._consume(connection, backoff)
            except Stopping:
                break
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                if is_connection_error(connection, exc):
                    log.warning("AMQP consumer: connection to %s lost (%s: %s); reconnecting", self.broker.label,
                                type(exc).__name__, exc)
                    self.stop_event.wait(1.0)
                else:
                    delay = backoff.next()
                    log.error("AMQP consumer: %s on %s (%s); reconnecting in %.1fs", type(exc).__name__,
                              self.broker.label, exc, delay, exc_info=not _is_amqp_error(exc))
                    self.stop_event.wait(delay)
            finally:
                self.consuming.clear()
                release(connection)
        log.info("AMQP consumer for %s stopped", self.broker.label)

    def _consume(self, connection: kombu.Connection, backoff: Backoff) -> None:
        channel = connection.channel()
        consumers = []
        for route in self.topology.consumed():
            # on_message, not callbacks: kombu hands over the delivery undecoded, so its size is checked first
            on_delivery = functools.partial(self.handler.on_delivery, route.manager, route.logical)
            consumers.append(kombu.Consumer(channel, queues=[route.queue], on_message=on_delivery, accept=["json"],
                                            on_decode_error=self.handler.on_decode_error,
                                            prefetch_count=PREFETCH, auto_declare=True))
        for consumer in consumers:
            consumer.consume()
        self.connections += 1
        self.consuming.set()
        backoff.reset()
        log.info("AMQP consumer: consuming %s on %s", ", ".join(r.queue.name for r in self.topology.consumed()),
                 self.broker.label)
        timeout = self.broker.settings.consumer_timeout
        while not self.stop_event.is_set():
            try:
                connection.drain_events(timeout=timeout)
            except socket.timeout:
                pass
            connection.heartbeat_check()
        for consumer in consumers:
            try:
                consumer.cancel()
            except Exception:
                pass


def _is_amqp_error(exc: BaseException) -> bool:
    """Errors the broker sent (no traceback needed to understand them)."""
    return type(exc).__module__.startswith(("amqp", "kombu"))
