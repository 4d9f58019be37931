"""The relay face's settings: Pulsar's keys, read once from the typed app config.

``message_queue_url`` entries that begin with ``http://`` or ``https://`` are pulsar-relay servers; the
others are AMQP brokers (``amqp/settings.py``). One daemon may serve both at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

DEFAULT_LONG_POLL_TIMEOUT = 30


def is_relay_url(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://"))


def configured_urls(values: dict) -> list[str]:
    urls = values.get("message_queue_url") or []
    return [urls] if isinstance(urls, str) else list(urls)


@dataclass(frozen=True)
class RelaySettings:
    url: str
    username: str | None = None
    password: str | None = None
    credentials_file: str | None = None
    topic_prefix: str = ""
    long_poll_timeout: int = DEFAULT_LONG_POLL_TIMEOUT
    publish_capabilities: bool = True
    max_message_size: int = 16 * 1024 * 1024

    @property
    def label(self) -> str:
        """How the ledger and the logs name this relay (no credentials are ever part of the URL)."""
        return f"relay:{self.url.rstrip('/')}"

    @classmethod
    def from_config(cls, config) -> list["RelaySettings"]:
        """One entry per relay URL in ``message_queue_url`` (none: an empty list)."""
        values = config.values
        urls = [u for u in configured_urls(values) if is_relay_url(u)]
        if not urls:
            return []
        username = values.get("message_queue_username")
        password = values.get("message_queue_password")
        credentials_file = values.get("message_queue_credentials_file")
        if not credentials_file and not (username and password):
            raise ConfigError(
                f"{config.source or 'configuration'}: a pulsar-relay message_queue_url needs "
                "message_queue_username and message_queue_password, or message_queue_credentials_file "
                "(written by `pulsar-config --login`; pulsar_lite has no login command yet)")
        timeout = int(values.get("relay_long_poll_timeout") or DEFAULT_LONG_POLL_TIMEOUT)
        if not 1 <= timeout <= 60:
            raise ConfigError("relay_long_poll_timeout must be between 1 and 60 seconds (the relay's own limits)")
        publish_capabilities = values.get("message_queue_publish_capabilities")
        return [cls(
            url=url.rstrip("/"),
            username=username,
            password=password,
            credentials_file=credentials_file,
            topic_prefix=values.get("relay_topic_prefix") or "",
            long_poll_timeout=timeout,
            publish_capabilities=publish_capabilities is not False,
            max_message_size=int(values.get("amqp_max_message_size") or 16 * 1024 * 1024),
        ) for url in urls]
