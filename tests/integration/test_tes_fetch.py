"""What a TES task's own URLs may reach, against a running daemon with py-tes as the client: the address rule
of the daemon's transfers (real HTTP servers on this host's loopback addresses), and FTP inputs and outputs
through a real vsftpd (scripts/ci/ftp-up.sh) with executors in real podman containers."""
from __future__ import annotations

import json

import pytest

from tests.staging.test_remote import internal, storage  # noqa: F401 (fixtures: 127.0.0.1 refused, 127.0.0.2 allowed)

from tests.conftest import need

from .test_tes import IMAGE, TOKEN, executor, podman_ready, raw, task, tes_app, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")


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


def test_ftp_inputs_and_outputs_of_a_real_task(daemon_factory, ftp_area):
    """cwl-tes's --remote-storage-url shape: inputs and outputs on an FTP server, credentials in the URLs."""
    need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")
    ftp_area.put("in/reads.txt", b"ACGT\nTTGA\n")
    ftp_area.put("in/ref/chr1.fa", b">chr1\nACGTACGT\n")
    ftp_area.put("in/ref/index/chr1.idx", b"chr1\t8\n")
    # the FTP server is on 127.0.0.1: allowed here, explicitly, as a site allows its own storage
    client, server = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.1/32"])
    task_id = client.create_task(task(
        executor("sh", "-c", "cat /in/reads.txt /in/ref/chr1.fa > /out/merged.txt; mkdir -p /out/report/sub; "
                             "wc -l < /in/ref/index/chr1.idx > /out/report/sub/count.txt; "
                             "ls /in/ref > /out/report/listing.txt"),
        inputs=[tes.Input(url=f"{ftp_area.url}/in/reads.txt", path="/in/reads.txt"),
                tes.Input(url=f"{ftp_area.url}/in/ref", path="/in/ref", type="DIRECTORY")],
        outputs=[tes.Output(url=f"{ftp_area.url}/results/merged.txt", path="/out/merged.txt"),
                 tes.Output(url=f"{ftp_area.url}/results/report", path="/out/report", type="DIRECTORY")]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    results = ftp_area.path / "results"
    assert (results / "merged.txt").read_bytes() == b"ACGT\nTTGA\n>chr1\nACGTACGT\n"
    assert (results / "report" / "sub" / "count.txt").read_text().strip() == "1"
    assert (results / "report" / "listing.txt").read_text().split() == ["chr1.fa", "index"]
    masked = f"ftp://{ftp_area.user}:***@127.0.0.1:{ftp_area.port}/{ftp_area.name}"
    assert {o.url for o in done.logs[0].outputs} == {f"{masked}/results/merged.txt",
                                                     f"{masked}/results/report/sub/count.txt",
                                                     f"{masked}/results/report/listing.txt"}
    status, full = raw(server, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL")
    assert status == 200 and ftp_area.password not in json.dumps(full)
    assert full["inputs"][0]["url"] == f"{masked}/in/reads.txt"
    assert ftp_area.password not in server.log()


def test_an_ftp_failure_is_a_system_error_without_the_password(daemon_factory, ftp_area):
    client, server = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.1/32"])
    task_id = client.create_task(task(executor("true"), inputs=[tes.Input(url=f"{ftp_area.url}/missing.txt",
                                                                          path="/in/x")]))
    done = wait(client, task_id)
    assert done.state == "SYSTEM_ERROR"
    assert any("missing.txt failed" in line and "does not exist" in line for line in done.logs[0].system_logs)
    assert ftp_area.password not in json.dumps(raw(server, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL")[1])
    assert ftp_area.password not in server.log()


def test_ftp_with_explicit_tls_required_by_the_operator(daemon_factory, ftp_area):
    need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")
    ftp_area.put("in/data.txt", b"sealed\n")
    client, server = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.1/32"], tes_ftp_tls="required",
                               tes_fetch_ca_bundle=ftp_area.ca)
    task_id = client.create_task(task(executor("cp", "/in/data.txt", "/out/copy.txt"),
                                      inputs=[tes.Input(url=f"{ftp_area.url}/in/data.txt", path="/in/data.txt")],
                                      outputs=[tes.Output(url=f"{ftp_area.url}/out/copy.txt", path="/out/copy.txt")]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert (ftp_area.path / "out" / "copy.txt").read_bytes() == b"sealed\n"
    # the same server without its CA: TLS is spoken, and its certificate refused
    server.stop()
    client, _ = client_of(daemon_factory, tes_fetch_allowed_networks=["127.0.0.1/32"], tes_ftp_tls="required")
    done = wait(client, client.create_task(task(executor("true"), inputs=[
        tes.Input(url=f"{ftp_area.url}/in/data.txt", path="/in/data.txt")])))
    assert done.state == "SYSTEM_ERROR" and any("certificate" in line for line in done.logs[0].system_logs)
