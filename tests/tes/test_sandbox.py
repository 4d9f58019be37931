"""How an executor's container is confined: hardened run options by default, relaxed only by the operator's
options, and the user the job script picks where it runs."""
import subprocess

import pytest

from pulsar_lite.tes import protocol, runtime, sandbox


def task(**extra):
    return protocol.read_task({"executors": [{"image": "busybox", "command": ["true"]}], **extra})


def test_podman_and_docker_are_hardened_by_default():
    t = task(volumes=["/v"])
    for name in ("podman", "docker"):
        argv = runtime.run_command(name, name, "tes-1", 0, t["executors"][0], t, "/root", {})
        for option in ("--network=none", "--cap-drop=all", "--security-opt=no-new-privileges", "--pids-limit=4096",
                       sandbox.USER_OPTION):
            assert option in argv, (name, option)
        assert argv.index(sandbox.USER_OPTION) < argv.index("busybox")  # a run option, not the command's


def test_the_operators_options_relax_each_part():
    assert sandbox.oci_options({"capabilities": ["CHOWN", "FOWNER"]})[:3] == [
        "--cap-drop=all", "--cap-add=CHOWN", "--cap-add=FOWNER"]
    assert sandbox.oci_options({"capabilities": ["runtime-default"], "no_new_privileges": False, "pids_limit": 0,
                                "user": "image"}) == []


def test_apptainer_gets_no_privileges_and_no_network_unless_the_host_is_allowed():
    t = task(volumes=["/v"])
    argv = runtime.run_command("apptainer", "apptainer", "tes-1", 0, t["executors"][0], t, "/root", {})
    assert argv[:8] == ["apptainer", "exec", "--containall", "--cleanenv", "--no-home", "--no-privs", "--net",
                        "--network"] and argv[8] == "none"
    assert ["--bind", "/root/v:/v:rw"] == argv[argv.index("--bind"):argv.index("--bind") + 2]
    assert "--net" not in runtime.run_command("apptainer", "apptainer", "tes-1", 0, t["executors"][0], t, "/root",
                                              {"network": "host"})
    assert "--network" in sandbox.sif_options({"network": "bridge"})


def user(runtime_name, command, options, as_nobody=False, env=None):
    """The user option the job script picks, run as root (this test's account) or as nobody."""
    text = sandbox.user_setup(runtime_name, command, options) + '\nprintf "%s|%s" "$_tes_user" "$_tes_uid"'
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return subprocess.run([*prefix, "bash", "-c", text], capture_output=True, text=True, env=env or {},
                          check=True).stdout


@pytest.fixture
def root():
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        pytest.skip("needs root (the test switches to nobody)")


def test_a_job_running_as_root_gives_the_container_nobody_and_its_directories(root):
    assert user("podman", "podman", {}) == "--user=65534:65534|65534:65534"
    assert user("docker", "docker", {"user": "1000:1000"}) == "--user=1000:1000|1000:1000"
    assert user("podman", "podman", {"user": "0:0"}) == "--user=0:0|"
    assert sandbox.user_setup("podman", "podman", {"user": "image"}) == ""
    assert sandbox.user_setup("apptainer", "apptainer", {}) == ""


def test_a_job_running_as_another_user_gives_the_container_that_user(root):
    assert user("podman", "podman", {}, as_nobody=True) == "--userns=keep-id|"  # rootless podman
    assert user("podman", "podman", {}, as_nobody=True, env={"CONTAINER_HOST": "unix:///s"}) == "--user=65534:65534|"
    assert user("podman", "/usr/bin/podman-remote", {}, as_nobody=True) == "--user=65534:65534|"
    assert user("docker", "docker", {}, as_nobody=True) == "--user=65534:65534|"
    assert user("podman", "podman", {"user": "1000:1000"}, as_nobody=True) == "--user=1000:1000|"


def test_the_writable_mounts_handed_over_are_the_outermost():
    assert sandbox.writable_tops([("/a", False), ("/a/b", False), ("/a/c.txt", True), ("/d", False)]) == ["/a", "/d"]


def test_the_job_script_hands_the_writable_mounts_over_without_following_a_symlink(tmp_path, root):
    outside = tmp_path / "outside"
    outside.mkdir()
    directory = tmp_path / "job"
    mirror = directory / "tes" / "root"
    (mirror / "v" / "sub").mkdir(parents=True)
    (mirror / "v" / "in.txt").write_text("staged")
    (mirror / "v" / "link").symlink_to(outside)  # left by an earlier run of the job
    fake = tmp_path / "fake-podman"
    fake.write_text("#!/bin/bash\nfor a; do [ \"$a\" != --user=65534:65534 ] || exit 0; done; exit 3\n")
    fake.chmod(0o755)
    text = runtime.script("tes-9", task(volumes=["/v"]), str(directory), "podman", str(fake), {})
    assert subprocess.run(["bash", "-c", text], timeout=60).returncode == 0
    assert {p.name: p.lstat().st_uid for p in (mirror / "v").iterdir()} == {"sub": 65534, "in.txt": 65534, "link": 65534}
    assert (mirror / "v").stat().st_uid == 65534 and outside.stat().st_uid == 0


def test_files_directly_under_root_are_made_dated_1970_and_handed_over(tmp_path, root):
    directory = tmp_path / "job"
    mirror = directory / "tes" / "root"
    mirror.mkdir(parents=True)
    (mirror / "out.txt").symlink_to(tmp_path / "app.yml")  # left by an earlier run of the job
    (tmp_path / "app.yml").write_text("token")
    fake = tmp_path / "fake-podman"
    fake.write_text("#!/bin/bash\nfor a; do [ \"$a\" != -v ] || echo \"$a\" >/dev/null; done; exit 0\n")
    fake.chmod(0o755)
    t = task(outputs=[{"path": "/out.txt", "url": "http://h/o"}])
    text = runtime.script("tes-9", t, str(directory), "podman", str(fake), {})
    assert subprocess.run(["bash", "-c", text], timeout=60).returncode == 0
    made = (mirror / "out.txt").lstat()
    assert not (mirror / "out.txt").is_symlink() and made.st_size == 0 and made.st_mtime_ns == 0
    assert made.st_uid == 65534 and (tmp_path / "app.yml").read_text() == "token"
    (mirror / "out.txt").unlink()
    (mirror / "out.txt").mkdir()  # a directory in its place: refused, no executor runs
    assert subprocess.run(["bash", "-c", text], timeout=60).returncode == 1
    assert "/out.txt could not be made an empty file" in (directory / "tes" / "refused").read_text()
