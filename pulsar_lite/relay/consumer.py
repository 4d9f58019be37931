"""The relay consumer: long-polls the setup, status-request and kill topics, hands each message to the AMQP
face's ``MessageHandler`` (the same engine calls, ledger and dedupe), and moves the cursor past a message only
once it was handled.

A long poll waits on the relay (``relay_long_poll_timeout`` seconds) until something arrives: an idle daemon
sends one request per timeout and otherwise sleeps. A message the handler sends back (the job store cannot be
written, or a first failure) stops its topic's batch there; the next poll asks for it again.
"""
from __future__ import annotations

import logging
import threading

from ..amqp.connection import Backoff
from ..amqp.handlers import MessageHandler
from ..amqp.logsafe import clip
from .cursor import Cursor
from .http import RelayAuthFailed, RelayHttp, RelayThrottled, RelayUnavailable
from .topology import RelayRoute

log = logging.getLogger(__name__)


class Delivery:
    """A relay message dressed as the kombu message ``MessageHandler`` settles (ack, requeue, reject)."""

    def __init__(self, message: dict, redelivered: bool):
        self.message_id = message.get("message_id")
        self.topic = message.get("topic")
        self.delivery_info = {"redelivered": redelivered, "routing_key": self.topic}
        self.content_type = "application/json"
        self.body = b""
        self.outcome: str | None = None

    def ack(self) -> None:
        self.outcome = "ack"

    def reject(self, requeue: bool = False) -> None:
        self.outcome = "requeue" if requeue else "reject"

    def requeue(self) -> None:
        self.outcome = "requeue"


class RelayConsumerThread(threading.Thread):
    def __init__(self, label: str, http: RelayHttp, routes: list[RelayRoute], handler: MessageHandler,
                 cursor: Cursor, stop: threading.Event, timeout: int, index: int = 0):
        super().__init__(name=f"relay-consumer-{index}", daemon=True)
        self.label = label
        self.http = http
        self.routes = {r.topic: r for r in routes}
        self.handler = handler
        self.cursor = cursor
        self.stop_event = stop
        self.timeout = timeout
        self.consuming = threading.Event()
        self.polls = 0
        self.error: str | None = None  # the last failure, for health and doctor
        self._retried: set[str] = set()  # message ids sent back once (the handler's "redelivered")

    def run(self) -> None:
        backoff = Backoff(start=0.5, maximum=30.0)
        topics = list(self.routes)
        log.info("relay consumer: long-polling %s on %s", ", ".join(topics), self.label)
        while not self.stop_event.is_set():
            try:
                messages = self.http.poll(topics, self.cursor.since(topics), self.timeout)
                if self.stop_event.is_set():
                    break  # not handled: the cursor stays before them, the next start reads them
                self.polls += 1
                if self.error:
                    log.info("relay consumer: %s answers again", self.label)
                self.error = None
                self.consuming.set()
                backoff.reset()
                if messages and self._handle(messages):
                    self.stop_event.wait(0.2)  # something went back: ask for it again in a moment
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                self.consuming.clear()
                delay = self._failed(exc, backoff)
                self.stop_event.wait(delay)
        self.http.close()
        log.info("relay consumer for %s stopped", self.label)

    def _failed(self, exc: Exception, backoff: Backoff) -> float:
        first = self.error is None
        self.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RelayThrottled):
            delay = exc.retry_after or backoff.next()
            log.warning("relay consumer: %s throttles us (%s); polling again in %.1fs", self.label, exc, delay)
        elif isinstance(exc, RelayUnavailable):
            delay = backoff.next()
            (log.warning if first else log.debug)("relay consumer: %s unavailable (%s); retrying in %.1fs",
                                                  self.label, exc, delay)
        elif isinstance(exc, RelayAuthFailed):
            delay = max(5.0, backoff.next())
            log.error("relay consumer: %s refuses our credentials (%s); retrying in %.1fs", self.label, exc, delay)
        else:
            delay = backoff.next()
            log.error("relay consumer: %s on %s (%s); retrying in %.1fs", type(exc).__name__, self.label, exc,
                      delay, exc_info=True)
        return delay

    def _handle(self, messages: list[dict]) -> bool:
        """Handle a poll's messages in order; durably advance the cursor past those settled. True when one
        went back (its topic's later messages wait for the next poll)."""
        positions: dict[str, str] = {}
        blocked: set[str] = set()
        try:
            for message in messages:
                topic = message.get("topic")
                route = self.routes.get(topic)
                message_id = message.get("message_id")
                if route is None or not message_id or topic in blocked:
                    continue
                delivery = Delivery(message, redelivered=message_id in self._retried)
                payload = message.get("payload")
                log.debug("relay: %s message %s for job %s", topic, message_id,
                          clip(payload.get("job_id") if isinstance(payload, dict) else None))
                self.handler.on_message(route.manager, route.logical, payload, delivery)
                if delivery.outcome == "requeue":
                    self._retried.add(message_id)
                    blocked.add(topic)
                    continue
                self._retried.discard(message_id)
                positions[topic] = message_id
                if self.stop_event.is_set():
                    break
        finally:
            self.cursor.advance(positions)
        return bool(blocked)
