"""Exchange, queue names and routing keys, exactly as Pulsar lays them out (reference section 2.2)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import kombu

from .. import wire

SETUP, STATUS, KILL = "setup", "status", "kill"
STATUS_UPDATE = "status_update"
STATUS_UPDATE_ACK = "status_update_ack"
ACK_SUFFIX = "_ack"

# message keys of the acknowledgement protocol (reference section 2.5)
ACK_UUID = "acknowledge_uuid"
ACK_QUEUE = "acknowledge_queue"
ACK_SUBMIT_QUEUE = "acknowledge_submit_queue"
ACK_RESPONSE = "acknowledge_uuid_response"
FORCE_NOACK = "force_noack"

_ACK_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}_ack$")


@dataclass(frozen=True)
class Route:
    """What a consumed queue means: which manager, which logical name."""

    manager: str
    logical: str
    queue: kombu.Queue


class Topology:
    def __init__(self, managers: Iterable[str], key_prefix: str | None = None, durable: bool = True,
                 acknowledge: bool = False):
        self.managers = list(managers)
        self.key_prefix = key_prefix
        self.durable = durable
        self.acknowledge = acknowledge
        self.exchange = kombu.Exchange(wire.AMQP_EXCHANGE, "direct", durable=durable)

    def name(self, logical: str, manager: str) -> str:
        """Queue name and routing key of ``logical`` (setup, status_update, setup_ack...) for ``manager``."""
        return wire.amqp_queue_name(logical, manager, self.key_prefix)

    def queue(self, logical: str, manager: str) -> kombu.Queue:
        name = self.name(logical, manager)
        return kombu.Queue(name, self.exchange, routing_key=name, durable=self.durable)

    def consumed(self) -> list[Route]:
        """Queues this daemon consumes: setup, status and kill per manager (+ status_update_ack)."""
        logicals = list(wire.AMQP_CONSUMED) + ([STATUS_UPDATE_ACK] if self.acknowledge else [])
        return [Route(m, logical, self.queue(logical, m)) for m in self.managers for logical in logicals]

    def published(self) -> list[kombu.Queue]:
        """Queues declared by the publisher so updates wait for a client that has not started yet."""
        return [self.queue(STATUS_UPDATE, m) for m in self.managers]

    def ack_reply_key(self, body: dict, logical: str, manager: str) -> str | None:
        """Routing key for ``{"acknowledge_uuid_response": ...}``; None if the message names a bad queue."""
        ack_queue = body.get(ACK_QUEUE) or f"{logical}{ACK_SUFFIX}"
        if not isinstance(ack_queue, str) or not _ACK_QUEUE_RE.match(ack_queue):
            return None
        return self.name(ack_queue, manager)
