"""Found by review 4 (fixed): SIGHUP's reload of a PEM whose key does not match its certificate (a renewal caught half way,
a new certificate with the old key) must leave the certificate served before, as tls.reload promises."""
import socket
import ssl
import subprocess
import threading
from types import SimpleNamespace

from pulsar_lite import tls


def pem(tmp_path, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=x",
                    "-keyout", f"{name}.key", "-out", f"{name}.crt"], cwd=tmp_path, check=True, capture_output=True)
    return (tmp_path / f"{name}.crt").read_text(), (tmp_path / f"{name}.key").read_text()


def handshake(context):
    server, client = socket.socketpair()
    errors = []

    def serve():
        try:
            with context.wrap_socket(server, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    client_context = ssl.create_default_context()
    client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
    try:
        with client_context.wrap_socket(client) as c:
            c.send(b"x")
        ok = True
    except (ssl.SSLError, OSError):
        ok = False
    thread.join(5)
    return ok and not errors


def test_a_reload_with_a_mismatched_key_keeps_serving(tmp_path):
    cert_a, key_a = pem(tmp_path, "a")
    cert_b, _ = pem(tmp_path, "b")
    path = tmp_path / "server.pem"
    path.write_text(cert_a + key_a)
    listener = SimpleNamespace(context=tls.server_context(str(path)))  # the listening socket's context
    assert handshake(listener.context)
    path.write_text(cert_b + key_a)  # the renewed certificate, the old key (or the new key not written yet)
    tls.reload(listener, str(path))  # logs "still serving the certificate loaded before"
    assert handshake(listener.context), "after a refused reload the daemon no longer completes any TLS handshake"
    cert_c, key_c = pem(tmp_path, "c")
    path.write_text(cert_c + key_c)
    before = listener.context
    tls.reload(listener, str(path))
    assert listener.context is not before and handshake(listener.context)


def test_a_reload_of_a_half_written_pem_keeps_serving(tmp_path):
    cert_a, key_a = pem(tmp_path, "a")
    cert_b, key_b = pem(tmp_path, "b")
    path = tmp_path / "server.pem"
    path.write_text(cert_a + key_a)
    listener = SimpleNamespace(context=tls.server_context(str(path)))
    path.write_text(cert_b)  # a deploy hook writing cert then key, SIGHUP in between
    tls.reload(listener, str(path))
    assert handshake(listener.context), "after a refused reload the daemon no longer completes any TLS handshake"
