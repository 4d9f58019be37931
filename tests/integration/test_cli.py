"""The operator's command line, each command run as a subprocess: config -> serve -> check round trips over
REST and AMQP, jobs list/show/cancel/clean, doctor's findings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.amqp import RABBIT_URL, delete_queues, rabbit_available, unique, wait_for_queues
from tests.conftest import free_port, need

from .rest_helpers import rest

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "pulsar_lite"]


def cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


class Served:
    def __init__(self, app_yml: Path, web: bool = True):
        self.app_yml = app_yml
        self.config = yaml.safe_load(app_yml.read_text())
        log = open(app_yml.parent / "serve.log", "ab")
        self.process = subprocess.Popen([*CLI, "serve", "--config", str(app_yml)], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError((app_yml.parent / "serve.log").read_text()[-3000:])
            try:
                if web and rest(self.url, "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            if not web and "running without web face" in (app_yml.parent / "serve.log").read_text():
                return
            time.sleep(0.1)
        raise AssertionError("the daemon did not come up")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.config.get('port', 8913)}/"

    def stop(self):
        self.process.terminate()
        assert self.process.wait(30) == 0


def test_every_command_has_help():
    for command in ("serve", "config", "check", "jobs", "doctor", "check-config", "tes-user"):
        done = cli(command, "--help")
        assert done.returncode == 0 and "usage: pulsar-lite" in done.stdout, command
    assert cli("no-such-command").returncode == 2


def test_config_serve_check_round_trip_over_rest(tmp_path):
    port = free_port()
    output = tmp_path / "etc" / "app.yml"
    done = cli("config", "--rest", "--staging", tmp_path / "staging", "--output", output, "--port", port,
               "--host", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(output.read_text())
    assert len(config["private_token"]) >= 32
    assert output.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "staging").stat().st_mode & 0o777 == 0o700
    assert config["private_token"] in done.stdout and "PulsarRESTJobRunner" in done.stdout  # the Galaxy side
    again = cli("config", "--rest", "--staging", tmp_path / "staging", "--output", output)
    assert again.returncode == 2 and "--force" in again.stderr
    served = Served(output)
    try:
        checked = cli("check", "--config", output)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for step in ("setup", "upload", "submit", "status", "download", "clean"):
            assert f"PASS  {step}" in checked.stdout
        wrong = cli("check", "--url", served.url, "--token", "wrong")
        assert wrong.returncode == 1 and "FAIL  setup" in wrong.stdout and "401" in wrong.stdout
        assert cli("doctor", "--config", output).returncode == 0
    finally:
        served.stop()


def test_config_serve_check_round_trip_over_amqp(tmp_path):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    output = tmp_path / "app.yml"
    done = cli("config", "--mq", RABBIT_URL, "--staging", tmp_path / "staging", "--output", output)
    assert done.returncode == 0, done.stderr
    assert "PulsarMQJobRunner" in done.stdout and "jobs_directory" in done.stdout
    config = yaml.safe_load(output.read_text())
    assert config["web"] is False and config["message_queue_url"] == RABBIT_URL
    prefix = unique("clicheck")
    config["amqp_key_prefix"] = prefix  # this test's own queues on the shared broker
    output.write_text(yaml.safe_dump(config))
    served = Served(output, web=False)
    try:
        wait_for_queues([f"{prefix}_setup", f"{prefix}_status_update"])
        checked = cli("check", "--config", output)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for step in ("setup", "status", "download", "publish"):
            assert f"PASS  {step}" in checked.stdout
    finally:
        served.stop()
        delete_queues([f"{prefix}_{n}" for n in ("setup", "status", "kill", "status_update", "status_update_ack")])


def test_tes_users_from_the_command_line_in_a_real_daemon(tmp_path):
    """config --tes, tes-user add, serve: py-tes with Basic auth sees its own task only; the Pulsar token no
    longer opens TES; a user added while the daemon runs gets in without a restart."""
    tes = pytest.importorskip("tes")
    requests = pytest.importorskip("requests")
    port = free_port()
    output = tmp_path / "app.yml"
    assert cli("config", "--rest", "--tes", "--tes-image", "busybox", "--staging", tmp_path / "staging", "--output",
               output, "--port", port, "--host", "127.0.0.1").returncode == 0
    config = yaml.safe_load(output.read_text())
    config.update(tes_users_file=str(tmp_path / "tes_users"), tes_container_command="/bin/false")
    output.write_text(yaml.safe_dump(config))
    for name in ("alice", "bob"):
        added = cli("tes-user", "add", name, "--config", output, "--iterations", "1000", input=f"{name} passphrase\n")
        assert added.returncode == 0, added.stderr
    served = Served(output)
    try:
        def client(**credentials):
            return tes.HTTPClient(served.url, timeout=10, **credentials)

        alice, bob = (client(user=n, password=f"{n} passphrase") for n in ("alice", "bob"))
        task_id = alice.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"])]))
        assert [t.id for t in alice.list_tasks().tasks] == [task_id]
        with pytest.raises(requests.HTTPError) as refused:
            bob.get_task(task_id)
        assert refused.value.response.status_code == 404
        assert bob.list_tasks().tasks in (None, [])
        assert client(token=config["tes_token"]).get_task(task_id).id == task_id
        with pytest.raises(requests.HTTPError) as refused:
            client(token=config["private_token"]).list_tasks()
        assert refused.value.response.status_code == 401
        assert cli("tes-user", "add", "carol", "--config", output, "--iterations", "1000",
                   input="carol passphrase\n").returncode == 0
        assert client(user="carol", password="carol passphrase").list_tasks().tasks in (None, [])
    finally:
        served.stop()
    assert "TES: tes_token (an administrator) and 2 Basic user(s)" in (tmp_path / "serve.log").read_text()


def test_jobs_list_show_cancel_clean(tmp_path):
    port = free_port()
    output = tmp_path / "app.yml"
    assert cli("config", "--rest", "--staging", tmp_path / "staging", "--output", output, "--port", port,
               "--host", "127.0.0.1").returncode == 0
    token = yaml.safe_load(output.read_text())["private_token"]
    served = Served(output)
    try:
        url = served.url
        for job_id, command in (("fast", "echo hello; echo oops >&2"), ("slow", "sleep 60")):
            assert rest(url, "POST", "/jobs", job_id=job_id, private_token=token)[0] == 200
            assert rest(url, "POST", f"/jobs/{job_id}/submit", command_line=command, private_token=token)[0] == 200
        deadline = time.time() + 20
        while json.loads(rest(url, "GET", "/jobs/fast/status", private_token=token)[1])["status"] != "complete":
            assert time.time() < deadline
            time.sleep(0.1)
        listed = cli("jobs", "list", "--config", output)
        assert listed.returncode == 0 and "fast" in listed.stdout and "slow" in listed.stdout
        as_json = json.loads(cli("jobs", "list", "--config", output, "--state", "complete", "--json").stdout)
        assert [j["job_id"] for j in as_json] == ["fast"]
        assert json.loads(cli("jobs", "list", "--config", output, "--older-than", "1h", "--json").stdout) == []
        shown = cli("jobs", "show", "fast", "--config", output)
        assert shown.returncode == 0 and "hello" in shown.stdout and "oops" in shown.stdout
        assert "complete" in shown.stdout
        assert cli("jobs", "cancel", "slow", "--config", output).returncode == 0
        assert json.loads(cli("jobs", "show", "slow", "--config", output, "--json").stdout)["cancel_requested"]
        assert cli("jobs", "clean", "fast", "--config", output).returncode == 0
        assert "fast" not in cli("jobs", "list", "--config", output).stdout
        assert cli("jobs", "show", "nope", "--config", output).returncode == 1
    finally:
        served.stop()
    # the daemon stopped: list still works, cancel says it needs the daemon
    assert "slow" in cli("jobs", "list", "--config", output).stdout
    refused = cli("jobs", "cancel", "slow", "--config", output)
    assert refused.returncode == 1 and "needs it running" in refused.stderr


def test_doctor_finds_what_to_fix(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    app = {"host": "0.0.0.0", "port": free_port(), "private_token": "changeme",
           "staging_directory": str(staging), "persistence_directory": str(tmp_path / "persisted"),
           "message_queue_url": "amqp://guest:guest@127.0.0.1:1//",
           "managers": {"_default_": {}, "hpc": {"type": "queued_cli", "job_plugin": "Torque"}}}
    (tmp_path / "app.yml").write_text(yaml.safe_dump(app))
    os.chown(staging, 12345, 12345)  # not the daemon's user's: it could not write there
    staging.chmod(0o700)
    bin_dir = tmp_path / "bin"  # a PATH with bash and none of the scheduler's commands
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to("/bin/bash")
    done = cli("doctor", "--config", tmp_path / "app.yml", env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 1, done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIX")]
    assert any("private_token is weak" in line for line in lines), lines
    assert any("staging_directory" in line and "owned by uid 12345" in line for line in lines), lines
    assert any("broker" in line and "cannot be reached" in line for line in lines), lines
    assert any("manager hpc" in line and "qsub" in line and "not found" in line for line in lines), lines
    assert any("TES" in line and "podman is not on PATH" in line for line in lines), lines
    broken = tmp_path / "broken.yml"
    broken.write_text("managers: [1, 2]\n")
    assert cli("doctor", "--config", broken).returncode == 2


def test_doctor_reminds_grid_engine_tes_sites_of_notify(tmp_path):
    def tes_lines(native_specification):
        manager = {"type": "queued_drmaa", **({"native_specification": native_specification}
                                              if native_specification else {})}
        app = {"port": free_port(), "staging_directory": str(tmp_path / "staging"),
               "persistence_directory": str(tmp_path / "persisted"), "managers": {"_default_": manager}}
        (tmp_path / "app.yml").write_text(yaml.safe_dump(app))
        done = cli("doctor", "--config", tmp_path / "app.yml")
        return [line for line in done.stdout.splitlines() if "TES" in line]

    assert any(line.startswith("warning") and "-notify" in line for line in tes_lines(None))
    assert not any("-notify" in line for line in tes_lines("-notify -l h_vmem=1G"))
