"""TES tasks on the cluster managers, with py-tes as the client: executors in real podman containers, run by
real Slurm, Grid Engine and HTCondor jobs on this host. A task completes; a task cancelled while running ends
CANCELED with no container left behind (the scheduler's own cancel signal reaches the job script: Slurm's
SIGTERM, Grid Engine's SIGUSR2 with ``-notify``, HTCondor's SIGTERM to the job's top process only).

The HTCondor pool runs in a chroot with no container engine: its jobs use this host's podman through
podman-remote and a socket (scripts/ci/condor-podman-up.sh), so the containers are this host's."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need, wait_until

from .clusters import CONDOR_CONFIG, CONDOR_ROOT, DRMAA_ENV, condor_ready, sge_ready, share_with_condor, \
    unshare_with_condor
from .schedulers import slurm_ready
from .test_tes import IMAGE, TOKEN, containers_of, executor, podman_ready, start_running, task, tes_app, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes_client = pytest.importorskip("tes")


CONDOR_PODMAN_SOCKET = "/run/podman-ci/podman.sock"  # inside the pool's chroot (scripts/ci/condor-podman-up.sh)


def condor_podman_ready() -> bool:
    return (CONDOR_ROOT / "usr/bin/podman-remote").exists() and \
        (CONDOR_ROOT / CONDOR_PODMAN_SOCKET.lstrip("/")).is_socket()


@pytest.fixture
def on_cluster(daemon_factory):
    mounts = []

    def make(scheduler: str):
        need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")
        tes = {}
        if scheduler == "condor":
            need(condor_ready(), "the HTCondor pool is not running here (bash scripts/ci/condor-up.sh)")
            need(condor_podman_ready(), "the HTCondor pool's jobs cannot reach podman "
                                        "(bash scripts/ci/condor-podman-up.sh)")
            manager = {"type": "queued_condor", "env_CONTAINER_HOST": f"unix://{CONDOR_PODMAN_SOCKET}", "env_HOME": "/tmp"}
            # the rig's job user (2001 in the chroot) is the host's root through an idmapped mount, and its
            # containers are the host's rootful podman's: the job directories they mount are root's there, so
            # the operator names that owner (auto would give the job's own uid, 2001, which owns nothing there)
            tes = {"tes_container_command": "podman-remote", "tes_container_user": "0:0"}
        elif scheduler == "slurm":
            need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")
            manager = {"type": "queued_cli", "job_plugin": "Slurm"}
        else:
            need(sge_ready(), "Grid Engine is not running here (bash scripts/ci/sge-up.sh)")
            # -notify: Grid Engine sends SIGUSR2 before its SIGKILL, so the job script can remove its container
            manager = {"type": "queued_drmaa", "native_specification": "-notify",
                       "env_PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
        daemon = daemon_factory(tes_app(managers={"_default_": {**manager, "min_polling_interval": 0.5}}, **tes))
        if scheduler == "sge":
            daemon.env.update(DRMAA_ENV)
        if scheduler == "condor":
            daemon.env["CONDOR_CONFIG"] = CONDOR_CONFIG
            mounts.append(share_with_condor(daemon.root))
        server = daemon.start()
        return tes_client.HTTPClient(server.url, token=TOKEN, timeout=30), daemon

    yield make
    for target in mounts:
        unshare_with_condor(target)


@pytest.mark.parametrize("scheduler", ["slurm", "sge", "condor"])
def test_a_task_completes_and_a_cancelled_one_leaves_no_container(on_cluster, scheduler):
    client, _ = on_cluster(scheduler)
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


def test_grid_engines_suspend_notice_does_not_end_a_task(on_cluster):
    """With -notify, Grid Engine sends SIGUSR1 at once when a job is suspended (SIGSTOP only the queue's notify
    time later); the job script must not die of it."""
    client, daemon = on_cluster("sge")
    task_id = start_running(client, timeout=90, command=("sh", "-c", "sleep 3; echo resumed"))
    job = daemon.record(task_id)["external_id"]
    suspend = subprocess.run(["qmod", "-sj", job], capture_output=True, text=True)
    assert suspend.returncode == 0, suspend.stderr
    time.sleep(1)
    resume = subprocess.run(["qmod", "-usj", job], capture_output=True, text=True)
    assert resume.returncode == 0, resume.stderr
    done = wait(client, task_id, timeout=90)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[0].stdout.strip() == "resumed"


@pytest.mark.parametrize("scheduler", ["slurm", "sge", "condor"])
def test_a_planted_symlink_is_not_followed_by_the_job_script_on_the_node(on_cluster, scheduler):
    """The job script opens the executors' stdout and stdin on the node, with the node's bash and coreutils
    (HTCondor's: in the pool's chroot): a symlink an executor left to the daemon's app.yml is replaced by
    the next executor's stdout, not followed, and refused as stdin (issue 27)."""
    client, daemon = on_cluster(scheduler)
    app = daemon.root / "app.yml"
    before = app.read_bytes()
    done = wait(client, client.create_task(task(
        executor("sh", "-c", f"ln -s {app} /v/log && ln -s {app} /v/in"),
        executor("echo", "overwritten", stdout="/v/log"),
        executor("sh", "-c", "test -L /v/log || cat /v/log"),
        executor("cat", stdin="/v/in"),
        volumes=["/v"])), timeout=90)
    assert app.read_bytes() == before, f"{scheduler}: the host file was overwritten"
    logs = done.logs[0].logs
    assert done.state == "EXECUTOR_ERROR" and [log.exit_code for log in logs] == [0, 0, 0, 1], \
        (done.state, done.logs[0].system_logs)
    assert logs[2].stdout == "overwritten\n" and TOKEN not in (logs[3].stdout or "")
    assert any("stdin /v/in" in line for line in done.logs[0].system_logs), done.logs[0].system_logs
