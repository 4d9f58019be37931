"""Clients that stall or idle cannot take the REST face down.

An upload holds one of ``web_threads`` while its body arrives (with paste, so does every open
connection). A client that goes silent is dropped after ``web_io_timeout`` (paste), its partial upload
discarded; with granian an idle connection holds no thread at all, and a stalled upload is freed when
its connection goes away. Requests from other clients are answered meanwhile.
"""
import socket
import time

import pytest

from tests.integration.rest_helpers import rest

THREADS = 3
TIMEOUT = 2


def stalled_upload(port: int, job_id: str, name: str, sent: int = 1000, length: int = 1_000_000) -> socket.socket:
    """An upload whose client sends the headers and ``sent`` bytes of the body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall((f"POST /jobs/{job_id}/files?name={name}&type=input HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode() + b"x" * sent)
    return sock


def idle_connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def timed_status(daemon, job_id: str, timeout: float = 30) -> float:
    began = time.monotonic()
    code, _ = rest(daemon.url, "GET", f"/jobs/{job_id}/status", timeout=timeout)
    assert code == 200
    return time.monotonic() - began


def no_partial_files(daemon, job_id: str) -> None:
    inputs = daemon.staging / job_id / "inputs"
    assert not inputs.exists() or not list(inputs.iterdir())
    partial = daemon.staging / ".partial"
    assert not [p for p in partial.iterdir() if p.name.startswith(job_id + ".")]


@pytest.mark.parametrize("server", ["paste", "granian"])
def test_stalled_uploads_leave_a_thread_for_others(daemon_factory, server):
    daemon = daemon_factory({"web_server": server, "web_threads": THREADS, "web_io_timeout": 60}).start()
    for index in range(THREADS - 1):
        assert rest(daemon.url, "POST", "/jobs", job_id=f"s{index}")[0] == 200
    held = [stalled_upload(daemon.port, f"s{index}", "big") for index in range(THREADS - 1)]
    try:
        time.sleep(0.5)
        assert timed_status(daemon, "s0") < 2  # one thread left, and it serves
    finally:
        for sock in held:  # a client going away frees its thread and discards its partial upload
            sock.close()
    held = [stalled_upload(daemon.port, "s0", f"again{index}") for index in range(THREADS)]
    for sock in held:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        sock.close()
    assert timed_status(daemon, "s0") < 5
    deadline = time.time() + 10
    while True:
        try:
            for index in range(THREADS - 1):
                no_partial_files(daemon, f"s{index}")
            break
        except AssertionError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    assert daemon.process.poll() is None


def test_paste_drops_silent_clients_after_web_io_timeout(daemon_factory):
    daemon = daemon_factory({"web_server": "paste", "web_threads": THREADS, "web_io_timeout": TIMEOUT}).start()
    assert rest(daemon.url, "POST", "/jobs", job_id="stall")[0] == 200
    # every thread taken: two stalled uploads and idle connections that never send a request
    held = [stalled_upload(daemon.port, "stall", f"in{index}") for index in range(2)]
    held += [idle_connection(daemon.port) for _ in range(THREADS)]
    try:
        time.sleep(0.5)
        waited = timed_status(daemon, "stall")
        assert waited < TIMEOUT * 3, waited  # answered once the silent clients were dropped
        for sock in held[:2]:  # the stalled uploads got a one-line 408 before the connection closed
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
            assert b"request body stalled: the client sent nothing for web_io_timeout" in reply
    finally:
        for sock in held:
            sock.close()
    no_partial_files(daemon, "stall")
    log = daemon.log()
    assert "Traceback" not in log
    assert "POST /jobs/stall/files from 127.0.0.1: request body stalled" in log


def test_granian_idle_connections_hold_no_thread(daemon_factory):
    daemon = daemon_factory({"web_server": "granian", "web_threads": THREADS, "web_io_timeout": TIMEOUT}).start()
    assert rest(daemon.url, "POST", "/jobs", job_id="idle")[0] == 200
    held = [idle_connection(daemon.port) for _ in range(THREADS * 4)]
    try:
        time.sleep(0.5)
        assert timed_status(daemon, "idle") < 2
    finally:
        for sock in held:
            sock.close()
