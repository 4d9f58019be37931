"""What runs a TES task's executors: mounts, the container command lines, and how a cancel stops them."""
import contextlib
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest

from tests.conftest import wait_until

from pulsar_lite.tes import protocol, runtime


def task(**extra):
    return protocol.read_task({"executors": [{"image": "busybox", "command": ["true"]}], **extra})


def test_mounts_inputs_read_only_outputs_and_volumes_read_write_parents_first():
    t = task(inputs=[{"path": "/data/in.txt", "content": "x"}], outputs=[{"path": "/data/out.txt", "url": "file:///o"}],
             volumes=["/scratch"])
    assert runtime.mounts(t) == [("/data", False), ("/scratch", False), ("/data/in.txt", True)]


def test_a_wildcard_output_mounts_the_directory_it_matches_in():
    t = task(outputs=[{"path": "/out/many/*.bin", "path_prefix": "/out/many", "url": "http://h/d"}])
    assert runtime.mounts(t) == [("/out/many", False)]
    t = task(outputs=[{"path": "/out/run*/x/*.bin", "path_prefix": "/", "url": "http://h/d"}])
    assert runtime.mounts(t) == [("/out", False)]  # path_prefix shapes the URLs only
    with pytest.raises(ValueError, match="directly under /"):
        runtime.mounts(task(outputs=[{"path": "/*.bin", "path_prefix": "/", "url": "http://h/d"}]))


def test_files_directly_under_the_containers_root_are_mounted_as_files():
    t = task(inputs=[{"path": "/in.txt", "content": "x"}, {"path": "/both.txt", "content": "y"}],
             outputs=[{"path": "/out.txt", "url": "http://h/o"}, {"path": "/both.txt", "url": "http://h/b"},
                      {"path": "/o", "url": "http://h/d", "type": "DIRECTORY"}],
             executors=[{"image": "b", "command": ["x"], "stdout": "/log.txt", "stderr": "/err/e.txt"}],
             volumes=["/v"])
    assert runtime.mounts(t) == [("/both.txt", False), ("/err", False), ("/in.txt", True), ("/log.txt", False),
                                 ("/o", False), ("/out.txt", False), ("/v", False)]
    assert runtime.root_files(t) == ["/log.txt", "/out.txt"]  # an input there is its own (staged) file
    assert runtime.directories_to_make(t, "/r") == ["/r/err", "/r/o", "/r/v"]
    text = runtime.script("tes-1", t, "/job", "podman", "podman", {})
    assert "_tes_placeholders log.txt out.txt" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_podman_command_line():
    t = task(resources={"cpu_cores": 2, "ram_gb": 1.5}, volumes=["/v"])
    executor = dict(t["executors"][0], workdir="/v", env={"A": "b c"}, stdin="/v/in")
    argv = runtime.run_command("podman", "podman", "tes-1", 0, executor, t, "/root", {"network": "none"})
    assert argv[:9] == ["podman", "run", "--rm", "--name", "tes-1-0", "--init", "--sig-proxy=false", "--network=none",
                        "--pull=missing"]
    assert "-i" in argv and ["-v", "/root/v:/v:rw"] == argv[argv.index("-v"):argv.index("-v") + 2]
    assert ["-w", "/v"] == argv[argv.index("-w"):argv.index("-w") + 2] and "A=b c" in argv
    assert argv[argv.index("--cpus") + 1] == "2" and argv[argv.index("--memory") + 1] == "1536m"
    assert argv[-2:] == ["busybox", "true"]


def test_apptainer_command_line():
    t = task(volumes=["/v"])
    argv = runtime.run_command("apptainer", "apptainer", "tes-1", 0, t["executors"][0], t, "/root", {})
    assert argv[:2] == ["apptainer", "exec"] and "--bind" in argv and argv[-2:] == ["docker://busybox", "true"]


def test_the_script_is_valid_bash_and_stops_at_the_first_failure():
    t = task(executors=[{"image": "b", "command": ["x"]}, {"image": "b", "command": ["y"], "ignore_error": True},
                        {"image": "b", "command": ["z"]}])
    text = runtime.script("tes-1", t, "/job", "podman", "podman", {})
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert text.count("|| exit $_tes_code") == 2  # the ignore_error executor only records its failure
    assert "rm -f -t 0" in text and "trap _tes_stop TERM INT HUP" in text
    docker = runtime.script("tes-1", t, "/job", "docker", "docker", {})
    assert "docker rm -f \"$_tes_current\"" in docker and "-t 0" not in docker  # docker rm has no -t


# A stand-in for podman whose container lives in a file: `run` creates it and returns when it is gone (a
# signal does not end it; killed, it leaves the container behind, as the real client does), `rm` takes
# RM_SECONDS to remove it (and says when it began), `container inspect` answers whether it exists. It
# stretches the window in which a cancelled task's job could end before its container was gone, or the
# manager's SIGKILL could cut the removal short.
FAKE_RUNTIME = r"""#!/bin/bash
case "$1" in
  run) shift; while [ "$1" != --name ]; do shift; done; name=$2
       echo running > "$FAKE_STATE/$name"; trap '' TERM; while [ -e "$FAKE_STATE/$name" ]; do sleep 0.05; done ;;
  rm) for name; do :; done; [ -e "$FAKE_STATE/$name" ] || exit 1; touch "$FAKE_STATE/rm-began"
      sleep "$RM_SECONDS"; rm -f "$FAKE_STATE/$name" ;;
  container) [ -e "$FAKE_STATE/$3" ] ;;
esac
"""


@pytest.fixture
def job(tmp_path):
    """A one-executor task's job script, run as a manager runs it (own session, then return_code), with the
    stand-in runtime; started, it waits until the executor's container exists. Killed and cleaned up after."""
    fake = tmp_path / "fake-podman"
    fake.write_text(FAKE_RUNTIME)
    fake.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    directory = tmp_path / "job"
    (directory / "tes").mkdir(parents=True)
    text = runtime.script("tes-9", task(), str(directory), "podman", str(fake), {})
    started = []

    def start(rm_seconds):
        env = dict(os.environ, FAKE_STATE=str(state), RM_SECONDS=str(rm_seconds))
        process = subprocess.Popen(["bash", "-c", f"{text}\necho $? > {directory}/return_code\n"],
                                   start_new_session=True, env=env)
        started.append(process)
        wait_until(lambda: (state / "tes-9-0").exists() or process.poll() is not None, timeout=15, interval=0.02,
                   what="the executor's start")
        assert process.poll() is None
        return process

    yield SimpleNamespace(start=start, container=state / "tes-9-0", state=state, directory=directory)
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    (state / "tes-9-0").unlink(missing_ok=True)  # the stand-in client ends when its container is gone


def test_a_cancelled_job_ends_only_after_its_container_is_removed(job):
    process = job.start(rm_seconds=1.5)
    os.killpg(process.pid, signal.SIGTERM)  # queued_python's cancel; Slurm's scancel
    assert process.wait(timeout=30) == 0
    assert not job.container.exists(), "the job ended while its container still existed"
    assert (job.directory / "return_code").read_text().strip() == "143"
    end = (job.directory / "tes" / "0.end").read_text().split()
    assert end[1] == "143" and float(end[0]) > 0


def test_a_signal_to_the_job_script_alone_stops_the_executor(job):
    process = job.start(rm_seconds=0.2)
    os.kill(process.pid, signal.SIGTERM)  # HTCondor's soft kill reaches the job's top process only
    assert process.wait(timeout=30) == 0
    assert not job.container.exists()
    assert (job.directory / "return_code").read_text().strip() == "143"


def test_the_managers_sigkill_does_not_cut_the_container_removal_short(job):
    process = job.start(rm_seconds=1.5)
    os.killpg(process.pid, signal.SIGTERM)
    wait_until((job.state / "rm-began").exists, timeout=15, interval=0.02, what="the removal's start")
    os.killpg(process.pid, signal.SIGKILL)  # kill_grace_period is over
    process.wait(timeout=30)
    wait_until(lambda: not job.container.exists(), timeout=15, interval=0.02,
               what="the container's removal after the SIGKILL")


def test_grid_engines_notice_before_a_suspend_does_not_end_the_task(job):
    process = job.start(rm_seconds=0.2)
    os.killpg(process.pid, signal.SIGUSR1)  # qsub -notify: SIGUSR1 before SIGSTOP
    time.sleep(0.5)
    assert process.poll() is None and job.container.exists(), "SIGUSR1 ended the task"
    job.container.unlink()  # the executor ends by itself
    assert process.wait(timeout=30) == 0
    assert (job.directory / "return_code").read_text().strip() == "0"
    assert (job.directory / "tes" / "0.end").read_text().split()[1] == "0"


# Symlinks an executor leaves in the task's mirror, for the paths the job script itself handles on the host:
# the next executor's stdin, stdout and stderr, and the directories it makes (issue 27). A stand-in runtime
# runs the executors: `plant TARGET PATH` replaces container path PATH (its mirror, under $MIRROR) by a
# symlink to TARGET; any other command copies its stdin to stdout, then writes "out" and "err".
PLANTING_RUNTIME = r"""#!/bin/bash
while [ $# -gt 0 ] && [ "$1" != plant ] && [ "$1" != echo ]; do shift; done
if [ "$1" = plant ]; then rm -rf "$MIRROR$3"; ln -s "$2" "$MIRROR$3"; exit; fi
cat; echo out; echo err >&2
"""


@pytest.fixture
def run_task(tmp_path):
    """Run a task's job script with the planting stand-in runtime: (exit status, job directory)."""
    fake = tmp_path / "fake-podman"
    fake.write_text(PLANTING_RUNTIME)
    fake.chmod(0o755)
    directory = tmp_path / "job"
    (directory / "tes").mkdir(parents=True)

    def run(*executors, volumes=("/v",), before=None, **fields):
        t = task(executors=list(executors), volumes=list(volumes), **fields)
        if before:
            before(directory / "tes" / "root")
        text = runtime.script("tes-9", t, str(directory), "podman", str(fake), {})
        env = dict(os.environ, MIRROR=str(directory / "tes" / "root"))
        done = subprocess.run(["bash", "-c", text], env=env, cwd=tmp_path, timeout=60)
        return done.returncode, directory

    return run


def plant(target, path):
    return {"image": "b", "command": ["plant", str(target), path]}


def echo(**streams):
    return {"image": "b", "command": ["echo"], **streams}


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "app.yml"
    path.write_text("private_token: secret\n")
    return path


def refused(directory):
    return (directory / "tes" / "refused").read_text()


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_stream_to_a_planted_symlink_replaces_the_link_not_its_target(run_task, secret, stream):
    code, directory = run_task(plant(secret, "/v/log"), echo(**{stream: "/v/log"}))
    assert secret.read_text() == "private_token: secret\n"
    assert code == 0
    log = directory / "tes" / "root" / "v" / "log"
    assert not log.is_symlink() and log.read_text() == ("out\n" if stream == "stdout" else "err\n")


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_stream_below_a_planted_directory_symlink_is_refused(run_task, tmp_path, stream):
    outside = tmp_path / "outside"
    outside.mkdir()
    code, directory = run_task(plant(outside, "/v/sub"), echo(**{stream: "/v/sub/log"}))
    assert list(outside.iterdir()) == []
    assert code == 1 and f"executor 1: {stream} /v/sub/log was not written" in refused(directory)
    assert (directory / "tes" / "1.end").read_text().split()[1] == "1"


@pytest.mark.parametrize("planted", ["/v/in", "/v/sub"])
def test_stdin_from_a_planted_symlink_is_not_read(run_task, secret, planted):
    target = secret if planted == "/v/in" else secret.parent
    stdin = "/v/in" if planted == "/v/in" else f"/v/sub/{secret.name}"
    code, directory = run_task(plant(target, planted), echo(stdin=stdin))
    stdout = directory / "tes" / "1.stdout"
    assert not stdout.exists() or "secret" not in stdout.read_text()
    assert code == 1 and f"executor 1: stdin {stdin} was not read" in refused(directory)


def test_directories_are_not_made_through_a_symlink_an_earlier_run_left(run_task, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()

    def earlier_run(root):  # Slurm requeues a job into the directory its first run left
        (root / "v").mkdir(parents=True)
        os.symlink(outside, root / "v" / "sub")

    code, directory = run_task(echo(stdout="/v/sub/deeper/log"), before=earlier_run)
    assert list(outside.iterdir()) == []
    assert code == 1 and "/v/sub/deeper could not be made a directory" in refused(directory)
    assert not (directory / "tes" / "0.start").exists()  # no executor ran


def test_stdout_and_stderr_to_one_path_share_one_file_and_stdin_reads_a_file_of_the_task(run_task):
    def staged(root):
        (root / "v").mkdir(parents=True)
        (root / "v" / "in").write_text("in\n")
        (root / "v" / "log").write_text("an earlier executor's, longer than what comes\n")

    code, directory = run_task(echo(stdin="/v/in", stdout="/v/log", stderr="/v/log"), before=staged)
    assert code == 0 and (directory / "tes" / "root" / "v" / "log").read_text() == "in\nout\nerr\n"
    assert refused(directory) == ""


# The same trick on a mount's source: a volume /data holds an input /data/x/app.yml (or a nested volume
# /data/x); executor 0 replaces /data/x by a symlink to a host directory, and the runtime would mount the
# host's file (directory) for executor 1. Every mount below a writable one is checked before each executor.

def test_mounts_below_a_writable_mount_are_the_ones_checked():
    t = task(inputs=[{"path": "/data/x/app.yml", "content": "x"}, {"path": "/ref/r.txt", "content": "r"}],
             volumes=["/data", "/data/y", "/scratch"], outputs=[{"path": "/data/y/z/o.txt", "url": "file:///o"}])
    assert runtime.mounts_to_check(t) == [("d", "/data/y"), ("f", "/data/x/app.yml"), ("d", "/data/y/z")]
    assert runtime.mounts_to_check(task(volumes=["/v"], inputs=[{"path": "/in/a", "content": "a"}])) == []


@pytest.mark.parametrize("nested", ["input", "volume"])
def test_a_mount_below_a_planted_directory_symlink_is_refused_before_the_container_starts(run_task, tmp_path,
                                                                                          nested):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.yml").write_text("private_token: secret\n")
    fields = ({"inputs": [{"path": "/data/x/app.yml", "content": "task's"}]} if nested == "input"
              else {"volumes": ["/data", "/data/x"]})

    def staged(root):
        (root / "data" / "x").mkdir(parents=True)
        (root / "data" / "x" / "app.yml").write_text("task's")

    code, directory = run_task(plant(outside, "/data/x"), echo(), before=staged,
                               **({"volumes": ["/data"]} if nested == "input" else {}), **fields)
    assert code == 1
    path = "/data/x/app.yml" if nested == "input" else "/data/x"
    assert f"executor 1: {path} was not mounted" in refused(directory)
    assert not (directory / "tes" / "1.stdout").exists() or (directory / "tes" / "1.stdout").read_text() == ""
    assert (directory / "tes" / "1.end").read_text().split()[1] == "1"
    assert sorted(p.name for p in outside.iterdir()) == ["app.yml"]


def test_a_mount_an_earlier_executor_left_as_it_was_is_mounted(run_task):
    def staged(root):
        (root / "data" / "x").mkdir(parents=True)
        (root / "data" / "x" / "app.yml").write_text("task's")

    code, directory = run_task(echo(), echo(), before=staged, volumes=["/data"],
                               inputs=[{"path": "/data/x/app.yml", "content": "task's"}])
    assert code == 0 and refused(directory) == ""
    assert (directory / "tes" / "1.stdout").read_text() == "out\n"
