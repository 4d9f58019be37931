"""Which addresses the daemon's own transfers may connect to (TES inputs and outputs: server-side request
forgery).

A TES task names URLs the daemon fetches and sends to itself, following redirects: without a rule, a task
could have it read a cloud metadata service (169.254.169.254) or a service listening on the loopback and
hand the answer to its container. The rule is checked against each address libcurl is about to connect
to (``guard``: CURLOPT_OPENSOCKETFUNCTION, called before every socket libcurl opens, so for every hop of
a redirect, every address a name resolves to, an FTP data connection), never against a separate lookup of
the name that a DNS answer could change in between.

The rule: the most specific network that holds the address decides, among

* the refused classes, refused unless the operator allows them: loopback (127.0.0.0/8, ::1), link-local
  (169.254.0.0/16, fe80::/10), unspecified (0.0.0.0/8, ::), multicast (224.0.0.0/4, ff00::/8) and the
  cloud metadata services (169.254.169.254, Alibaba's 100.100.100.200, AWS's fd00:ec2::254);
* the operator's ``allowed`` and ``denied`` networks (CIDR, or a class's name: ``loopback``,
  ``link-local``, ``unspecified``, ``multicast``, ``metadata``, ``private`` = 10.0.0.0/8, 172.16.0.0/12,
  192.168.0.0/16, 100.64.0.0/10, fc00::/7).

At equal prefix length the operator's entry beats a built-in one, and denied beats allowed. So
``allowed: [127.0.0.0/8]`` opens the loopback, ``allowed: [0.0.0.0/0]`` does not (less specific), and
``denied: [private]`` with ``allowed: [10.5.0.0/16]`` keeps one storage network open. An address no
network holds is allowed. An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as its IPv4 address.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

CLASSES: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/10"),
    "unspecified": ("0.0.0.0/8", "::/128"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
    # cloud metadata services (AWS, GCP, Azure, OpenStack, Oracle; Alibaba; AWS over IPv6), two of them
    # inside ranges that are otherwise allowed
    "metadata": ("169.254.169.254/32", "100.100.100.200/32", "fd00:ec2::254/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
}
#: how a message names an address of each class
_LABELS = {"metadata": "a cloud metadata service"}
#: refused unless the operator allows them
REFUSED_CLASSES = ("loopback", "link-local", "unspecified", "multicast", "metadata")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries) -> list[tuple[_Network, str]]:
    """(network, what the operator wrote) for each entry: a CIDR, a bare address or a class name.
    Raises ValueError naming a bad entry."""
    parsed = []
    for entry in entries or []:
        text = str(entry).strip()
        if text.lower() in CLASSES:
            parsed += [(ipaddress.ip_network(cidr), text.lower()) for cidr in CLASSES[text.lower()]]
            continue
        try:
            parsed.append((ipaddress.ip_network(text, strict=False), text))
        except ValueError:
            raise ValueError(f"{text!r} is neither a network (CIDR such as 10.0.0.0/8) nor one of "
                             f"{', '.join(CLASSES)}") from None
    return parsed


def check_networks(value) -> list[str]:
    """The configuration's coercion: a list of entries, each checked (ValueError names a bad one)."""
    entries = value.split(",") if isinstance(value, str) else value  # (an environment variable: comma-separated)
    if not isinstance(entries, list):
        raise ValueError("expected a list of networks")
    entries = [str(e).strip() for e in entries if str(e).strip()]
    parse_networks(entries)
    return entries


def _address(text: str):
    address = ipaddress.ip_address(text.split("%", 1)[0])  # (an IPv6 zone: fe80::1%eth0)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AddressPolicy:
    """The rule above. ``allowed`` and ``denied``: the operator's entries; ``allowed_option`` and
    ``denied_option``: where the operator sets them, for the messages."""

    def __init__(self, allowed=(), denied=(), allowed_option: str = "the allowed networks",
                 denied_option: str = "the denied networks"):
        self.allowed, self.denied = tuple(allowed or ()), tuple(denied or ())
        #: (network, rank, allowed?, why it is refused); the longest prefix decides, then the highest rank
        self._rules = [(ipaddress.ip_network(cidr), 0, False,
                        f"{_LABELS.get(name, name)} ({cidr}), refused unless {allowed_option} lists it")
                       for name in REFUSED_CLASSES for cidr in CLASSES[name]]
        self._rules += [(network, 1, True, "") for network, _ in parse_networks(self.allowed)]
        for network, text in parse_networks(self.denied):
            what = f"{_LABELS.get(text, text)} ({network})" if text in CLASSES else f"in {network}"
            self._rules.append((network, 2, False, f"{what}, refused by {denied_option}"))

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP address as text) is refused, or None when it is allowed."""
        try:
            ip = _address(address)
        except ValueError:
            return f"{address!r} is not an IP address"
        best = None
        for network, rank, allowed, why in self._rules:
            if network.version == ip.version and ip in network:
                if best is None or (network.prefixlen, rank) > best[0]:
                    best = ((network.prefixlen, rank), allowed, why)
        if best is None or best[1]:
            return None
        return f"{ip} is {best[2]}"

    def refusal_of_url(self, url: str) -> str | None:
        """Why a URL whose host is a literal IP address is refused (a name is judged when it is connected
        to: ``guard``); None otherwise."""
        try:
            host = urlsplit(url).hostname
            _address(host or "")
        except ValueError:
            return None
        return self.refusal(host)


def guard(curl, policy: AddressPolicy, pycurl) -> None:
    """Check every address ``curl`` connects to against ``policy``. A refused address gets no socket (no
    packet is sent to it); why is kept in ``curl.refused`` for the error message (``refused``)."""
    curl.refused = []

    def open_socket(purpose, address):
        host = address.addr[0] if isinstance(address.addr, tuple) else None
        why = policy.refusal(host) if host is not None else "not an IP connection"
        if why is not None:
            curl.refused.append(why)
            return pycurl.SOCKET_BAD
        return socket.socket(address.family, address.socktype, address.protocol)

    def close_on_exec(fd, purpose):  # pycurl dup()s the socket returned above: that copy is inheritable
        os.set_inheritable(fd, False)
        return pycurl.SOCKOPT_OK

    curl.setopt(pycurl.OPENSOCKETFUNCTION, open_socket)
    curl.setopt(pycurl.SOCKOPTFUNCTION, close_on_exec)


def refused(curl) -> str | None:
    """Why a connection of ``curl`` was refused by its guard, or None."""
    reasons = getattr(curl, "refused", None)
    if not reasons:
        return None
    return "; ".join(dict.fromkeys(reasons))
