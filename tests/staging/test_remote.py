"""The address rule on real connections: real HTTP servers on this host's loopback addresses, libcurl
resolving and connecting as it does in production. A refused address gets no connection at all (the server
sees no request), for the URL's own host, a name that resolves to it, and every hop of a redirect."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pulsar_lite.netpolicy import AddressPolicy
from pulsar_lite.staging import transfer
from pulsar_lite.staging.remote import Remote

from .conftest import policy

BODY = b"internal secret\n" * 64


class Origin:
    """An HTTP server on ``host``: GET /data answers BODY, GET /to?<url> redirects there, PUT is stored."""

    def __init__(self, host: str):
        self.requests: list[str] = []
        self.stored: dict[str, bytes] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                origin.requests.append(self.path)
                if self.path.startswith("/to?"):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/to?"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            def do_PUT(self):
                origin.requests.append(self.path)
                origin.stored[self.path] = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.http.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def internal():
    """A service on 127.0.0.1, the loopback a task must not reach by default."""
    origin = Origin("127.0.0.1")
    yield origin
    origin.close()


@pytest.fixture
def storage():
    """A server the operator allows (127.0.0.2, another loopback address of this host: Linux answers on all
    of 127.0.0.0/8), standing for the site's storage."""
    origin = Origin("127.0.0.2")
    yield origin
    origin.close()


def guarded(allowed=(), denied=()):
    return Remote(networks=AddressPolicy(allowed, denied, "tes_fetch_allowed_networks", "tes_fetch_denied_networks"))


def test_a_loopback_server_is_refused_by_default_without_a_connection_or_a_retry(internal, tmp_path, sleeps):
    with pytest.raises(transfer.TransferError) as info:
        transfer.download(f"{internal.url}/data", str(tmp_path / "got"), retry=policy(), remote=guarded())
    assert info.value.permanent and sleeps == []  # refused for good, not retried as a dropped connection
    assert "127.0.0.1 is loopback (127.0.0.0/8), refused unless tes_fetch_allowed_networks lists it" in str(info.value)
    assert internal.requests == [] and not (tmp_path / "got").exists()


def test_the_operator_allows_the_loopback(internal, tmp_path):
    transfer.download(f"{internal.url}/data", str(tmp_path / "got"), retry=policy(),
                      remote=guarded(allowed=["127.0.0.0/8"]))
    assert (tmp_path / "got").read_bytes() == BODY and internal.requests == ["/data"]


def test_without_a_rule_nothing_is_checked(internal, tmp_path):
    """Galaxy's pull staging (remote=None) reaches its Galaxy server wherever it is, the loopback too."""
    transfer.download(f"{internal.url}/data", str(tmp_path / "got"), retry=policy())
    assert (tmp_path / "got").read_bytes() == BODY


def test_a_redirect_from_an_allowed_server_to_a_refused_address_is_refused(storage, internal, tmp_path, sleeps):
    remote = guarded(allowed=["127.0.0.2/32"])
    transfer.download(f"{storage.url}/data", str(tmp_path / "direct"), retry=policy(), remote=remote)
    assert (tmp_path / "direct").read_bytes() == BODY  # the allowed server itself is fine
    with pytest.raises(transfer.TransferError) as info:
        transfer.download(f"{storage.url}/to?{internal.url}/data", str(tmp_path / "got"), retry=policy(),
                          remote=remote)
    assert "refused: 127.0.0.1 is loopback" in str(info.value) and info.value.permanent and sleeps == []
    assert storage.requests[-1].startswith("/to?") and internal.requests == []
    assert not (tmp_path / "got").exists()


def test_a_denied_address_beside_an_allowed_one(storage, internal, tmp_path):
    """The operator allows the loopback but denies one address of it: the most specific entry decides."""
    remote = guarded(allowed=["127.0.0.0/8"], denied=["127.0.0.1/32"])
    with pytest.raises(transfer.TransferError, match="127.0.0.1 is in 127.0.0.1/32, refused by "
                                                     "tes_fetch_denied_networks"):
        transfer.download(f"{storage.url}/to?{internal.url}/data", str(tmp_path / "got"), retry=policy(),
                          remote=remote)
    assert internal.requests == []


def test_a_name_is_judged_by_the_address_libcurl_connects_to(internal, tmp_path):
    """No literal address in the URL: 'localhost' resolves to the loopback, which is what is checked (a DNS
    answer that changes between a check and the connection cannot slip through: there is no separate check)."""
    with pytest.raises(transfer.TransferError, match="is loopback"):
        transfer.download(f"http://localhost:{internal.port}/data", str(tmp_path / "got"), retry=policy(),
                          remote=guarded())
    with pytest.raises(transfer.TransferError, match="127.0.0.1 is loopback"):  # IPv4 in IPv6 clothing
        transfer.download(f"http://[::ffff:127.0.0.1]:{internal.port}/data", str(tmp_path / "got"),
                          retry=policy(), remote=guarded())
    assert internal.requests == []


def test_outputs_are_refused_too(internal, tmp_path, sleeps):
    (tmp_path / "out").write_bytes(b"result")
    with pytest.raises(transfer.TransferError, match="refused: 127.0.0.1 is loopback") as info:
        transfer.put(f"{internal.url}/out", str(tmp_path / "out"), retry=policy(), remote=guarded())
    assert info.value.permanent and sleeps == [] and internal.stored == {}
    transfer.put(f"{internal.url}/out", str(tmp_path / "out"), retry=policy(), remote=guarded(["loopback"]))
    assert internal.stored == {"/out": b"result"}


def test_a_redirect_to_another_protocol_is_never_followed(internal, tmp_path):
    """file://, ftp://, gopher:// ...: a redirect goes to http(s) only, with or without a rule."""
    secret = tmp_path / "secret"
    secret.write_text("the daemon's own file\n")
    for remote in (None, guarded(["loopback"])):
        with pytest.raises(transfer.TransferError):
            transfer.download(f"{internal.url}/to?file://{secret}", str(tmp_path / "got"), retry=policy(0),
                              remote=remote)
        assert not (tmp_path / "got").exists()


def test_the_sockets_the_guard_opens_are_close_on_exec(internal):
    """pycurl hands libcurl a dup() of the socket the callback returns, which would be inherited by a job
    started meanwhile: the guard marks it close-on-exec, as libcurl marks its own."""
    import fcntl
    import os

    curl = transfer._curl(f"{internal.url}/data", 10, 10, guarded(["loopback"]))
    inherited = []

    def write(chunk):
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") and \
                        not fcntl.fcntl(int(fd), fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                    inherited.append(fd)
            except OSError:
                pass

    curl.setopt(transfer.pycurl.WRITEFUNCTION, write)
    curl.perform()
    curl.close()
    assert internal.requests == ["/data"] and inherited == []
