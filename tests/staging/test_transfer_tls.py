"""https transfers check the server's certificate against this host's CA bundle (or CURL_CA_BUNDLE /
SSL_CERT_FILE): the pycurl wheel's libcurl looks for Red Hat's bundle path, absent on Debian, which failed every
https download of Galaxy's job files there. A real TLS server with certificates openssl makes here."""
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pulsar_lite.staging import RetryPolicy, transfer
from tests.integration.test_https import make_ca, make_server_pem


@pytest.fixture
def https_server(tmp_path):
    directory = tmp_path / "tls"
    directory.mkdir()
    ca, other = make_ca(directory, "site-ca"), make_ca(directory, "other-ca")
    pem = make_server_pem(directory, "site-ca", "server")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/file", ca, other
    server.shutdown()


def test_the_hosts_bundle_is_found_on_debian(monkeypatch):
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert transfer._system_ca() == ssl.get_default_verify_paths().cafile


def test_a_download_checks_the_certificate_against_the_bundle(https_server, tmp_path, monkeypatch):
    url, ca, other = https_server
    monkeypatch.setattr(transfer, "SYSTEM_CA", str(ca))
    target = tmp_path / "got"
    transfer.download(url, str(target), retry=RetryPolicy(max_retries=1, interval_start=0.1, interval_step=0.0, interval_max=0.1))
    assert target.read_bytes() == b"hello"
    monkeypatch.setattr(transfer, "SYSTEM_CA", str(other))
    with pytest.raises(transfer.TransferError, match="(?i)certificate|SSL"):
        transfer.download(url, str(tmp_path / "refused"), retry=RetryPolicy(max_retries=1, interval_start=0.1, interval_step=0.0, interval_max=0.1))
