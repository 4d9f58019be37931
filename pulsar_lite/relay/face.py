"""The relay face: pulsar-relay endpoints inside the message face (``amqp/face.py``).

A relay is one more "broker" of that face: its label (``relay:<url>``) names it in the ledger, the router
sends the status updates of jobs whose setup came from it to its publisher, and the face starts, stops and
reports its threads beside the AMQP ones. Per relay: one auth manager (shared by its threads), one publisher,
and one consumer per group of up to 18 topics (six managers), each with its own HTTP session.
"""
from __future__ import annotations

import logging
import os

from ..amqp.handlers import MessageHandler
from .consumer import RelayConsumerThread
from .cursor import Cursor
from .http import RelayHttp, auth_manager
from .publisher import RelayPublisherThread
from .settings import RelaySettings
from .topology import RelayTopology

log = logging.getLogger(__name__)


class RelayEndpoint:
    """The threads serving one relay; ``label`` as ``Broker.label``."""

    def __init__(self, engine, settings: RelaySettings, amqp_settings, ledger, stop, index: int = 0):
        self.settings = settings
        self.label = settings.label
        self.topology = RelayTopology(engine.manager_configs, settings.topic_prefix)
        self.auth = auth_manager(settings)
        self.engine = engine
        self.amqp_settings = amqp_settings
        self.ledger = ledger
        self.stop_event = stop
        self.index = index
        self.publisher: RelayPublisherThread | None = None
        self.consumers: list[RelayConsumerThread] = []

    def build(self, router, wake) -> None:
        """Make the threads (not started): the router must know this endpoint's topology first."""
        self.publisher = RelayPublisherThread(
            self.label, RelayHttp(self.settings, self.auth), self.topology, self.ledger, router, self.stop_event,
            engine=self.engine, capabilities=self.settings.publish_capabilities and self.amqp_settings.publish,
            drain_interval=self.amqp_settings.drain_interval, index=self.index)
        if not self.amqp_settings.consume:
            return
        cursor = Cursor(os.path.dirname(self.amqp_settings.ledger_path), self.settings.url,
                        synchronous=self.amqp_settings.synchronous == "full")
        handler = MessageHandler(self.engine, self.ledger, router, self.topology, self.label,
                                 self.publisher.wake.set, self.settings.max_message_size)
        for number, routes in enumerate(self.topology.poll_groups()):
            self.consumers.append(RelayConsumerThread(
                self.label, RelayHttp(self.settings, self.auth), routes, handler, cursor, self.stop_event,
                self.settings.long_poll_timeout, index=self.index * 100 + number))
