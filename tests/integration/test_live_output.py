"""Live tool output (send_stdout_update) with the real clients (pulsar-galaxy-lib 0.15.16 and 0.16.0, submitting as
Galaxy's Pulsar runner does): a job's new stdout/stderr reach a job-files endpoint that appends them, as Galaxy
24.2+ does, while the job runs, on queued_python and on the real Slurm; the final status then leaves the streams
out (Galaxy reads its own copies), or carries them when Galaxy could not be given every byte.

The endpoint is simple-job-files behind a front that appends ``outputs/tool_stdout|tool_stderr`` (Galaxy's
documented behaviour for live output), not a real Galaxy."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import need

from .jobfiles import appending_job_files_server
from .schedulers import slurm_ready

pytestmark = pytest.mark.integration

DRIVER = Path(__file__).parent / "drivers" / "live_job.py"
#: five lines 0.6 s apart on stdout, one on stderr (the tool's streams, as Galaxy's command lines write them)
COMMAND = ("(for i in 1 2 3 4 5; do echo line $i; sleep 0.6; done; echo oops >&2) "
           "> ../metadata/tool_stdout 2> ../metadata/tool_stderr")
EXPECTED = "".join(f"line {i}\n" for i in range(1, 6))


def run_job(python: Path, url: str, endpoint: str, directory: Path, job_id: str) -> tuple[dict, float]:
    request = {"url": url, "job_id": job_id, "files_endpoint": endpoint, "directory": str(directory),
               "command_line": COMMAND, "timeout": 120}
    done = subprocess.run([str(python), str(DRIVER), json.dumps(request)], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), time.time()


@pytest.mark.parametrize("manager", ["queued_python", "slurm"])
def test_live_output_reaches_galaxy_while_the_job_runs(manager, client_python, daemon_factory, tmp_path):
    app: dict = {"send_stdout_update": True, "stdout_update_interval": 0.3}
    if manager == "slurm":
        need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
        app["managers"] = {"_default_": {"type": "queued_cli", "job_plugin": "Slurm", "min_polling_interval": 0.5}}
    daemon = daemon_factory(app).start()
    galaxy = tmp_path / "galaxy"
    job_dir = galaxy / "000" / "42"
    job_dir.mkdir(parents=True)
    with appending_job_files_server(str(galaxy)) as (base, front):
        status, ended = run_job(client_python, daemon.url, f"{base}/api/jobs/42/files?job_key=secret-key", job_dir,
                                f"live-{manager}")
    assert status["status"] == "complete", (status, daemon.log()[-3000:])
    stdout = job_dir / "outputs" / "tool_stdout"
    assert stdout.read_text() == EXPECTED and (job_dir / "outputs" / "tool_stderr").read_text() == "oops\n"
    # while it ran: several posts of stdout, the first well before the job ended (it writes for 3 s)
    posts = [(data, when) for path, data, when in front.appends if path == str(stdout)]
    assert len(posts) >= 3, posts
    assert ended - posts[0][1] > 1.5, (ended, posts)
    # Galaxy has every byte: the final status leaves the streams to it (Galaxy reads outputs/tool_stdout)
    assert status["stdout"] is None and status["stderr"] is None, status
    assert "secret-key" not in daemon.log()


def test_the_streams_stay_in_the_final_status_when_galaxy_could_not_take_them(client_python_016, daemon_factory,
                                                                              tmp_path):
    """An endpoint that answers every live post with a 500: the job completes and its final status carries both
    streams."""
    daemon = daemon_factory({"send_stdout_update": True, "stdout_update_interval": 0.3}).start()
    galaxy = tmp_path / "galaxy"
    job_dir = galaxy / "000" / "43"
    job_dir.mkdir(parents=True)
    with appending_job_files_server(str(galaxy)) as (base, front):
        front.refuse = True
        status, _ = run_job(client_python_016, daemon.url, f"{base}/api/jobs/43/files?job_key=k", job_dir, "live-no")
    assert status["status"] == "complete", (status, daemon.log()[-3000:])
    assert status["stdout"] == EXPECTED and status["stderr"] == "oops\n", status
    assert "live output not delivered" in daemon.log()
