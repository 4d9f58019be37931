"""What runs a TES task's executors: mounts and the container command lines."""
import subprocess

from pulsar_lite.tes import protocol, runtime


def task(**extra):
    return protocol.read_task({"executors": [{"image": "busybox", "command": ["true"]}], **extra})


def test_mounts_inputs_read_only_outputs_and_volumes_read_write_parents_first():
    t = task(inputs=[{"path": "/data/in.txt", "content": "x"}], outputs=[{"path": "/data/out.txt", "url": "file:///o"}],
             volumes=["/scratch"])
    assert runtime.mounts(t) == [("/data", False), ("/scratch", False), ("/data/in.txt", True)]


def test_a_wildcard_output_mounts_its_prefix():
    t = task(outputs=[{"path": "/out/many/*.bin", "path_prefix": "/out/many", "url": "http://h/d"}])
    assert runtime.mounts(t) == [("/out/many", False)]


def test_podman_command_line():
    t = task(resources={"cpu_cores": 2, "ram_gb": 1.5}, volumes=["/v"])
    executor = dict(t["executors"][0], workdir="/v", env={"A": "b c"}, stdin="/v/in")
    argv = runtime.run_command("podman", "podman", "tes-1", 0, executor, t, "/root", {"network": "none"})
    assert argv[:8] == ["podman", "run", "--rm", "--name", "tes-1-0", "--init", "--network=none", "--pull=missing"]
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
