"""kill -9 the daemon at each phase of a job's life; every job reaches its true end."""
import os
import signal
import socket
import time

import pytest

from tests.conftest import alive

from .rest_helpers import rest, status, submit, wait_status

pytestmark = pytest.mark.integration

ONE_AT_A_TIME = {"managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 1}}}


@pytest.mark.parametrize("web_server", ["paste", "granian"])
def test_kill9_with_jobs_queued_and_running(daemon_factory, web_server):
    daemon = daemon_factory({**ONE_AT_A_TIME, "web_server": web_server}).start()
    submit(daemon.url, "run", "sleep 4; echo ran > ../outputs/out")  # still running after the restart
    for index in range(4):
        submit(daemon.url, f"q{index}", f"echo {index} > ../outputs/out")
    wait_status(daemon.url, "run", {"running"})
    assert status(daemon.url, "q3")["status"] == "queued"
    daemon.kill9()
    daemon.start()
    final = wait_status(daemon.url, "run", {"complete", "failed"})
    assert final["status"] == "complete" and final["returncode"] == 0  # adopted: it survived the restart
    assert rest(daemon.url, "GET", "/jobs/run/files", name="out")[1] == b"ran\n"
    for index in range(4):
        final = wait_status(daemon.url, f"q{index}", {"complete", "failed"})
        assert final["status"] == "complete"
        assert rest(daemon.url, "GET", f"/jobs/q{index}/files", name="out")[1] == f"{index}\n".encode()
    assert "adopting process" in daemon.log()


def test_granian_worker_killed_is_respawned_and_jobs_go_on(daemon_factory):
    """web_server granian: the worker process holds the engine; when it dies (OOM killer, crash), the
    supervisor starts a new one, which reloads and reconciles the jobs like any restart."""
    daemon = daemon_factory({**ONE_AT_A_TIME, "web_server": "granian"}).start()
    submit(daemon.url, "run", "sleep 4; echo ran > ../outputs/out")
    submit(daemon.url, "next", "echo next > ../outputs/out")
    wait_status(daemon.url, "run", {"running"})
    [worker] = daemon.worker_pids()
    os.kill(worker, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and daemon.worker_pids() in ([], [worker]):
        time.sleep(0.1)
    assert daemon.worker_pids() not in ([], [worker]), "granian did not start a new worker"
    final = wait_status(daemon.url, "run", {"complete", "failed"})
    assert final["status"] == "complete" and final["returncode"] == 0
    assert rest(daemon.url, "GET", "/jobs/run/files", name="out")[1] == b"ran\n"
    assert wait_status(daemon.url, "next", {"complete", "failed"})["status"] == "complete"
    assert "adopting process" in daemon.log()
    daemon.stop()
    assert "job engine stopped" in daemon.log()  # SIGTERM reaches the worker's engine


def test_job_that_died_with_the_daemon_is_failed_not_running(daemon_factory):
    daemon = daemon_factory(ONE_AT_A_TIME).start()
    submit(daemon.url, "doomed", "sleep 30")
    wait_status(daemon.url, "doomed", {"running"})
    pid = job_pid(daemon, "doomed")
    daemon.kill9()
    os.killpg(pid, signal.SIGKILL)  # the job dies while nobody watches
    time.sleep(0.2)
    daemon.start()
    final = wait_status(daemon.url, "doomed", {"complete", "failed", "lost"})
    assert final["status"] == "failed"
    assert "recorded no exit code" in final["stderr"]


def test_job_that_finished_while_daemon_was_down(daemon_factory):
    daemon = daemon_factory(ONE_AT_A_TIME).start()
    submit(daemon.url, "quick", 'sleep 1; sh -c "exit 5"')
    wait_status(daemon.url, "quick", {"running"})
    daemon.kill9()
    time.sleep(1.5)
    daemon.start()
    final = wait_status(daemon.url, "quick", {"complete", "failed"})
    assert final["status"] == "complete" and final["returncode"] == 5


def test_kill9_during_upload_leaves_no_partial_file(daemon_factory):
    daemon = daemon_factory(ONE_AT_A_TIME).start()
    assert rest(daemon.url, "POST", "/jobs", job_id="up")[0] == 200
    sock = socket.create_connection(("127.0.0.1", daemon.port))
    size = 50 * 1024 * 1024
    sock.sendall((f"POST /jobs/up/files?name=big.dat&type=input HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {size}\r\n\r\n").encode())
    sock.sendall(b"x" * (size // 2))
    partial = daemon.staging / ".partial"
    deadline = time.time() + 10
    while time.time() < deadline and not any(partial.iterdir()):
        time.sleep(0.05)
    daemon.kill9()
    sock.close()
    assert not (daemon.staging / "up" / "inputs" / "big.dat").exists()
    daemon.start()
    assert not partial.exists() or not any(partial.iterdir())
    # the job is still usable: stage the file again, run it
    code, _ = rest(daemon.url, "POST", "/jobs/up/files", body=b"complete", name="big.dat", type="input")
    assert code == 200
    code, _ = rest(daemon.url, "POST", "/jobs/up/submit", command_line="cat ../inputs/big.dat > ../outputs/o")
    assert code == 200
    wait_status(daemon.url, "up", {"complete"})
    assert rest(daemon.url, "GET", "/jobs/up/files", name="o")[1] == b"complete"


def test_cancel_after_restart_kills_adopted_job(daemon_factory):
    daemon = daemon_factory(ONE_AT_A_TIME).start()
    submit(daemon.url, "long", "sleep 60")
    wait_status(daemon.url, "long", {"running"})
    pid = job_pid(daemon, "long")
    daemon.kill9()
    daemon.start()
    assert status(daemon.url, "long")["status"] == "running"
    rest(daemon.url, "PUT", "/jobs/long/cancel")
    wait_status(daemon.url, "long", {"cancelled"}, timeout=15)
    time.sleep(0.2)
    assert not alive(pid)


def job_pid(daemon, job_id, timeout=10):
    """The job script's pid (its first line writes it, just after the job is reported running)."""
    path = daemon.staging / job_id / "pid"
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.strip().isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} wrote no pid file")
