"""The shell layer tells a refusal (the command ran and said no; or nothing ran) from an unknown outcome (the
command may have run and its answer was lost): only the first may fail a submission (issue 26)."""
from types import SimpleNamespace

import pytest

from pulsar_lite.managers.cli.manager import QueuedCliManager
from pulsar_lite.managers.cli.shells import LocalShell, Result, SecureShell
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.contract import OutcomeUnknown, SchedulerDown, SchedulerError


def test_a_command_stopped_at_its_timeout_has_an_unknown_outcome_one_that_cannot_run_does_not():
    with pytest.raises(OutcomeUnknown, match="took more than 0.2 s"):
        LocalShell(timeout=0.2).run(["sleep", "5"])
    with pytest.raises(SchedulerError) as raised:
        LocalShell().run(["/nonexistent/sbatch"])
    assert not isinstance(raised.value, OutcomeUnknown)


def test_a_command_stopped_at_its_timeout_is_stopped_with_what_it_started(tmp_path):
    """A site's sbatch wrapper that is still waiting when shell_timeout stops it must not submit afterwards,
    while the daemon looks for the job and may submit it again (the review found such a late copy running)."""
    import time

    marker = tmp_path / "submitted-late"
    with pytest.raises(OutcomeUnknown):
        LocalShell(timeout=0.3).run(["bash", "-c", f"(sleep 1; touch {marker}) & sleep 5"])
    time.sleep(1.5)
    assert not marker.exists()


NEVER_GOT_IN = [
    "ssh: connect to host 127.0.0.1 port 1: Connection refused",
    "ssh: Could not resolve hostname nowhere.invalid: Name or service not known",
    "pulsar@submit: Permission denied (publickey).",
    "Host key verification failed.",
    "kex_exchange_identification: read: Connection reset by peer",
]
LOST_AFTER_IT_GOT_IN = [
    "Connection to submit closed by remote host.",
    "client_loop: send disconnect: Broken pipe",
    "Timeout, server submit not responding.",
    "mux_client_read_packet: read header failed: Broken pipe",
    "",
]


@pytest.mark.parametrize("stderr", LOST_AFTER_IT_GOT_IN)
def test_ssh_that_failed_after_it_got_in_has_an_unknown_outcome_unlike_one_that_never_got_in(stderr):
    shell = SecureShell(hostname="submit")
    with pytest.raises(OutcomeUnknown, match="ssh to submit failed"):
        shell.check(["sbatch", "x"], Result(255, "", stderr))
    for never in NEVER_GOT_IN:  # nothing ran: the submission may fail at once
        with pytest.raises(SchedulerError) as raised:
            shell.check(["sbatch", "x"], Result(255, "", never + "\n"))
        assert not isinstance(raised.value, OutcomeUnknown), never
        # a host out of reach passes (the job waits, sent again); a key or host key refused is the config's
        passes = "connect to host" in never or "resolve" in never or "kex_exchange" in never
        assert isinstance(raised.value, SchedulerDown) == passes, never


def submit_with(result: Result):
    manager = SimpleNamespace(plugin=Slurm(), shell=SimpleNamespace(run=lambda command: result))
    return QueuedCliManager.submit_job(manager, SimpleNamespace(script="/jobs/1/command.sh"))


def test_sbatch_saying_no_is_a_refusal_and_a_lost_reply_is_not():
    assert submit_with(Result(0, "4242\n", "")) == "4242"
    with pytest.raises(SchedulerError, match="invalid partition") as raised:
        submit_with(Result(1, "", "sbatch: error: Batch job submission failed: invalid partition specified: x\n"))
    assert not isinstance(raised.value, OutcomeUnknown)
    with pytest.raises(OutcomeUnknown, match="Socket timed out"):
        submit_with(Result(1, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv "
                                  "operation\n"))
    with pytest.raises(OutcomeUnknown, match="printed no job id"):  # it said yes, but not under which id
        submit_with(Result(0, "", ""))
    with pytest.raises(SchedulerDown, match="Unable to contact slurm controller"):  # nothing sent: it waits
        submit_with(Result(1, "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
                                  "(connect failure)\n"))
