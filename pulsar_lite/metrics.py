"""Prometheus metrics (``GET /metrics``, or ``metrics_port`` for a daemon without a web face).

One registry per engine, exposed with ``prometheus_client``'s own text format. Counters and histograms are
updated where things happen (the engine's events, staging, the scheduler base's polls, the REST app); gauges
of state (jobs by state and manager, the status outbox, brokers) are read from the store and the AMQP face
when scraped, so a scrape costs one GROUP BY query and nothing between scrapes.
"""
from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import wire

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600)
POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _StateCollector:
    """Gauges read when scraped: jobs by state and manager, outbox depth, brokers."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        jobs = GaugeMetricFamily("pulsar_lite_jobs", "Jobs the store holds, by state and manager",
                                 labels=["manager", "state"])
        counts = self.engine.store.count_by_state()
        for manager in self.engine.manager_configs:
            for state in wire.ALL_STATES:
                jobs.add_metric([manager, state], counts.get((manager, state), 0))
        yield jobs
        outbox = GaugeMetricFamily("pulsar_lite_outbox_depth", "Status updates waiting in the outbox to be routed")
        outbox.add_metric([], self.engine.store.outbox_count())
        yield outbox
        health = self.engine.store.health
        writable = GaugeMetricFamily("pulsar_lite_store_writable", "1 while the job store can be written, 0 during "
                                     "an outage (disk full, locked, I/O error)")
        writable.add_metric([], 0 if health.failing else 1)
        yield writable
        failures = CounterMetricFamily("pulsar_lite_store_write_failures", "Writes to the job store that failed")
        failures.add_metric([], health.failures)
        yield failures
        deferred = GaugeMetricFamily("pulsar_lite_store_deferred_changes", "Changes of jobs (a start, an end) "
                                     "waiting for the job store to be writable again")
        deferred.add_metric([], len(self.engine.deferred))
        yield deferred
        recovery = self.engine.recovery
        if recovery is not None:
            pending = GaugeMetricFamily("pulsar_lite_recovery_remaining", "Jobs held at start not yet recovered")
            pending.add_metric([], recovery.remaining)
            yield pending
        deletes = GaugeMetricFamily("pulsar_lite_scheduler_deletes_pending", "Jobs the daemon has ended (cancelled, "
                                    "given up) that the scheduler still lists: deleted again until it lets them go",
                                    labels=["manager"])
        held = GaugeMetricFamily("pulsar_lite_scheduler_jobs_held", "Jobs the scheduler holds (failed after "
                                 "held_job_grace unless released)", labels=["manager"])
        for name, manager in self.engine.managers.items():
            if hasattr(manager, "pending_deletes"):
                deletes.add_metric([name], manager.pending_deletes())
                held.add_metric([name], manager.held_jobs())
        yield deletes
        yield held
        face = getattr(self.engine, "amqp", None)
        if face is not None:
            connected = GaugeMetricFamily("pulsar_lite_broker_connected", "1 when the broker's publisher and "
                                          "consumers are connected", labels=["broker"])
            waiting = GaugeMetricFamily("pulsar_lite_broker_pending", "Messages waiting to be published, per broker",
                                        labels=["broker"])
            for broker in face.health()["brokers"]:
                connected.add_metric([broker["broker"]], int(broker["publisher_connected"] and broker["consuming"]))
                waiting.add_metric([broker["broker"]], broker["pending"])
            yield connected
            yield waiting


class Metrics:
    def __init__(self, engine):
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self.job_seconds = Histogram("pulsar_lite_job_duration_seconds", "Set-up to end of finished jobs",
                                     ["manager", "state"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.queue_seconds = Histogram("pulsar_lite_job_queue_seconds", "Submit to running (waiting for the "
                                       "manager or the scheduler)", ["manager"], buckets=DURATION_BUCKETS,
                                       registry=self.registry)
        self.staged_bytes = Counter("pulsar_lite_staging_bytes", "Bytes staged by the daemon", ["direction"],
                                    registry=self.registry)
        self.staged_seconds = Counter("pulsar_lite_staging_seconds", "Seconds spent staging", ["direction"],
                                      registry=self.registry)
        self.retries = Counter("pulsar_lite_transfer_retries", "Transfers retried after a transient failure",
                               registry=self.registry)
        self.poll_seconds = Histogram("pulsar_lite_scheduler_poll_seconds", "Duration of a scheduler status query",
                                      ["manager"], buckets=POLL_BUCKETS, registry=self.registry)
        self.poll_errors = Counter("pulsar_lite_scheduler_poll_errors", "Scheduler status queries that failed",
                                   ["manager"], registry=self.registry)
        self.requests = Counter("pulsar_lite_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.registry.register(_StateCollector(engine))
        engine.subscribe(self._on_transition)

    def _on_transition(self, manager: str, job_id: str, state: str) -> None:
        if state != wire.State.RUNNING and state not in wire.TERMINAL_STATES:
            return
        record = self.engine.store.get(manager, job_id)
        if record is None:
            return
        if state == wire.State.RUNNING:
            queued_at = next((ts for s, ts, _ in reversed(self.engine.store.transitions(manager, job_id))
                              if s == wire.State.QUEUED), None)
            if queued_at is not None:
                self.queue_seconds.labels(manager).observe(max(0.0, record.updated - queued_at))
        else:
            self.job_seconds.labels(manager, state).observe(max(0.0, record.updated - record.created))

    def staged(self, direction: str, nbytes: int, seconds: float) -> None:
        self.staged_bytes.labels(direction).inc(nbytes)
        self.staged_seconds.labels(direction).inc(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: Metrics, host: str, port: int):
    """A small HTTP server of its own for /metrics (a daemon without a web face)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics on http://%s:%s/metrics", host, port)
    return server


__all__ = ["Metrics", "CONTENT_TYPE", "serve_metrics", "time"]
