"""What a TES task's own URLs may reach, against a running daemon with py-tes as the client: the address rule
of the daemon's transfers (real HTTP servers on this host's loopback addresses)."""
from __future__ import annotations

import json

import pytest

from tests.staging.test_remote import Origin

from .test_tes import TOKEN, executor, raw, task, tes_app, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")


@pytest.fixture
def internal():
    """A service on 127.0.0.1 that tasks must not reach (a stand-in for a metadata service, a database)."""
    origin = Origin("127.0.0.1")
    yield origin
    origin.close()


@pytest.fixture
def storage():
    """The site's storage, on another address of this host (127.0.0.2), the one the operator allows."""
    origin = Origin("127.0.0.2")
    yield origin
    origin.close()


def client_of(daemon_factory, **app):
    server = daemon_factory(tes_app(**app)).start()
    return tes.HTTPClient(server.url, token=TOKEN, timeout=30), server


def test_the_loopback_is_refused_by_default_and_allowed_when_the_operator_says_so(daemon_factory, internal):
    client, server = client_of(daemon_factory, tes_fetch_allowed_networks=[])  # the default
    # its address in the URL: refused at create, 400 with one line
    status, body = raw(server, "POST", "/ga4gh/tes/v1/tasks", json.dumps(
        {"executors": [{"image": "localhost/pl-test:latest", "command": ["true"]}],
         "inputs": [{"url": f"{internal.url}/data", "path": "/in/x"}]}).encode())
    assert status == 400 and body["message"] == (f"inputs[0].url {internal.url}/data: 127.0.0.1 is loopback "
                                                 f"(127.0.0.0/8), refused unless tes_fetch_allowed_networks lists it")
    status, body = raw(server, "POST", "/ga4gh/tes/v1/tasks", json.dumps(
        {"executors": [{"image": "localhost/pl-test:latest", "command": ["true"]}],
         "inputs": [{"url": "http://169.254.169.254/latest/meta-data/", "path": "/in/x"}]}).encode())
    assert status == 400 and "169.254.169.254 is a cloud metadata service" in body["message"]
    # a name for it: refused where libcurl connects, the task a SYSTEM_ERROR saying why
    url = f"http://localhost:{internal.port}/data"
    task_id = client.create_task(task(executor("true"), inputs=[tes.Input(url=url, path="/in/x")]))
    done = wait(client, task_id)
    assert done.state == "SYSTEM_ERROR"
    system_logs = done.logs[0].system_logs
    assert any(f"GET {url} failed: refused: " in line and "127.0.0.1 is loopback (127.0.0.0/8), refused unless "
               "tes_fetch_allowed_networks lists it" in line for line in system_logs), system_logs
    assert internal.requests == []
    server.stop()
    client, _ = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.0/8", "::1"])
    for url in (f"{internal.url}/data", f"http://localhost:{internal.port}/data"):
        wait(client, client.create_task(task(executor("true"), inputs=[tes.Input(url=url, path="/in/x")])))
    assert internal.requests == ["/data", "/data"]  # fetched (the executor itself needs podman: not run here)


def test_a_redirect_from_the_allowed_storage_to_a_refused_address_fails_the_task(daemon_factory, storage, internal):
    client, _ = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.2/32"])
    task_id = client.create_task(task(executor("true"), inputs=[
        tes.Input(url=f"{storage.url}/to?{internal.url}/data", path="/in/x")]))
    done = wait(client, task_id)
    assert done.state == "SYSTEM_ERROR"
    assert any("refused: 127.0.0.1 is loopback" in line for line in done.logs[0].system_logs), done.logs[0].system_logs
    assert storage.requests and internal.requests == []

