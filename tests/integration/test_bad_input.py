"""Bad input against a live daemon: clear 4xx answers, nothing outside staging touched, other jobs unharmed."""
import json
import socket
import time

import pytest

from pulsar_lite.web.granian_server import HEADER_ROOM

from .rest_helpers import rest

pytestmark = pytest.mark.integration


def raw_request(port, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("web_server", ["paste", "granian"])
def test_bad_requests_do_not_disturb_a_running_job(daemon_factory, tmp_path, web_server):
    daemon = daemon_factory({"web_server": web_server, "private_token": "tok", "max_upload_size": 1024,
                             "max_request_line": 100000,
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    base = daemon.url
    code, _ = rest(base, "POST", "/jobs", job_id="good", private_token="tok")
    assert code == 200
    code, _ = rest(base, "POST", "/jobs/good/submit", command_line="sleep 1; echo fine > ../outputs/o",
                   private_token="tok")
    assert code == 200
    attempts = [
        ("POST", "/jobs", None, {"job_id": "..", "private_token": "tok"}, 400),
        ("DELETE", "/jobs/%2E%2E", None, {"private_token": "tok"}, (400, 404)),
        ("POST", "/jobs/good/files", b"x", {"name": "../../../outside/keep", "type": "input", "private_token": "tok"}, 400),
        ("POST", "/jobs/new/files", b"x", {"name": str(outside / "keep"), "type": "input", "private_token": "tok"}, 400),
        ("POST", "/jobs/new/files", b"x", {"name": "a", "type": "nonsense", "private_token": "tok"}, 400),
        ("POST", "/jobs/new/files", b"x" * 2048, {"name": "a", "type": "input", "private_token": "tok"}, 413),
        ("GET", "/jobs/good/files", None, {"name": "/etc/passwd", "private_token": "tok"}, 400),
        ("POST", "/jobs/good/submit", None, {"private_token": "tok"}, 400),
        ("POST", "/jobs/x/submit", None, {"command_line": "true", "env": "{not json", "private_token": "tok"}, 400),
        ("POST", "/managers/ghost/jobs", None, {"job_id": "1", "private_token": "tok"}, 404),
        ("POST", "/jobs", None, {"job_id": "1", "private_token": "bad"}, 401),
        ("POST", "/jobs", None, {"job_id": "1"}, 401),
    ]
    for method, path, body, params, expected in attempts:
        code, reply = rest(base, method, path, body=body, **params)
        assert code in (expected if isinstance(expected, tuple) else (expected,)), (method, path, params, code, reply)
        assert len(reply.strip().splitlines()) <= 1, reply
        assert b"Traceback" not in reply
    # an absurd request line is refused, not buffered forever
    line = b"GET /jobs/" + b"a" * 400000
    # paste reads exactly max_request_line + 1 bytes; granian buffers the line and headers up to
    # max_request_line + HEADER_ROOM
    read = 100001 if web_server == "paste" else 100000 + HEADER_ROOM + 1
    answer = raw_request(daemon.port, line[:read])
    expected = (b"414",) if web_server == "paste" else (b"414", b"431")  # hyper: URI or head too long
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in expected, answer[:200]
    for _ in range(200):
        status = json.loads(rest(base, "GET", "/jobs/good/status", private_token="tok")[1])
        if status["status"] == "complete":
            break
        time.sleep(0.05)
    assert status["status"] == "complete" and status["returncode"] == 0
    assert rest(base, "GET", "/jobs/good/files", name="o", private_token="tok")[1] == b"fine\n"
    assert (outside / "keep").read_text() == "keep"
    assert not (daemon.staging.parent / "keep").exists()
    assert "Traceback" not in daemon.log()
