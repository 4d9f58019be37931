"""Relay topic names, exactly as Pulsar and its clients name them (reference section 2.8).

``[<relay_topic_prefix>_]<base>[_<manager>]``; the manager suffix is left out for ``_default_``. The
logical names are the AMQP face's, so its handlers and router serve the relay unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .. import wire
from ..amqp.topology import KILL, SETUP, STATUS, STATUS_UPDATE

CAPABILITIES = "capabilities"

#: logical name -> topic base
BASES = {
    SETUP: "job_setup",
    STATUS: "job_status_request",
    KILL: "job_kill",
    STATUS_UPDATE: "job_status_update",
    CAPABILITIES: "pulsar_capabilities",
}

#: the relay caps the topics of one long poll at 20
MAX_TOPICS_PER_POLL = 20


@dataclass(frozen=True)
class RelayRoute:
    topic: str
    manager: str
    logical: str


class RelayTopology:
    def __init__(self, managers: Iterable[str], prefix: str = ""):
        self.managers = list(managers)
        self.prefix = prefix or ""

    def name(self, logical: str, manager: str) -> str:
        base = BASES.get(logical, logical)
        parts = [self.prefix] if self.prefix else []
        parts.append(base)
        if manager != wire.DEFAULT_MANAGER:
            parts.append(manager)
        return "_".join(parts)

    def consumed(self) -> list[RelayRoute]:
        """Setup, status request and kill topics of every manager."""
        return [RelayRoute(self.name(logical, m), m, logical) for m in self.managers
                for logical in (SETUP, STATUS, KILL)]

    def poll_groups(self) -> list[list[RelayRoute]]:
        """The consumed topics in groups one long poll may ask for."""
        routes = self.consumed()
        size = MAX_TOPICS_PER_POLL - MAX_TOPICS_PER_POLL % 3
        return [routes[i:i + size] for i in range(0, len(routes), size)]

    def ack_reply_key(self, body: dict, logical: str, manager: str) -> str | None:
        """The relay has no acknowledgement messages: a message's ``acknowledge_uuid`` only dedupes it."""
        return None
