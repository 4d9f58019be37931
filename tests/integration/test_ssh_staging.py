"""rsync and scp staging (remote_rsync_transfer, remote_scp_transfer) against the real sshd of .ci/run
(scripts/ci/sshd-up.sh: 127.0.0.1:2222, login pulsar-ssh, its key and this server's host key in
/etc/pulsar-lite-ci): the real clients submit as Galaxy does, the daemon pulls the input and pushes the output
over ssh with the host key checked; an unknown host key is refused; a connection cut in the middle of an rsync
download is resumed from its partial file."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pulsar_lite.staging import RetryPolicy
from pulsar_lite.staging.actions import PermanentStagingError
from pulsar_lite.staging.ssh_copy import SshSettings, fetch, send
from tests.conftest import need

pytestmark = pytest.mark.integration

DIR = Path("/etc/pulsar-lite-ci")
PORT = 2222
DRIVER = Path(__file__).parent / "drivers" / "ssh_job.py"


def sshd_ready() -> bool:
    return (DIR / "id_ed25519").exists() and (DIR / "known_hosts").exists() and \
        subprocess.run(["bash", "-c", f"echo > /dev/tcp/127.0.0.1/{PORT}"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sshd():
    need(sshd_ready(), "the test sshd is not running here (bash scripts/ci/sshd-up.sh)")
    need(bool(subprocess.run(["which", "rsync"], capture_output=True).stdout), "rsync is not installed")


def action(kind: str, path: str) -> dict:
    return {"action_type": f"remote_{kind}_transfer", "source": {"path": path}, "ssh_key": (DIR / "id_ed25519")
            .read_text(), "ssh_user": "pulsar-ssh", "ssh_host": "127.0.0.1", "ssh_port": PORT}


@pytest.mark.parametrize("kind", ["rsync", "scp"])
def test_a_job_staged_over_ssh_with_the_real_client(kind, sshd, client_python, daemon_factory, tmp_path):
    daemon = daemon_factory({"ssh_known_hosts": str(DIR / "known_hosts")}).start()
    galaxy = tmp_path / "galaxy"
    request = {"url": daemon.url, "job_id": f"ssh-{kind}", "action": f"remote_{kind}_transfer",
               "directory": str(galaxy), "ssh_key": (DIR / "id_ed25519").read_text(), "ssh_user": "pulsar-ssh",
               "ssh_host": "127.0.0.1", "ssh_port": PORT}
    done = subprocess.run([str(client_python), str(DRIVER), json.dumps(request)], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert status["status"] == "complete" and status["returncode"] == 0, (status, daemon.log()[-3000:])
    assert (galaxy / "files" / "dataset_2.dat").read_text() == "MOVED OVER SSH\n" * 1000
    log = daemon.log()
    assert "BEGIN OPENSSH PRIVATE KEY" not in log
    assert not list(Path("/tmp").glob("pulsar-lite-sshkey-*")), "a key file was left behind"


def test_an_unknown_host_key_is_refused_at_once(sshd, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text("")
    source = tmp_path / "remote.txt"
    source.write_text("x")
    with pytest.raises(PermanentStagingError, match="Host key verification failed"):
        fetch(action("rsync", str(source)), str(tmp_path / "job" / "in.txt"), SshSettings(str(other)))
    with pytest.raises(PermanentStagingError, match="Host key verification failed"):
        fetch(action("scp", str(source)), str(tmp_path / "job" / "in2.txt"), SshSettings(str(other)))


def test_an_output_planted_as_a_symlink_is_sent_as_the_file_the_daemon_opened(sshd, tmp_path):
    """send() gets /proc/self/fd/N (the output opened below the job directory): rsync and scp read that
    descriptor, whatever name the job has put in its place since."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "out.txt").write_text("the output\n")
    fd = os.open(job / "out.txt", os.O_RDONLY)
    try:
        os.unlink(job / "out.txt")
        os.symlink("/etc/pulsar-lite-ci/id_ed25519", job / "out.txt")
        for kind in ("rsync", "scp"):
            remote = tmp_path / "galaxy" / kind / "out.txt"
            send(action(kind, str(remote)), f"/proc/self/fd/{fd}", SshSettings(str(DIR / "known_hosts")))
            assert remote.read_text() == "the output\n"
    finally:
        os.close(fd)


def test_a_connection_cut_during_an_rsync_download_resumes(sshd, tmp_path, monkeypatch):
    """rsync is slowed to 2 MB/s (a PATH wrapper adding --bwlimit) so that the connection can be cut (ss -K) in
    the middle of a 16 MB download; the retry starts from the partial file rsync kept."""
    need(bool(subprocess.run(["which", "ss"], capture_output=True).stdout), "ss (iproute2) is not installed")
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    starts = tmp_path / "starts"
    real = subprocess.run(["which", "rsync"], capture_output=True, text=True).stdout.strip()
    target = tmp_path / "job" / "inputs" / "big.dat"
    (wrappers / "rsync").write_text(f"""#!/bin/bash
echo "$(du -sb {target.parent}/.rsync-partial 2>/dev/null | cut -f1)" >> {starts}
exec {real} --bwlimit=2000 "$@"
""")
    (wrappers / "rsync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrappers}:{os.environ['PATH']}")
    source = tmp_path / "remote" / "big.dat"
    source.parent.mkdir()
    source.write_bytes(os.urandom(16 * 1024 * 1024))

    def cut():
        time.sleep(2.5)
        subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(PORT)], capture_output=True)

    threading.Thread(target=cut, daemon=True).start()
    policy = RetryPolicy(max_retries=3, interval_start=0.2, interval_step=0.0, interval_max=0.2)
    policy.run(fetch, action("rsync", str(source)), str(target), SshSettings(str(DIR / "known_hosts")))
    assert target.read_bytes() == source.read_bytes()
    sizes = [int(line or 0) for line in starts.read_text().splitlines()]
    assert len(sizes) >= 2 and sizes[0] == 0 and sizes[1] > 0, sizes  # the second run began with the part kept
