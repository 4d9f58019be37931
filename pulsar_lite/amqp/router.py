"""From job state changes to messages: store outbox -> per-broker pending rows.

Routing rule: a job's status updates go to the broker its setup message came
from (``origins``). Jobs with no origin (submitted over REST) are not published:
their client polls, and an MQ runner on the same Galaxy must not act on them.
"""
from __future__ import annotations

import logging
import threading
import uuid
from typing import Callable, Iterable

from .. import wire
from .ledger import Ledger, Outgoing
from .topology import ACK_QUEUE, ACK_SUBMIT_QUEUE, ACK_UUID, STATUS_UPDATE, STATUS_UPDATE_ACK, Topology

log = logging.getLogger(__name__)


class Router:
    def __init__(self, engine, ledger: Ledger, topology: Topology, brokers: Iterable[str], acknowledge: bool,
                 publish: bool, wake: Callable[[str], None], topologies: dict | None = None):
        self.engine = engine
        self.ledger = ledger
        self.topology = topology
        #: names of another transport for some brokers (a pulsar-relay's topics), by broker label
        self.topologies = dict(topologies or {})
        self.brokers = set(brokers)
        self.acknowledge = acknowledge
        self.publish = publish
        self.wake = wake
        self._lock = threading.Lock()

    # -- payloads ----------------------------------------------------------------
    def status_payload(self, manager: str, job_id: str) -> dict:
        """The full status payload (reference section 1.6); unknown jobs are ``lost``."""
        try:
            return self.engine.status(manager, job_id)
        except Exception as exc:  # e.g. an unreadable job directory, or a manager no longer configured
            log.warning("job %s [%s]: cannot build the full status (%s); sending the reduced form",
                        job_id, manager, exc)
            record = self.engine.store.get(manager, job_id)
            state = wire.wire_state(record.state) if record else wire.State.LOST
            return {"job_id": job_id, "complete": wire.complete_flag(state), "status": state, "returncode": None}

    def update_payload(self, manager: str, job_id: str, state: str) -> dict | None:
        """Payload announcing ``state`` (None when the job has since been cleaned or reset)."""
        if state not in wire.TERMINAL_STATES:
            record = self.engine.store.get(manager, job_id)
            if record is None:
                return None
            return {"job_id": job_id, "complete": "false", "status": state}
        payload = self.status_payload(manager, job_id)
        if payload.get("status") != state:
            log.warning("job %s [%s]: %s update skipped, the job is now %s", job_id, manager, state,
                        payload.get("status"))
            return None
        return payload

    def _update(self, broker: str, manager: str, job_id: str, state: str, seq: int | None) -> Outgoing | None:
        payload = self.update_payload(manager, job_id, state)
        if payload is None:
            return None
        ack_uuid = None
        if self.acknowledge and broker not in self.topologies:  # the relay has no acknowledgements
            ack_uuid = str(uuid.uuid4())
            payload[ACK_UUID] = ack_uuid
            payload[ACK_QUEUE] = STATUS_UPDATE_ACK
            payload[ACK_SUBMIT_QUEUE] = STATUS_UPDATE
        return Outgoing(broker, self.topology_of(broker).name(STATUS_UPDATE, manager), payload, ack_uuid=ack_uuid,
                        source_seq=seq, job=(manager, job_id, state))

    # -- routing -------------------------------------------------------------------
    def route_outbox(self) -> int:
        """Move every store outbox row to its broker's pending queue; wake those publishers."""
        store = self.engine.store
        routed = 0
        with self._lock:
            while True:
                rows = store.outbox(limit=200)
                if not rows:
                    break
                messages = []
                for seq, manager, job_id, state in rows:
                    broker = self.ledger.origin(manager, job_id) if self.publish else None
                    if broker is None:
                        log.debug("job %s [%s] -> %s: not from a message queue, not published", job_id, manager,
                                  state)
                    elif broker not in self.brokers:
                        log.warning("job %s [%s] -> %s: its broker %s is no longer configured; not published",
                                    job_id, manager, state, broker)
                    else:
                        message = self._update(broker, manager, job_id, state, seq)
                        if message is not None:
                            messages.append(message)
                self.ledger.enqueue(messages)
                store.outbox_done(*(seq for seq, *_ in rows))
                routed += len(messages)
                for broker in {m.broker for m in messages}:
                    self.wake(broker)
        return routed

    def sweep(self) -> int:
        """Publish states that changed while no outbox row could be written (e.g. during start-up recovery)."""
        found = []
        with self._lock:
            for manager, job_id, broker, last_state in self.ledger.in_flight():
                record = self.engine.store.get(manager, job_id)
                if record is None:
                    self.ledger.settle(manager, job_id, wire.State.LOST)
                    continue
                if record.state == last_state:
                    continue
                if record.state in wire.PUBLISHED_STATES and broker in self.brokers and self.publish:
                    message = self._update(broker, manager, job_id, record.state, None)
                    if message is not None:
                        found.append(message)
                        log.info("job %s [%s]: announcing %s (changed while not publishing)", job_id, manager,
                                 record.state)
                elif record.state in wire.TERMINAL_STATES:
                    self.ledger.settle(manager, job_id, record.state)
            self.ledger.enqueue(found)
        for broker in {m.broker for m in found}:
            self.wake(broker)
        return len(found)

    def reply_status(self, broker: str, manager: str, job_id: str) -> Outgoing:
        """The answer to a status request: the current status, without acknowledgement keys."""
        payload = self.status_payload(manager, job_id)
        return Outgoing(broker, self.topology_of(broker).name(STATUS_UPDATE, manager), payload)

    def topology_of(self, broker: str):
        return self.topologies.get(broker, self.topology)
