"""/metrics over a known workload, read with prometheus_client's own text parser; /readyz; metrics_port."""
from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .rest_helpers import rest, submit, wait_status

pytestmark = pytest.mark.integration


def scrape(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_match_a_known_workload(daemon_factory, tmp_path):
    daemon = daemon_factory({"metrics_token": "scrape-me",
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    source = tmp_path / "input.bin"
    source.write_bytes(b"x" * 123456)
    staging = json.dumps({"setup": [{"name": "input.bin", "type": "input",
                                     "action": {"action_type": "remote_copy", "path": str(source)}}]})
    for n in range(5):
        submit(daemon.url, f"ok{n}", "cat ../inputs/input.bin > /dev/null", remote_staging=staging)
    submit(daemon.url, "bad", "true",
           remote_staging=json.dumps({"setup": [{"name": "x", "type": "input",
                                                 "action": {"action_type": "remote_copy", "path": "/no/such"}}]}))
    for n in range(5):
        assert wait_status(daemon.url, f"ok{n}", {"complete"})["status"] == "complete"
    assert wait_status(daemon.url, "bad", {"complete", "failed"})["status"] == "failed"
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(daemon.url + "metrics")  # metrics_token set: not without it
    assert refused.value.code == 401
    samples = scrape(daemon.url + "metrics", "scrape-me")
    assert value(samples, "pulsar_lite_jobs", manager="_default_", state="complete") == 5
    assert value(samples, "pulsar_lite_jobs", manager="_default_", state="failed") == 1
    assert value(samples, "pulsar_lite_staging_bytes_total", direction="in") == 5 * 123456
    assert value(samples, "pulsar_lite_job_duration_seconds_count", manager="_default_", state="complete") == 5
    assert value(samples, "pulsar_lite_job_duration_seconds_count", manager="_default_", state="failed") == 1
    assert value(samples, "pulsar_lite_http_requests_total", route="submit", status="200") == 6
    assert value(samples, "pulsar_lite_outbox_depth") == 0
    assert rest(daemon.url, "GET", "/readyz")[0] == 200  # open, like /healthz


def test_metrics_port_for_a_daemon_without_web(daemon_factory):
    from tests.conftest import free_port
    port = free_port()
    daemon = daemon_factory({"web": False, "metrics_port": port,
                             "managers": {"_default_": {"num_concurrent_jobs": 1}}})
    daemon.start_mq_only()
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "pulsar_lite_jobs", manager="_default_", state="running") == 0
