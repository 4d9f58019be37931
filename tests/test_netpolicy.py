"""The address rule of the daemon's own TES transfers: what is refused by default, what an operator opens or
closes, which entry decides. (The rule applied to real connections: tests/staging/test_remote.py.)"""
import pytest

from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError
from pulsar_lite.netpolicy import AddressPolicy, parse_networks


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1", "169.254.169.254", "169.254.1.1", "fe80::1",
                                     "fe80::1%eth0", "0.0.0.0", "::", "224.0.0.251", "ff02::1", "::ffff:127.0.0.1",
                                     "::ffff:169.254.169.254", "100.100.100.200", "fd00:ec2::254"])
def test_refused_by_default(address):
    why = AddressPolicy(allowed_option="tes_fetch_allowed_networks").refusal(address)
    assert why is not None and "tes_fetch_allowed_networks" in why


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::2", "8.8.8.8",
                                     "192.0.2.2", "2001:db8::1"])
def test_private_and_public_addresses_are_allowed_by_default(address):
    assert AddressPolicy().refusal(address) is None


def test_an_ipv4_mapped_address_is_judged_as_its_ipv4_address():
    assert "127.0.0.1 is loopback" in AddressPolicy().refusal("::ffff:127.0.0.1")
    assert AddressPolicy(allowed=["127.0.0.1"]).refusal("::ffff:127.0.0.1") is None


def test_the_operator_opens_a_class_with_a_network_at_least_as_specific():
    assert AddressPolicy(allowed=["127.0.0.0/8"]).refusal("127.0.0.1") is None
    assert AddressPolicy(allowed=["loopback"]).refusal("::1") is None
    # everything is less specific than the loopback's /8 and the metadata service's /32: both stay refused
    everything = AddressPolicy(allowed=["0.0.0.0/0", "::/0"])
    assert everything.refusal("127.0.0.1") and everything.refusal("169.254.169.254") and everything.refusal("::1")
    # link-local opened, its metadata service address not (a /32 of its own)
    link_local = AddressPolicy(allowed=["169.254.0.0/16"])
    assert link_local.refusal("169.254.1.1") is None and "metadata" in link_local.refusal("169.254.169.254")
    assert AddressPolicy(allowed=["link-local", "metadata"]).refusal("169.254.169.254") is None


def test_denied_networks_close_more_and_the_most_specific_entry_decides():
    policy = AddressPolicy(allowed=["127.0.0.0/8", "10.5.0.0/16"], denied=["private", "127.0.0.1"],
                           denied_option="tes_fetch_denied_networks")
    assert policy.refusal("127.0.0.2") is None
    assert policy.refusal("127.0.0.1") == "127.0.0.1 is in 127.0.0.1/32, refused by tes_fetch_denied_networks"
    assert policy.refusal("10.5.1.1") is None  # a storage network kept open in a closed private range
    assert policy.refusal("10.6.1.1") == "10.6.1.1 is private (10.0.0.0/8), refused by tes_fetch_denied_networks"
    assert "private (fc00::/7)" in policy.refusal("fd00::2")
    # the same network in both lists: denied wins
    assert AddressPolicy(allowed=["192.0.2.0/24"], denied=["192.0.2.0/24"]).refusal("192.0.2.2")


def test_only_literal_addresses_are_judged_from_a_url():
    policy = AddressPolicy()
    assert "metadata" in policy.refusal_of_url("http://169.254.169.254/latest/meta-data/")
    assert "link-local" in policy.refusal_of_url("http://169.254.1.1/")
    assert "loopback" in policy.refusal_of_url("ftp://user:secret@[::1]:2121/in.txt")
    assert policy.refusal_of_url("http://localhost/x") is None  # a name: judged at connect time
    assert policy.refusal_of_url("https://data.example.org/x") is None
    assert policy.refusal_of_url("http://10.0.0.1/x") is None


def test_bad_entries_are_refused_with_their_text():
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="'intranet'"):
        AddressPolicy(denied=["intranet"])
    with pytest.raises(ConfigError, match="tes_fetch_denied_networks"):
        build_config({"tes_fetch_denied_networks": ["private", "nonsense"]})
    config = build_config({"tes_fetch_allowed_networks": "127.0.0.0/8, ::1", "tes_fetch_denied_networks": ["private"]})
    assert config.tes_fetch_allowed_networks == ["127.0.0.0/8", "::1"]
    assert build_config({}).tes_fetch_allowed_networks == [] and build_config({}).tes_ftp_tls == "scheme"
