"""AMQP configuration keys, settings and queue naming."""
import ssl

import pytest

from pulsar_lite.amqp.settings import AmqpSettings
from pulsar_lite.amqp.topology import Topology
from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError


def settings(**app):
    return AmqpSettings.from_config(build_config(app, base_dir="/srv"))


def test_unset_url_means_no_face():
    assert settings().urls == ()


def test_pulsar_defaults():
    s = settings(message_queue_url="amqp://guest:guest@mq:5672//")
    assert s.urls == ("amqp://guest:guest@mq:5672//",)
    assert (s.durable, s.heartbeat, s.consumer_timeout, s.acknowledge, s.ack_republish_time) == (True, 580, 0.2,
                                                                                              False, 30.0)
    assert s.publish_options == {"delivery_mode": 2}  # persistent because durable
    assert s.consume and s.publish and s.ssl is None
    assert s.ledger_path == "/srv/var/persisted_data/pulsar_lite_amqp.sqlite"


def test_url_list_and_single_string_is_never_split():
    assert settings(message_queue_url=["amqp://a//", "amqp://b//"]).urls == ("amqp://a//", "amqp://b//")
    assert settings(message_queue_url="amqp://u:p,w@a//").urls == ("amqp://u:p,w@a//",)


@pytest.mark.parametrize("url, message", [
    (["amqp://a//", "amqp://a//"], "twice"),
    ([1], "URL"),
])
def test_bad_urls_name_the_key(url, message):
    with pytest.raises(ConfigError, match=f"message_queue_url.*{message}"):
        settings(message_queue_url=url)


@pytest.mark.parametrize("value, seconds", [
    (None, 580), (True, 580), ("true", 580), (False, 0), ("false", 0), ("None", 0), ("off", 0), ("no", 0),
    ("", 0), (0, 0), ("60", 60), (30, 30),
])
def test_heartbeat_values(value, seconds):
    assert settings(message_queue_url="amqp://x//", amqp_heartbeat=value).heartbeat == seconds


def test_typed_pulsar_strings():
    s = settings(message_queue_url="amqp://x//", amqp_consumer_timeout="None", amqp_publish_timeout="None",
                 amqp_publish_retry="true", amqp_publish_retry_max_retries="7",
                 amqp_publish_retry_interval_start="2", amqp_publish_priority="3",
                 amqp_publish_delivery_mode="transient", amqp_durable="false", amqp_acknowledge="yes",
                 amqp_ack_republish_time="12", message_queue_consume="false")
    assert s.consumer_timeout == 1.0 and s.publish_timeout is None  # None: we still wake to check shutdown
    assert s.publish_options == {"priority": 3, "delivery_mode": 1, "retry": True, "retry_policy": {
        "max_retries": 7, "interval_start": 2.0, "interval_step": 2.0, "interval_max": 30.0}}
    assert not s.durable and s.acknowledge and s.ack_republish_time == 12.0 and not s.consume


def test_non_durable_sends_transient_by_default():
    assert settings(message_queue_url="amqp://x//", amqp_durable=False).publish_options == {}


def test_ssl_options():
    s = settings(message_queue_url="amqp://x//", amqp_connect_ssl_ca_certs="certs/ca.pem",
                 amqp_connect_ssl_cert_reqs="CERT_REQUIRED", amqp_connect_ssl_certfile="/etc/c.pem")
    assert s.ssl == {"ca_certs": "/srv/certs/ca.pem", "certfile": "/etc/c.pem", "cert_reqs": ssl.CERT_REQUIRED}
    with pytest.raises(ConfigError, match="amqp_connect_ssl_cert_reqs"):
        settings(amqp_connect_ssl_cert_reqs="sometimes")


def test_key_prefix_needs_a_single_manager():
    with pytest.raises(ConfigError, match="amqp_key_prefix"):
        settings(message_queue_url="amqp://x//", amqp_key_prefix="p", managers={"a": {}, "b": {}})


def test_amqp_keys_no_longer_warn():
    config = build_config({"message_queue_url": "amqp://x//", "amqp_acknowledge": True})
    assert not config.warnings


def test_queue_names_as_pulsar():
    plain = Topology(["_default_", "hugenodes"])
    assert plain.name("setup", "_default_") == "pulsar__setup"
    assert plain.name("setup", "hugenodes") == "pulsar_hugenodes__setup"
    assert plain.name("status_update", "hugenodes") == "pulsar_hugenodes__status_update"
    assert Topology(["_default_"], key_prefix="site1").name("setup", "_default_") == "site1_setup"
    names = [(r.manager, r.logical, r.queue.name) for r in plain.consumed()]
    assert ("hugenodes", "kill", "pulsar_hugenodes__kill") in names and len(names) == 6
    assert all(r.queue.routing_key == r.queue.name and r.queue.exchange.name == "pulsar"
               for r in plain.consumed())
    acked = Topology(["_default_"], acknowledge=True)
    assert [r.logical for r in acked.consumed()] == ["setup", "kill", "status", "status_update_ack"]
    assert plain.exchange.type == "direct" and plain.exchange.durable
    assert not Topology(["_default_"], durable=False).queue("setup", "_default_").durable


def test_ack_reply_queue_is_checked():
    topology = Topology(["m"])
    assert topology.ack_reply_key({"acknowledge_queue": "setup_ack"}, "setup", "m") == "pulsar_m__setup_ack"
    assert topology.ack_reply_key({}, "kill", "m") == "pulsar_m__kill_ack"
    assert topology.ack_reply_key({"acknowledge_queue": "setup"}, "setup", "m") is None
    assert topology.ack_reply_key({"acknowledge_queue": "../x_ack y"}, "setup", "m") is None


def test_the_same_broker_twice_is_refused(tmp_path):
    from pulsar_lite.amqp.face import AmqpFace

    config = build_config({"message_queue_url": ["amqp://u:one@mq//", "amqp://u:two@mq//"],
                           "persistence_directory": str(tmp_path)})

    class Engine:
        manager_configs = config.managers

    with pytest.raises(ConfigError, match="same broker twice"):
        AmqpFace(Engine(), AmqpSettings.from_config(config))
