"""The AMQP face: wires brokers, the ledger, the router and the threads to the engine.

Threads: per broker one consumer and one publisher; nothing else. Start-up order:
enable the store outbox -> subscribe to the engine -> route what is already in the
outbox and announce states that changed while nothing could be written (the
engine's recovery runs before this face exists) -> start the threads.
"""
from __future__ import annotations

import logging
import threading
import time

from .. import wire
from ..errors import ConfigError
from .connection import Broker
from .consumer import ConsumerThread
from .handlers import MessageHandler
from .ledger import Ledger
from .publisher import PublisherThread
from .router import Router
from .settings import AmqpSettings
from .topology import Topology

log = logging.getLogger(__name__)

#: acknowledge_uuid values of handled messages are remembered this long (redelivery dedupe)
SEEN_RETENTION = 14 * 24 * 3600


class AmqpFace:
    def __init__(self, engine, settings: AmqpSettings, relays=()):
        self.engine = engine
        self.settings = settings
        self.brokers = [Broker(url, settings) for url in settings.urls]
        self._stop = threading.Event()
        self.ledger = Ledger(settings.ledger_path, settings.synchronous)
        self.relays = self._relays(relays)
        labels = [b.label for b in self.brokers] + [r.label for r in self.relays]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"message_queue_url lists the same broker twice: {', '.join(labels)}")
        self.topology = Topology(engine.manager_configs, settings.key_prefix, settings.durable,
                                 settings.acknowledge)
        self.publishers: dict = {}  # label -> PublisherThread or RelayPublisherThread
        self.consumers: list = []  # ConsumerThread and RelayConsumerThread
        self.router = Router(engine, self.ledger, self.topology, labels, settings.acknowledge, settings.publish,
                             self._wake, topologies={r.label: r.topology for r in self.relays})
        for relay in self.relays:
            relay.build(self.router, self._wake)
            self.publishers[relay.label] = relay.publisher
            self.consumers.extend(relay.consumers)
        for index, broker in enumerate(self.brokers):
            self.publishers[broker.label] = PublisherThread(broker, self.topology, self.ledger, self.router,
                                                            self._stop, index)
            if settings.consume:
                handler = MessageHandler(engine, self.ledger, self.router, self.topology, broker.label,
                                         self.publishers[broker.label].wake.set, settings.max_message_size)
                self.consumers.append(ConsumerThread(broker, self.topology, handler, self._stop, index))

    def _relays(self, relays) -> list:
        if not relays:
            return []
        from ..relay.face import RelayEndpoint

        return [RelayEndpoint(self.engine, r, self.settings, self.ledger, self._stop, i) for i, r in enumerate(relays)]

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "AmqpFace":
        if self.settings.publish:
            self.engine.store.outbox_enabled = True
        self.engine.subscribe(self._on_transition)
        if not self.settings.acknowledge:
            dropped = self.ledger.forget_unacked()
            if dropped:
                log.info("amqp_acknowledge is off: %d unacknowledged status update(s) will not be republished",
                         dropped)
        self.ledger.prune(time.time() - SEEN_RETENTION)
        self.router.route_outbox()
        self.router.sweep()
        for stale in self.ledger.brokers_with_pending() - set(self.publishers):
            log.warning("%d message(s) are waiting for broker %s, which is no longer configured",
                        self.ledger.pending_count(stale), stale)
        for thread in [*self.publishers.values(), *self.consumers]:
            thread.start()
        log.info("AMQP face started: %s (managers %s%s)", ", ".join(self.publishers),
                 ", ".join(self.topology.managers),
                 ", application acks on" if self.settings.acknowledge else "")
        return self

    def stop(self, timeout: float = 10.0, flush: float = 0.0) -> None:
        """Stop consuming and publishing; with ``flush``, first give the publishers that long to send what
        waits (what is left stays in the outbox and the ledger, sent at the next start)."""
        if flush:
            deadline = time.time() + flush
            self._wake(None)
            while self.ledger.pending_count() and time.time() < deadline:
                time.sleep(0.05)
        self._stop.set()
        for publisher in self.publishers.values():
            publisher.wake.set()
        deadline = time.time() + timeout
        for thread in [*self.consumers, *self.publishers.values()]:
            if thread.is_alive():
                # a relay consumer may sit in a long poll: it drops what that brings once stopped (its cursor
                # stays put), so it is not waited for
                wait = 0.5 if _label(thread).startswith("relay:") and thread in self.consumers else 10.0
                thread.join(max(0.1, min(wait, deadline - time.time())))
        self.ledger.close()
        log.info("AMQP face stopped")

    # -- events -------------------------------------------------------------------------
    def _on_transition(self, manager: str, job_id: str, state: str) -> None:
        """Engine listener: runs in the transitioning thread, so it only wakes the publishers."""
        if state in wire.PUBLISHED_STATES and not self._stop.is_set():
            self._wake(None)

    def _wake(self, broker: str | None) -> None:
        if broker is None:
            for publisher in self.publishers.values():
                publisher.wake.set()
        elif broker in self.publishers:
            self.publishers[broker].wake.set()

    # -- observability ----------------------------------------------------------------------
    def ready(self) -> bool:
        """Every consumer consumes and every publisher is connected."""
        return all(c.consuming.is_set() for c in self.consumers) and \
            all(p.connected.is_set() for p in self.publishers.values())

    def not_ready(self) -> list[str]:
        """What keeps the face from being ready, one line per broker or relay (with its last error)."""
        lines = []
        for label, publisher in self.publishers.items():
            consumers = [c for c in self.consumers if _label(c) == label]
            if publisher.connected.is_set() and all(c.consuming.is_set() for c in consumers):
                continue
            errors = {e for e in [getattr(publisher, "error", None), *(getattr(c, "error", None) for c in consumers)]
                      if e}
            lines.append(f"{label} is not connected" + (f" ({'; '.join(sorted(errors))})" if errors else ""))
        return lines

    def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.ready():
                return True
            time.sleep(0.02)
        return self.ready()

    def health(self) -> dict:
        return {
            "brokers": [{
                "broker": label,
                "publisher_connected": publisher.connected.is_set(),
                "consuming": any(c.consuming.is_set() for c in self.consumers if _label(c) == label),
                "pending": self.ledger.pending_count(label),
                "published": publisher.published,
                **({"error": publisher.error} if getattr(publisher, "error", None) else {}),
            } for label, publisher in self.publishers.items()],
            "outbox": len(self.engine.store.outbox(limit=1000)),
            "unacknowledged": self.ledger.unacked_count(),
        }


def _label(consumer) -> str:
    """The broker (or relay) a consumer thread reads from."""
    return consumer.label if hasattr(consumer, "label") else consumer.broker.label
