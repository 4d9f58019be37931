"""queued_cli on a real Slurm (scripts/ci/slurm-up.sh) on a bad day (issue 26): a submission whose answer is lost
after Slurm took the job, a return_code file that shows up after Slurm says the job has ended (both jobs
were failed before the change, though Slurm ran them right); a job an admin holds (it stayed 'queued' for
ever); jobs Slurm took while the daemon was down mid-submit, looked up from another time zone (one was
submitted twice)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pulsar_lite.managers.submitting import SUBMITTING
from tests.conftest import need, wait_until

from .rest_helpers import rest
from .schedulers import RealClient, external_id, slurm_ready, squeue_ids
from .test_slurm import HOLD, SSH_DIR, slurm_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm():
    need(slurm_ready(), "Slurm is not running here (bash scripts/ci/slurm-up.sh)")


def wrapper(directory: Path, command: str, body: str) -> None:
    directory.mkdir(exist_ok=True)
    real = subprocess.run(["which", command], capture_output=True, text=True).stdout.strip()
    (directory / command).write_text("#!/bin/bash\n" + body.replace("REAL", real))
    (directory / command).chmod(0o755)


def test_a_submit_that_outlives_shell_timeout_ends_right_and_runs_once(slurm, daemon_factory, client_python_016,
                                                                       tmp_path):
    """sbatch takes 'after' and then hangs past shell_timeout (it is stopped: the answer is lost); for 'before'
    it hangs before it sends anything, the first time (stopped with the wrapper: it never submits late).
    'after' is found in Slurm by its name and adopted; 'before' is not shown for unknown_outcome_window (8 s
    here) and left no trace: submitted again. Each runs once and ends complete."""
    runs = tmp_path / "runs"
    runs.mkdir()
    stamp = int(time.time())  # Slurm keeps ended jobs' names for MinJobAge: these are this run's
    after, before = f"after{stamp}", f"before{stamp}"
    wrapper(tmp_path / "bin", "sbatch", f"""script="${{@: -1}}"
case "$script" in
  */{after}/*) if [ ! -e {runs}/after.sent ]; then touch {runs}/after.sent; out=$(REAL "$@"); sleep 10; echo "$out";
               else exec REAL "$@"; fi;;
  */{before}/*) if [ ! -e {runs}/before.sent ]; then touch {runs}/before.sent; sleep 10; fi; exec REAL "$@";;
  *) exec REAL "$@";;
esac
""")
    daemon = daemon_factory(slurm_app(shell_timeout=3, unknown_outcome_window=8))
    daemon.env["PATH"] = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    daemon.start()
    client = RealClient(client_python_016, daemon.url)
    for job in (after, before):
        client.launch(job, f"echo x >> {runs}/{job}")
    finals = {job: client.wait(job, timeout=90) for job in (after, before)}
    assert {job: (s["status"], s["returncode"]) for job, s in finals.items()} == {
        after: ("complete", 0), before: ("complete", 0)}, daemon.log()[-4000:]
    for job in finals:
        assert (runs / job).read_text() == "x\n", f"{job} ran {(runs / job).read_text().count('x')} times"
        listed = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"pulsar_{job}", "-o", "%i"],
                                capture_output=True, text=True).stdout.split()
        assert listed == [daemon.record(job)["external_id"]]  # one Slurm job each: never sent twice blindly
    log = daemon.log()
    assert "may or may not have taken it" in log and "took more than 3 s" in log
    assert "found its submission as Slurm job" in log and "its submission never reached Slurm" in log
    assert "refused" not in log


def test_a_return_code_that_shows_5_s_after_slurm_says_the_job_ended_is_complete(slurm, daemon_factory,
                                                                                 client_python_016, tmp_path):
    """NFS lag, made on this host: the daemon's squeue (PATH-wrapped) hides the job's return_code as soon as
    Slurm reports the job COMPLETED, before the daemon reads that answer, and a process outside the job puts the
    file back 5 s later. The job ends complete with its exit code, not failed ("left no exit code")."""
    daemon = daemon_factory(slurm_app())
    job_dir = daemon.staging / "lagging"
    marks = tmp_path / "marks"
    marks.mkdir()
    wrapper(tmp_path / "bin", "squeue", f"""out=$(REAL "$@"); code=$?
rc={job_dir}/return_code
if [ ! -e {marks}/hidden ] && [ -e "$rc" ] && grep -q COMPLETED <<<"$out"; then
  mv "$rc" {marks}/return_code && date +%s.%N > {marks}/hidden
  setsid bash -c 'sleep 5; date +%s.%N > {marks}/shown; mv {marks}/return_code '"$rc" </dev/null >/dev/null 2>&1 &
fi
printf '%s\\n' "$out"; exit $code
""")
    daemon.env["PATH"] = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    daemon.start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("lagging", "sleep 1")  # Slurm: COMPLETED, 0:0
    final = client.wait("lagging", timeout=90)
    assert (marks / "hidden").exists(), "the return_code was never hidden: the test proves nothing"
    assert final["status"] == "complete" and final["returncode"] == 0, (final, daemon.log()[-3000:])
    log = daemon.log()
    assert "its return_code file is not visible yet" in log
    assert "exit code 0 is used" not in log  # the file decided, within return_code_grace (30 s)
    hidden = float((marks / "hidden").read_text())
    assert float((marks / "shown").read_text()) - hidden >= 5


def test_a_job_an_admin_holds_is_failed_after_held_job_grace_and_removed_from_slurm(slurm, daemon_factory,
                                                                                   client_python_016):
    """scontrol hold by an admin (JobHeldAdmin): failed with Slurm's reason after held_job_grace (4 s here) and
    scancel'ed, never run; another held job released within the grace runs to its end. Before, both stayed
    'queued' for ever."""
    daemon = daemon_factory(slurm_app(held_job_grace=4, **HOLD)).start()  # the client's --hold let through
    client = RealClient(client_python_016, daemon.url)
    client.launch("stays-held", "echo never > ../outputs/ran", submit_native_specification="--hold")
    client.launch("released", "echo ran > ../outputs/ran", submit_native_specification="--hold")
    held_id, released_id = external_id(daemon, "stays-held"), external_id(daemon, "released")
    subprocess.run(["scontrol", "hold", held_id], check=True)  # root: now JobHeldAdmin
    time.sleep(1)
    subprocess.run(["scontrol", "release", released_id], check=True)
    assert client.wait("released", timeout=60)["status"] == "complete"
    final = client.wait("stays-held", timeout=60)
    assert final["status"] == "failed" and "held by Slurm for" in final["stderr"], final
    assert "JobHeldAdmin" in final["stderr"], final["stderr"]
    wait_until(lambda: held_id not in squeue_ids(), what="the held job removed from Slurm")
    assert not (daemon.staging / "stays-held" / "outputs" / "ran").exists()
    assert (daemon.staging / "released" / "outputs" / "ran").read_text() == "ran\n"


def test_a_submit_while_slurmctld_cannot_be_reached_waits_and_runs_once_it_can(slurm, daemon_factory,
                                                                              client_python_016, tmp_path):
    """The daemon's Slurm configuration points at a port nobody listens on: sbatch really fails to connect
    ("Unable to contact slurm controller", nothing sent). The job stays queued, /readyz names the manager as
    degraded (still 200), and once the configuration is right again the job is submitted once and completes.
    Before, the job failed at once ("Slurm refused the job")."""
    conf = tmp_path / "slurm"
    subprocess.run(["cp", "-r", "/etc/slurm/.", str(conf)], check=True)
    real = (conf / "slurm.conf").read_text()
    assert "SlurmctldPort=6817" in real
    (conf / "slurm.conf").write_text(real.replace("SlurmctldPort=6817", "SlurmctldPort=1"))
    daemon = daemon_factory(slurm_app())
    daemon.env["SLURM_CONF"] = str(conf / "slurm.conf")
    daemon.start()
    client = RealClient(client_python_016, daemon.url)
    client.launch("waits", "echo x >> ../outputs/runs")
    def degraded():
        code, body = rest(daemon.url, "GET", "/readyz")
        reply = json.loads(body)
        return (code, reply) if reply.get("degraded") else None
    code, ready = wait_until(degraded, timeout=60, what="/readyz naming the manager degraded")
    assert code == 200 and ready["ready"] and "Unable to contact slurm controller" in ready["degraded"][0], ready
    assert client.status("waits")["status"] == "queued"
    (conf / "slurm.conf").write_text(real)
    final = client.wait("waits", timeout=120)
    assert final["status"] == "complete" and final["returncode"] == 0, (final, daemon.log()[-3000:])
    assert (daemon.staging / "waits" / "outputs" / "runs").read_text() == "x\n"
    assert "refused" not in daemon.log() and "nothing was sent, the job waits" in daemon.log()


def test_jobs_slurm_took_while_the_daemon_was_down_mid_submit_are_adopted_not_sent_again(slurm, daemon_factory,
                                                                                          client_python_016,
                                                                                          tmp_path):
    """The daemon dies between its intent ('submitting:@<epoch>:<name>' in the store) and sbatch's answer: made
    here by rewriting the store of a daemon killed with -9 after Slurm took two jobs. Meanwhile one job ran to
    its end (exit 5) and one waits, held. The daemon restarts in another time zone than its submit host's
    (TZ=Asia/Tokyo; commands over ssh run in the host's UTC): both are found by their names in Slurm and
    adopted; the held one, released, runs once. Before the change the submit times were read in the daemon's
    zone (9 h off): neither was found; the ended one was closed on its return_code alone and the held one
    was submitted a second time (two runs once released)."""
    need((SSH_DIR / "id_ed25519").exists(), "the test sshd is not set up (bash scripts/ci/sshd-up.sh)")
    runs = tmp_path / "runs"
    runs.mkdir()
    stamp = int(time.time())
    ended, held = f"ended{stamp}", f"held{stamp}"
    daemon = daemon_factory(slurm_app(
        shell_plugin="SecureShell", shell_hostname="127.0.0.1", shell_port=2222, shell_username="pulsar-ssh",
        shell_private_key=str(SSH_DIR / "id_ed25519"), shell_known_hosts=str(SSH_DIR / "known_hosts"),
        unknown_outcome_window=5, **HOLD))  # the client's --hold let through
    daemon.env["TZ"] = "Asia/Tokyo"
    daemon.start()
    client = RealClient(client_python_016, daemon.url)
    meant = time.time()
    client.launch(ended, f"echo x >> {runs}/{ended}; exit 5")
    client.launch(held, f"echo x >> {runs}/{held}", submit_native_specification="--hold")
    wait_until(lambda: all((daemon.record(job)["external_id"] or "").isdigit() for job in (ended, held)),
               timeout=60, what="both submitted")
    slurm_ids = {job: daemon.record(job)["external_id"] for job in (ended, held)}
    daemon.kill9()
    wait_until(lambda: (runs / ended).exists() and not squeue_ids("-j", slurm_ids[ended]), timeout=60,
               what=f"{ended} ended in Slurm")
    db = sqlite3.connect(Path(daemon.app["persistence_directory"]) / "pulsar_lite.sqlite")
    with db:
        for job in (ended, held):
            db.execute("UPDATE jobs SET state='queued', external_id=? WHERE job_id=?",
                       (f"{SUBMITTING}@{meant:.3f}:pulsar_{job}", job))
    db.close()
    daemon.start()
    wait_until(lambda: daemon.record(held)["external_id"] == slurm_ids[held], timeout=60,
               what=f"{held} adopted: {daemon.log()[-2000:]}")
    subprocess.run(["scontrol", "release", slurm_ids[held]], check=True)
    finals = {job: client.wait(job, timeout=90) for job in (ended, held)}
    assert {job: (s["status"], s["returncode"]) for job, s in finals.items()} == {
        ended: ("complete", 5), held: ("complete", 0)}, daemon.log()[-4000:]
    for job in (ended, held):
        assert (runs / job).read_text() == "x\n", f"{job} ran {(runs / job).read_text().count('x')} times"
        listed = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"pulsar_{job}", "-o", "%i"],
                                capture_output=True, text=True).stdout.split()
        assert listed == [slurm_ids[job]]  # never sent twice
        assert daemon.record(job)["external_id"] == slurm_ids[job]  # adopted, not closed on a trace
    assert daemon.log().count("found its submission as Slurm job") == 2


SSH_HOME = Path("/var/lib/pulsar-ssh")  # the test sshd's login (scripts/ci/sshd-up.sh); bash reads its .bashrc


def test_an_ssh_connection_cut_after_the_remote_sbatch_ran_is_found_and_runs_once(slurm, daemon_factory,
                                                                                   client_python_016, tmp_path):
    """The remote sbatch (a wrapper on the submit host's PATH) submits, then holds the answer back; the test cuts
    the ssh connection there (ss -K: the kernel aborts the TCP connection, as a dropped link does). ssh exits
    255 after the remote command ran: the outcome is unknown, the job is looked for by its name, found, adopted,
    and runs once. Before, it was failed ("refused") while Slurm ran it."""
    need((SSH_DIR / "id_ed25519").exists() and SSH_HOME.is_dir(), "the test sshd is not set up "
                                                                   "(bash scripts/ci/sshd-up.sh)")
    runs = tmp_path / "runs"
    runs.mkdir()
    job = f"cut{int(time.time())}"
    wrapper(tmp_path / "remote-bin", "sbatch", f"""script="${{@: -1}}"
case "$script" in
  */{job}/*) if [ ! -e {runs}/sent ]; then touch {runs}/sent; out=$(REAL "$@"); echo "$out" > {runs}/id; sleep 30;
             echo "$out"; else exec REAL "$@"; fi;;
  *) exec REAL "$@";;
esac
""")
    bashrc = SSH_HOME / ".bashrc"
    saved = bashrc.read_text() if bashrc.exists() else None
    bashrc.write_text(f'export PATH="{tmp_path / "remote-bin"}:$PATH"\n' + (saved or ""))
    try:
        daemon = daemon_factory(slurm_app(
            shell_plugin="SecureShell", shell_hostname="127.0.0.1", shell_port=2222, shell_username="pulsar-ssh",
            shell_private_key=str(SSH_DIR / "id_ed25519"), shell_known_hosts=str(SSH_DIR / "known_hosts"),
            unknown_outcome_window=8)).start()
        client = RealClient(client_python_016, daemon.url)
        client.launch(job, f"echo x >> {runs}/{job}")
        wait_until(lambda: (runs / "id").exists(), timeout=60, what="the remote sbatch submitted")
        subprocess.run(["ss", "-K", "dst", "127.0.0.1:2222"], capture_output=True, check=True)
        final = client.wait(job, timeout=120)
    finally:
        if saved is None:
            bashrc.unlink()
        else:
            bashrc.write_text(saved)
    assert final["status"] == "complete", (final, daemon.log()[-3000:])
    assert (runs / job).read_text() == "x\n"
    slurm_id = (runs / "id").read_text().strip()
    assert daemon.record(job)["external_id"] == slurm_id  # the job Slurm took is the one followed: one run
    log = daemon.log()
    assert "may or may not have taken it" in log and "ssh to pulsar-ssh@127.0.0.1:2222 failed" in log, log[-3000:]
    assert "found its submission as Slurm job" in log and "refused" not in log
