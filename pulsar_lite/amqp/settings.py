"""The AMQP face's settings, read once from the typed app config."""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

DEFAULT_HEARTBEAT = 580
#: consumer wait when amqp_consumer_timeout is None (we must wake to check heartbeats and shutdown)
UNBOUNDED_CONSUMER_WAIT = 1.0


@dataclass(frozen=True)
class AmqpSettings:
    urls: tuple[str, ...]
    key_prefix: str | None = None
    durable: bool = True
    heartbeat: int = DEFAULT_HEARTBEAT
    consumer_timeout: float = 0.2
    publish_timeout: float | None = 30.0
    publish_options: dict = field(default_factory=dict)  # priority, delivery_mode, retry, retry_policy
    ssl: dict | None = None
    acknowledge: bool = False
    ack_republish_time: float = 30.0
    drain_interval: float = 5.0
    max_message_size: int = 16 * 1024 * 1024
    consume: bool = True
    publish: bool = True
    ledger_path: str = "pulsar_lite_amqp.sqlite"
    synchronous: str = "full"

    @classmethod
    def from_config(cls, config, ledger_name: str = "pulsar_lite_amqp.sqlite") -> "AmqpSettings":
        values = config.values
        from ..relay.settings import configured_urls, is_relay_url

        urls = [u for u in configured_urls(values) if not is_relay_url(u)]  # http(s): pulsar-relay servers
        key_prefix = values.get("amqp_key_prefix")
        if key_prefix and len(config.managers) > 1:
            raise ConfigError(
                f"{config.source or 'configuration'}: amqp_key_prefix names the queues without the manager, "
                f"so it needs exactly one manager (found {', '.join(sorted(config.managers))})")
        heartbeat = values.get("amqp_heartbeat")
        consumer_timeout = values.get("amqp_consumer_timeout")
        durable = values.get("amqp_durable")
        return cls(
            urls=tuple(urls),
            key_prefix=key_prefix,
            durable=True if durable is None else bool(durable),
            heartbeat=DEFAULT_HEARTBEAT if heartbeat is None else int(heartbeat),
            consumer_timeout=UNBOUNDED_CONSUMER_WAIT if consumer_timeout is None else float(consumer_timeout),
            publish_timeout=values.get("amqp_publish_timeout"),
            publish_options=publish_options(values),
            ssl=ssl_options(values),
            acknowledge=bool(values.get("amqp_acknowledge")),
            ack_republish_time=float(values.get("amqp_ack_republish_time") or 30.0),
            drain_interval=float(values.get("status_outbox_drain_interval") or 5.0),
            max_message_size=int(values.get("amqp_max_message_size") or 16 * 1024 * 1024),
            consume=values.get("message_queue_consume") is not False,
            publish=values.get("message_queue_publish") is not False,
            ledger_path=os.path.join(config.persistence_directory, ledger_name),
            synchronous=values.get("store_synchronous") or "full",
        )


def publish_options(values: dict) -> dict[str, Any]:
    """kombu ``Producer.publish`` keyword arguments from the ``amqp_publish_*`` keys."""
    options: dict[str, Any] = {}
    if values.get("amqp_publish_priority") is not None:
        options["priority"] = int(values["amqp_publish_priority"])
    if values.get("amqp_publish_delivery_mode") is not None:
        options["delivery_mode"] = int(values["amqp_publish_delivery_mode"])
    elif values.get("amqp_durable", True) is not False:
        options["delivery_mode"] = 2
    if values.get("amqp_publish_retry"):
        options["retry"] = True
        options["retry_policy"] = {
            "max_retries": int(values.get("amqp_publish_retry_max_retries", 5)),
            "interval_start": float(values.get("amqp_publish_retry_interval_start", 1.0)),
            "interval_step": float(values.get("amqp_publish_retry_interval_step", 2.0)),
            "interval_max": float(values.get("amqp_publish_retry_interval_max", 30.0)),
        }
    return options


def ssl_options(values: dict) -> dict | None:
    """The dict kombu passes to ``ssl.wrap_socket`` (None: plain, or whatever ``?ssl=1`` in the URL says)."""
    options: dict[str, Any] = {}
    for name in ("ca_certs", "keyfile", "certfile"):
        value = values.get(f"amqp_connect_ssl_{name}")
        if value:
            options[name] = value
    cert_reqs = values.get("amqp_connect_ssl_cert_reqs")
    if cert_reqs:
        options["cert_reqs"] = getattr(ssl, cert_reqs.upper())
    return options or None
