"""Staging through the engine: bounded concurrency, failures that fail the job."""
import os
import time
import warnings

from pulsar_lite import wire

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from .faultserver import FaultServer


def wait_terminal(engine, job_ids, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = {j: engine.store.get("_default_", j).state for j in job_ids}
        if all(s in wire.TERMINAL_STATES for s in states.values()):
            return states
        time.sleep(0.05)
    raise AssertionError(f"not finished: {states}")


def test_backlog_stages_with_bounded_connections(engine_factory, tmp_path):
    origin_root = tmp_path / "origin"
    origin_root.mkdir()
    (origin_root / "in.bin").write_bytes(os.urandom(256 * 1024))
    engine = engine_factory(staging_concurrency=2, managers={"_default_": {"num_concurrent_jobs": 4}})
    with FaultServer(str(origin_root)) as origin:
        origin.rate = 2 * 1024 * 1024  # each download takes ~0.1 s
        jobs = [f"b{i}" for i in range(20)]
        for job_id in jobs:
            engine.setup("_default_", job_id)
            staging = {"setup": [{"name": "in.dat", "type": "input", "action": {
                "action_type": "remote_transfer", "url": origin.url + "/in.bin", "path": "/gx/in.dat"}}]}
            engine.submit("_default_", job_id, {"command_line": "cmp ../inputs/in.dat ../inputs/in.dat",
                                                "remote_staging": staging})
        states = wait_terminal(engine, jobs)
    assert set(states.values()) == {"complete"}
    assert origin.max_active <= 3  # staging_concurrency 2 (+1: a finished handler may not have counted down yet)
    stats = engine.store.get("_default_", "b0")
    assert stats.stage_in_bytes == 256 * 1024 and stats.stage_in_seconds > 0


def test_permanent_input_error_fails_fast_with_reason(engine_factory, tmp_path):
    engine = engine_factory()
    with FaultServer(str(tmp_path)) as origin:
        origin.faults = [("status", 404)]
        engine.setup("_default_", "nf")
        staging = {"setup": [{"name": "in.dat", "type": "input", "action": {
            "action_type": "remote_transfer", "url": origin.url + "/in.bin?job_key=sekrit", "path": "/gx/in.dat"}}]}
        started = time.time()
        engine.submit("_default_", "nf", {"command_line": "true", "remote_staging": staging})
        assert wait_terminal(engine, ["nf"])["nf"] == "failed"
        assert time.time() - started < 5
    status = engine.status("_default_", "nf")
    assert "HTTP 404" in status["stderr"] and "sekrit" not in status["stderr"]


def test_stage_out_io_error_fails_the_job(engine_factory, tmp_path):
    engine = engine_factory()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    engine.setup("_default_", "io")
    staging = {"action_mapper": {"default_action": "remote_copy", "paths": []},
               "client_outputs": {"working_directory": str(tmp_path / "w"), "metadata_directory": None,
                                  "output_files": [str(blocker / "out.dat")], "work_dir_outputs": []}}
    engine.submit("_default_", "io", {"command_line": "echo hi > ../outputs/out.dat", "remote_staging": staging})
    assert wait_terminal(engine, ["io"])["io"] == "failed"
    assert "staging outputs failed" in engine.status("_default_", "io")["stderr"]
