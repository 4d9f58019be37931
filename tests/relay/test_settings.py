"""Relay settings, topic names and the cursor file (no relay needed)."""
import json
import os

import pytest

from pulsar_lite.amqp.settings import AmqpSettings
from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError
from pulsar_lite.relay.cursor import Cursor
from pulsar_lite.relay.settings import RelaySettings
from pulsar_lite.relay.topology import RelayTopology


def config(**values):
    return build_config({"persistence_directory": "/srv/p", **values})


def test_http_urls_are_relays_and_the_rest_brokers():
    c = config(message_queue_url=["amqp://a//", "https://relay.example.org/"], message_queue_username="u",
               message_queue_password="p", relay_topic_prefix="eu", relay_long_poll_timeout=20)
    assert AmqpSettings.from_config(c).urls == ("amqp://a//",)
    (relay,) = RelaySettings.from_config(c)
    assert relay.url == "https://relay.example.org" and relay.label == "relay:https://relay.example.org"
    assert (relay.username, relay.password, relay.topic_prefix, relay.long_poll_timeout) == ("u", "p", "eu", 20)
    assert relay.publish_capabilities


def test_a_relay_needs_credentials():
    with pytest.raises(ConfigError, match="message_queue_username"):
        RelaySettings.from_config(config(message_queue_url="https://relay.example.org"))
    (relay,) = RelaySettings.from_config(config(message_queue_url="https://r.example.org",
                                                message_queue_credentials_file="/etc/creds.json"))
    assert relay.credentials_file == "/etc/creds.json"


def test_long_poll_timeout_is_the_relays_range():
    with pytest.raises(ConfigError, match="between 1 and 60"):
        RelaySettings.from_config(config(message_queue_url="https://r.example.org", message_queue_username="u",
                                         message_queue_password="p", relay_long_poll_timeout=90))


def test_topic_names_are_pulsars():
    t = RelayTopology(["_default_", "hpc"])
    assert [r.topic for r in t.consumed()] == ["job_setup", "job_status_request", "job_kill", "job_setup_hpc",
                                               "job_status_request_hpc", "job_kill_hpc"]
    assert t.name("status_update", "_default_") == "job_status_update"
    assert RelayTopology(["hpc"], "eu").name("status_update", "hpc") == "eu_job_status_update_hpc"
    assert RelayTopology(["_default_"], "eu").name("capabilities", "_default_") == "eu_pulsar_capabilities"
    many = RelayTopology([f"m{i}" for i in range(8)])
    assert [len(g) for g in many.poll_groups()] == [18, 6]


def test_cursor_survives_and_starts_new_topics_at_its_birth(tmp_path):
    cursor = Cursor(str(tmp_path), "https://r.example.org")
    origin = cursor.origin
    assert cursor.since(["a"]) == {"a": origin}
    cursor.advance({"a": "17-0"})
    again = Cursor(str(tmp_path), "https://r.example.org/")
    assert again.since(["a", "b"]) == {"a": "17-0", "b": origin}
    assert json.loads(open(again.path).read())["topics"] == {"a": "17-0"}
    assert oct(os.stat(again.path).st_mode & 0o777)  # a plain file, replaced atomically
    assert Cursor(str(tmp_path), "https://other.example.org").path != again.path
