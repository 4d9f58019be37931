"""The job_conf/ samples, proven: each loaded by Galaxy's own job configuration code (galaxy-app 26.1), and each
Pulsar destination turned into a client by pulsar-galaxy-lib (Galaxy 26.1's pin) that runs a job on a live
daemon, its submit_* parameters arriving as the job's submit_params."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.amqp import RABBIT_URL, delete_queues, prefixed_names, rabbit_available, unique, wait_for_queues
from tests.conftest import REPO, ensure_galaxy_venv, need

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DRIVER = Path(__file__).parent / "drivers" / "job_conf.py"
SAMPLES = sorted((REPO / "job_conf").glob("*.yml"))
TOKEN = "job-conf-token"


@pytest.fixture(scope="module")
def galaxy():
    try:
        return ensure_galaxy_venv()
    except (subprocess.CalledProcessError, OSError) as exc:
        need(False, f"cannot build the galaxy-app virtualenv: {exc}")


def run(galaxy: Path, request: dict) -> dict:
    done = subprocess.run([str(galaxy), str(DRIVER), json.dumps(request)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["destinations"]


def submit_params(daemon, job_id: str) -> dict:
    row = daemon.record(job_id)
    return json.loads(row["launch_config"])["submit_params"]


@pytest.mark.parametrize("sample", [s for s in SAMPLES if "amqp" not in s.name], ids=lambda p: p.name)
def test_rest_samples(galaxy, daemon_factory, sample):
    daemon = daemon_factory({"private_token": TOKEN, "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    report = run(galaxy, {"job_conf": str(sample), "url": daemon.url, "token": TOKEN, "clean": False})
    assert report, f"{sample.name} has no Pulsar destination"
    for destination, result in report.items():
        assert result["status"] == "complete" and result["returncode"] == 0, (destination, result)
        expected = {k[len("submit_"):]: v for k, v in result["params"].items()}
        assert submit_params(daemon, result["job_id"]) == expected  # the destination's requests reached the daemon
    if sample.name == "pulsar_rest_slurm.yml":
        assert submit_params(daemon, report["pulsar_slurm_big"]["job_id"])["queue"] == "bigmem"


@pytest.mark.parametrize("sample", [s for s in SAMPLES if "amqp" in s.name], ids=lambda p: p.name)
def test_amqp_samples(galaxy, daemon_factory, sample):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    prefix = unique("jc")
    daemon = daemon_factory({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix,
                             "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    try:
        wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
        report = run(galaxy, {"job_conf": str(sample), "amqp_url": RABBIT_URL, "key_prefix": prefix,
                              "jobs_directory": str(daemon.staging)})
        assert report
        for destination, result in report.items():
            deadline = time.time() + 60
            while (daemon.record(result["job_id"]) or {}).get("state") not in ("complete", "failed"):
                assert time.time() < deadline, (destination, daemon.record(result["job_id"]))
                time.sleep(0.1)
            assert daemon.record(result["job_id"])["state"] == "complete"
            assert (daemon.staging / result["job_id"] / "outputs" / "out").read_text() == "ran\n"
            expected = {k[len("submit_"):]: v for k, v in result["params"].items()}
            assert submit_params(daemon, result["job_id"]) == expected
    finally:
        delete_queues(prefixed_names(prefix))
