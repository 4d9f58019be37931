"""The AMQP face: Galaxy's Pulsar message-queue protocol over RabbitMQ (kombu).

Modules by concept:

* ``settings``  — the ``message_queue_*`` / ``amqp_*`` keys, read once;
* ``topology``  — exchange ``pulsar``, queue names and routing keys, ack message keys;
* ``ledger``    — SQLite bookkeeping: job origins, messages awaiting a confirm, acks;
* ``router``    — store outbox -> per-broker pending messages (who gets which update);
* ``handlers``  — what a setup / status / kill / status_update_ack message does;
* ``consumer``, ``publisher`` — one thread each per broker, reconnecting forever;
* ``face``      — wiring and start-up order.

Delivery guarantees: a setup message is acked to the broker only after the job
is recorded; a status update leaves the ledger only after a publisher confirm.
Duplicates are possible after crashes and reconnects; losses are not.
"""
from __future__ import annotations

from .face import AmqpFace
from .settings import AmqpSettings

__all__ = ["AmqpFace", "AmqpSettings", "start_amqp"]


def start_amqp(engine, config) -> AmqpFace | None:
    """Start the AMQP face for ``engine``; None when ``message_queue_url`` is not set.

    Does not wait for the broker: a broker that is down at start-up is retried
    in the background, and status updates wait in the outbox meanwhile.
    """
    from ..relay.settings import RelaySettings

    settings = AmqpSettings.from_config(config)
    relays = RelaySettings.from_config(config)
    if not settings.urls and not relays:
        return None
    if not settings.consume and not settings.publish:
        import logging

        logging.getLogger(__name__).warning(
            "message_queue_consume and message_queue_publish are both off: the AMQP face is not started")
        return None
    return AmqpFace(engine, settings, relays).start()
