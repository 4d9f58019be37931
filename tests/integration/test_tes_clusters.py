"""TES tasks on the cluster managers, with py-tes as the client: executors in real podman containers, run by
real Slurm and Grid Engine jobs on this host. A task completes; a task cancelled while running ends CANCELED
with no container left behind (the scheduler's own cancel signal reaches the job script: Slurm's SIGTERM,
Grid Engine's SIGUSR2 with ``-notify``)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import need, wait_until

from .clusters import DRMAA_ENV, sge_ready
from .schedulers import slurm_ready
from .test_tes import IMAGE, TOKEN, containers_of, executor, podman_ready, start_running, task, tes_app, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")


@pytest.fixture
def on_cluster(daemon_factory):
    def make(scheduler: str):
        need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")
        if scheduler == "slurm":
            need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
            manager = {"type": "queued_cli", "job_plugin": "Slurm"}
        else:
            need(sge_ready(), "Grid Engine is not running here (bash scripts/ci/sge-up.sh)")
            # -notify: Grid Engine sends SIGUSR2 before its SIGKILL, so the job script can remove its container
            manager = {"type": "queued_drmaa", "native_specification": "-notify",
                       "env_PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
        daemon = daemon_factory(tes_app(managers={"_default_": {**manager, "min_polling_interval": 0.5}}))
        if scheduler == "sge":
            daemon.env.update(DRMAA_ENV)
        server = daemon.start()
        return tes.HTTPClient(server.url, token=TOKEN, timeout=30)

    return make


@pytest.mark.parametrize("scheduler", ["slurm", "sge"])
def test_a_task_completes_and_a_cancelled_one_leaves_no_container(on_cluster, scheduler):
    client = on_cluster(scheduler)
    done = wait(client, client.create_task(task(executor("sh", "-c", "echo on the cluster"))), timeout=90)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[0].stdout.strip() == "on the cluster" and done.logs[0].logs[0].exit_code == 0

    task_id = start_running(client, timeout=90)
    client.cancel_task(task_id)
    assert wait(client, task_id, timeout=60).state == "CANCELED"
    # a scheduler may call the job ended (Slurm: CANCELLED, its processes still given KillWait) while the job
    # script is still removing the container: give it a few seconds, not the 300 s of the executor's sleep
    wait_until(lambda: not containers_of(task_id), timeout=30, interval=0.2,
               what=f"{scheduler}: the cancelled task's container's removal")
