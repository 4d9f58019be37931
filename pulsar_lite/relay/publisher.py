"""The relay publisher: drains the face's durable outbox (ledger ``pending`` rows of this relay) to the relay.

The same design as the AMQP publisher: the router moves store outbox rows into the ledger; a row leaves the
ledger only after the relay answered that it holds the message. Each request carries an ``Idempotency-Key``
derived from the rows it sends (ledger id and content), so a request retried after a lost answer is answered
from the relay's idempotency cache instead of stored twice.

One row waiting: one ``POST /api/v1/messages``. Several (a burst, or what piled up while the relay was away
or throttled us): ``/api/v1/messages/bulk``, up to 100 at a time, in order; for a minute after the
single-message route said 429, everything goes by the bulk route (the relay counts the two apart). A 429 backs off (the relay's
``Retry-After`` when it sends one) and the rows simply wait; nothing is reordered or dropped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time

from .. import __version__
from ..amqp.connection import Backoff
from ..amqp.ledger import Ledger
from ..store_health import is_unwritable
from .http import MAX_BULK, RelayAuthFailed, RelayHttp, RelayRefused, RelayThrottled, RelayUnavailable
from .topology import CAPABILITIES, RelayTopology

log = logging.getLogger(__name__)

#: a message the relay refuses this many times in a row (a 4xx that is not about credentials) is dropped
MAX_REFUSALS = 5
#: seconds between two bulk publishes while the relay throttles us (its default: 30 bulk requests a minute)
BULK_PACE = 2.0


def idempotency_key(label: str, item) -> str:
    text = json.dumps([label, item.id, item.routing_key, item.payload], sort_keys=True)
    return "pl-" + hashlib.sha256(text.encode()).hexdigest()[:40]


class RelayPublisherThread(threading.Thread):
    def __init__(self, label: str, http: RelayHttp, topology: RelayTopology, ledger: Ledger, router,
                 stop: threading.Event, engine=None, capabilities: bool = True, drain_interval: float = 5.0,
                 index: int = 0):
        super().__init__(name=f"relay-publisher-{index}", daemon=True)
        self.label = label
        self.http = http
        self.topology = topology
        self.ledger = ledger
        self.router = router
        self.stop_event = stop
        self.engine = engine
        self.capabilities_due = capabilities
        self.drain_interval = drain_interval
        self.wake = threading.Event()
        self.connected = threading.Event()
        self.published = 0
        self.requests = 0
        self.throttled = 0
        self.error: str | None = None
        self._failures: dict[int, int] = {}
        #: the single-message route said 429: until then, even one message goes by the bulk route (its own budget)
        self._bulk_only_until = 0.0
        self._last_bulk = 0.0

    def run(self) -> None:
        backoff = Backoff(start=0.5, maximum=60.0)
        while not self.stop_event.is_set():
            self.wake.clear()
            try:
                if self.router is not None:
                    self.router.route_outbox()
                if self.capabilities_due:
                    self._publish_capabilities()
                self._drain()
                self.connected.set()
                if self.error:
                    log.info("relay publisher: %s takes our messages again", self.label)
                self.error = None
                backoff.reset()
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                self.stop_event.wait(self._failed(exc, backoff))
                continue
            self.wake.wait(self.drain_interval)
        self.http.close()
        log.info("relay publisher for %s stopped", self.label)

    def _failed(self, exc: Exception, backoff: Backoff) -> float:
        first = self.error is None
        self.error = f"{type(exc).__name__}: {exc}"
        waiting = self.ledger.pending_count(self.label)
        if isinstance(exc, RelayThrottled):
            self.throttled += 1
            delay = exc.retry_after or backoff.next()
            log.warning("relay publisher: %s throttles us (%s); %d message(s) wait, sent in bulk in %.1fs",
                        self.label, exc, waiting, delay)
            return delay
        self.connected.clear()
        if is_unwritable(exc):
            log.warning("relay publisher: status updates wait while the job store cannot be written (%s)", exc)
            return 1.0
        delay = backoff.next()
        if isinstance(exc, RelayUnavailable):
            (log.warning if first else log.debug)("relay publisher: %s unavailable (%s); %d message(s) wait, "
                                                  "retrying in %.1fs", self.label, exc, waiting, delay)
        elif isinstance(exc, RelayAuthFailed):
            delay = max(5.0, delay)
            log.error("relay publisher: %s refuses our credentials (%s); %d message(s) wait, retrying in %.1fs",
                      self.label, exc, waiting, delay)
        else:
            log.error("relay publisher: %s on %s (%s); retrying in %.1fs", type(exc).__name__, self.label, exc,
                      delay, exc_info=True)
        return delay

    # -- draining ---------------------------------------------------------------------------
    def _drain(self) -> None:
        while not self.stop_event.is_set():
            batch = self.ledger.pending(self.label, limit=MAX_BULK)
            if not batch:
                return
            if len(batch) == 1 and time.monotonic() >= self._bulk_only_until:
                self._send_one(batch[0])
                continue
            if time.monotonic() < self._bulk_only_until:
                # throttled: one bulk per BULK_PACE (the relay allows 30 a minute), each taking what piled up
                pause = self._last_bulk + BULK_PACE - time.monotonic()
                if pause > 0:
                    self.stop_event.wait(pause)
                    batch = self.ledger.pending(self.label, limit=MAX_BULK)
            self._last_bulk = time.monotonic()
            keys = [idempotency_key(self.label, item) for item in batch]
            bulk_key = "pl-" + hashlib.sha256("".join(keys).encode()).hexdigest()[:40]
            try:
                self.requests += 1
                accepted = self.http.publish_bulk([(i.routing_key, i.payload) for i in batch], bulk_key)
            except RelayThrottled:
                self._bulk_only_until = time.monotonic() + 60.0
                raise
            except RelayRefused as exc:
                log.warning("relay publisher: %s refused a bulk publish (%s); sending one by one", self.label, exc)
                for item in batch:
                    self._send_one(item)
                continue
            taken = [item for item, ok in zip(batch, accepted) if ok]
            self.ledger.sent(*taken)
            self.published += len(taken)
            for item in taken:
                self._failures.pop(item.id, None)
            refused = [item for item, ok in zip(batch, accepted) if not ok]
            for item in refused:
                self._count_failure(item, "rejected in a bulk publish")
            if refused and len(refused) == len(batch):
                return  # nothing went through: wait for the next round

    def _send_one(self, item) -> None:
        try:
            self.requests += 1
            self.http.publish(item.routing_key, item.payload, idempotency_key(self.label, item))
        except RelayThrottled:
            self._bulk_only_until = time.monotonic() + 60.0  # the relay's window is a minute
            raise
        except RelayRefused as exc:
            self._count_failure(item, str(exc))
            return
        self._failures.pop(item.id, None)
        self.ledger.sent(item)
        self.published += 1
        log.debug("relay published to %s: job %s %s", item.routing_key, item.payload.get("job_id"),
                  item.payload.get("status"))

    def _count_failure(self, item, reason: str) -> None:
        count = self._failures.get(item.id, 0) + 1
        self._failures[item.id] = count
        if count >= MAX_REFUSALS:
            log.error("relay publisher: %s refused %d times by %s (%s); dropped: job %s %s", item.routing_key,
                      count, self.label, reason, item.payload.get("job_id"), item.payload.get("status"))
            self._failures.pop(item.id, None)
            self.ledger.sent(item)

    # -- the capability snapshot ------------------------------------------------------------------
    def _publish_capabilities(self) -> None:
        """One snapshot per manager at start-up, as Pulsar publishes it (``message_queue_publish_capabilities``)."""
        for manager in self.topology.managers:
            payload = capabilities(self.engine, manager)
            key = "pl-cap-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]
            self.requests += 1
            self.http.publish(self.topology.name(CAPABILITIES, manager), payload, key)
        self.capabilities_due = False


def capabilities(engine, manager: str) -> dict:
    """Pulsar's capability snapshot (schema_version 1) for ``manager``."""
    config = engine.config
    mc = engine.manager_configs.get(manager)
    values = getattr(mc, "values", {}) if mc is not None else {}
    resolvers = config.values.get("dependency_resolution") or {}
    resolver_list = resolvers.get("resolvers") if isinstance(resolvers, dict) else None
    return {
        "schema_version": 1,
        "manager_name": manager,
        "pulsar_version": f"pulsar_lite {__version__}",
        "staging_directory": values.get("staging_directory") or config.values.get("staging_directory"),
        "persistence_directory": config.values.get("persistence_directory"),
        "tool_dependency_dir": config.values.get("tool_dependency_dir"),
        "dependency_resolvers": [
            {k: r.get(k) for k in ("type", "disabled", "versionless", "auto_init", "auto_install", "prefix")}
            for r in (resolver_list or []) if isinstance(r, dict)],
        "conda_available": shutil.which("conda") is not None,
        "container_runtime": {f"{name}_available": shutil.which(name) is not None
                              for name in ("docker", "singularity", "apptainer")},
        "manager": {"name": manager, "type": values.get("type"),
                    "num_concurrent_jobs": values.get("num_concurrent_jobs")},
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


__all__ = ["RelayPublisherThread", "capabilities", "idempotency_key"]
