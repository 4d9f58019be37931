"""HTTPS (ssl_pem, Pulsar's key) with the real clients: certificates made by openssl for this test (a CA, and a
server certificate for 127.0.0.1 it signs). The clients connect with verification on and pass with the CA, and
refuse a daemon whose certificate another CA signed; SIGHUP loads a renewed certificate without a restart
(paste); granian serves the same file. user_auth stops start-up."""
from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_check_api, wait_until

pytestmark = pytest.mark.integration


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> Path:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)
    return directory / f"{name}.pem"


def make_server_pem(directory: Path, ca: str, name: str, days: int = 2) -> Path:
    """A certificate for 127.0.0.1 signed by ``ca``, with its key, in one PEM (what ssl_pem holds)."""
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", str(days), "-extfile", "san.ext", "-out", f"{name}.crt", cwd=directory)
    pem = directory / f"{name}.pem"
    pem.write_text((directory / f"{name}.crt").read_text() + (directory / f"{name}.key").read_text())
    pem.chmod(0o600)
    return pem


@pytest.fixture
def certificates(tmp_path):
    directory = tmp_path / "tls"
    directory.mkdir()
    return {"ca": make_ca(directory, "site-ca"), "other_ca": make_ca(directory, "other-ca"),
            "server": make_server_pem(directory, "site-ca", "server"), "directory": directory}


def trusting(ca: Path) -> dict:
    """The environment that makes the client's urllib and libcurl trust ``ca`` alone."""
    return {"SSL_CERT_FILE": str(ca), "REQUESTS_CA_BUNDLE": str(ca), "CURL_CA_BUNDLE": str(ca)}


def served_serial(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    done = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.mark.parametrize("web_server", ["paste", "granian"])
def test_the_real_clients_run_a_job_over_https_and_refuse_another_ca(web_server, client_python, daemon_factory,
                                                                    certificates):
    if web_server == "granian":
        pytest.importorskip("granian")
    daemon = daemon_factory({"ssl_pem": str(certificates["server"]), "web_server": web_server}).start()
    assert daemon.url.startswith("https://")
    result = run_check_api(client_python, url=daemon.url, env=trusting(certificates["ca"]))
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:], daemon.log()[-3000:])
    refused = run_check_api(client_python, url=daemon.url, env=trusting(certificates["other_ca"]), timeout=120)
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr or "certificate verify failed" in refused.stderr, \
        refused.stderr[-2000:]
    assert "serving on https://" in daemon.log()


def test_sighup_loads_a_renewed_certificate_without_a_restart(daemon_factory, certificates):
    daemon = daemon_factory({"ssl_pem": str(certificates["server"])}).start()
    before = served_serial(daemon.port)
    renewed = make_server_pem(certificates["directory"], "site-ca", "renewed")
    os.replace(renewed, certificates["server"])
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "loaded again" in daemon.log(), timeout=10, what="the reload")
    assert served_serial(daemon.port) != before
    # a file that cannot be read: the certificate in place stays, the daemon serves on
    certificates["server"].write_text("not a certificate\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "still serving the certificate loaded before" in daemon.log(), timeout=10, what="refusal")
    time.sleep(0.2)
    assert daemon.process.poll() is None and served_serial(daemon.port)


def test_a_pem_that_cannot_serve_stops_start_up_with_the_reason(daemon_factory, certificates):
    key_only = certificates["directory"] / "server.key"
    daemon = daemon_factory({"ssl_pem": str(key_only)})
    with pytest.raises(RuntimeError, match="ssl_pem .*server.key"):
        daemon.start(timeout=20)


def test_user_auth_stops_start_up_rather_than_run_every_users_job(daemon_factory):
    daemon = daemon_factory({"user_auth": {"authentication": [{"type": "userlist", "userlist_allowed_users":
                                                                   ["alice"]}]}})
    with pytest.raises(RuntimeError, match="user_auth.*refused"):
        daemon.start(timeout=20)
