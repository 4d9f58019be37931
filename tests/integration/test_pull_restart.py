"""kill -9 the daemon in the middle of pulling an input: after restart the download resumes, not restarts."""
import json
import os
import time
import warnings

import pytest

from .rest_helpers import rest, wait_status

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ..staging.faultserver import FaultServer

pytestmark = pytest.mark.integration
SIZE = 64 * 1024 * 1024


def test_kill9_mid_pull_resumes(daemon_factory, tmp_path):
    root = tmp_path / "origin"
    root.mkdir()
    payload = os.urandom(1024 * 1024) * (SIZE // (1024 * 1024))
    (root / "big.bin").write_bytes(payload)
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 1}}}).start()
    with FaultServer(str(root)) as origin:
        origin.rate = 16 * 1024 * 1024
        url = origin.url + "/big.bin?job_key=k"
        staging = {"setup": [{"name": "big.dat", "type": "input",
                              "action": {"action_type": "remote_transfer", "url": url, "path": "/gx/big.dat",
                                         "source": {"path": "/gx/big.dat"}}}]}
        assert rest(daemon.url, "POST", "/jobs", job_id="pull")[0] == 200
        code, body = rest(daemon.url, "POST", "/jobs/pull/submit", remote_staging=json.dumps(staging),
                          command_line="sha256sum ../inputs/big.dat > ../outputs/sum")
        assert code == 200, body
        part = daemon.staging / "pull" / "inputs" / "big.dat.part"
        deadline = time.time() + 20
        while time.time() < deadline and (not part.exists() or part.stat().st_size < 16 * 1024 * 1024):
            time.sleep(0.05)
        assert wait_status(daemon.url, "pull", {"preprocessing"})
        daemon.kill9()
        done_before = part.stat().st_size
        assert 0 < done_before < SIZE
        origin.rate = 0
        daemon.start()
        final = wait_status(daemon.url, "pull", {"complete", "failed"}, timeout=60)
        assert final["status"] == "complete", final
    assert (daemon.staging / "pull" / "inputs" / "big.dat").read_bytes() == payload
    resumed = [r for r in origin.requests if r["range"]]
    assert resumed and int(resumed[0]["range"].split("=")[1].rstrip("-")) >= done_before


def test_kill9_mid_push_resumes_with_tus(daemon_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("PULSAR_TUS_CHUNK_SIZE", str(4 * 1024 * 1024))
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 1}}}).start()
    with FaultServer(str(tmp_path)) as origin:
        origin.rate = 16 * 1024 * 1024
        staging = {
            "action_mapper": {"default_action": "remote_transfer_tus",
                              "files_endpoint": origin.url + "/api/jobs/1/files?job_key=k", "paths": []},
            "client_outputs": {"working_directory": "/gx/w", "metadata_directory": None,
                               "output_files": ["/gx/out.dat"], "work_dir_outputs": []},
        }
        assert rest(daemon.url, "POST", "/jobs", job_id="push")[0] == 200
        command = f"head -c {SIZE} /dev/urandom > ../outputs/out.dat"
        code, body = rest(daemon.url, "POST", "/jobs/push/submit", remote_staging=json.dumps(staging),
                          command_line=command)
        assert code == 200, body
        deadline = time.time() + 30
        while time.time() < deadline and origin.patched_bytes < 16 * 1024 * 1024:
            time.sleep(0.05)
        assert wait_status(daemon.url, "push", {"postprocessing"})
        daemon.kill9()
        sent_before = origin.patched_bytes
        assert 0 < sent_before < SIZE
        origin.rate = 0
        daemon.start()
        final = wait_status(daemon.url, "push", {"complete", "failed"}, timeout=60)
        assert final["status"] == "complete", final
        expected = (daemon.staging / "push" / "outputs" / "out.dat").read_bytes()
        assert origin.uploads["/gx/out.dat"] == expected
        assert origin.patched_bytes < SIZE + 4 * 1024 * 1024  # resumed, not sent again from zero
        assert [r["method"] for r in origin.requests].count("HEAD") >= 1
