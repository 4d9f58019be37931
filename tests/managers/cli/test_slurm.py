"""The Slurm job plugin on output captured from a real Slurm 22.05 (tests/managers/cli/captured/)."""
from pathlib import Path

import pytest

from pulsar_lite.managers.cli.plugin import Script
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.contract import Observed, SchedulerError

CAPTURED = Path(__file__).parent / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


def test_squeue_all_states_each_read_right():
    ids = [str(n) for n in range(1, 21)]
    seen = Slurm().parse_status(0, captured("slurm_squeue_states.txt"), "", ids)
    assert seen["20"] == Observed.held("held in Slurm (JobHeldUser)", "PENDING")  # an operator may release it
    assert seen["1"] == Observed(Observed.ENDED, 0, None, "COMPLETED")
    assert seen["2"] == Observed(Observed.ENDED, 3, None, "FAILED")  # the script's own exit 3
    assert seen["3"].phase == Observed.ENDED and seen["3"].exit_code == -15 and "scancel" in seen["3"].failure
    assert seen["4"].failure.startswith("time limit reached") and seen["4"].exit_code == -15
    assert seen["10"].failure == "failed in Slurm (BadConstraints)"  # never ran: not the script's end
    assert "JobLaunchFailure" in seen["18"].failure and seen["18"].exit_code == -9
    assert set(seen) == set(ids)


def test_held_jobs_and_states_nobody_here_can_judge():
    """Captured from the real Slurm of .ci/run: scontrol hold (as root: JobHeldAdmin), sbatch -H (JobHeldUser),
    scontrol requeuehold of a running job, and a pending job released."""
    seen = Slurm().parse_status(0, captured("slurm_squeue_held.txt"), "", ["1", "2", "3", "4"])
    assert seen["1"] == Observed.held("held in Slurm (JobHeldAdmin)", "PENDING")
    assert seen["2"].phase == Observed.HELD and seen["3"].failure == "held in Slurm (job requeued in held state)"
    assert seen["4"] == Observed(Observed.QUEUED, 0, None, "PENDING")
    special = Slurm().parse_status(0, "7|SPECIAL_EXIT|256|None|\n", "", ["7"])["7"]
    assert special.phase == Observed.HELD and special.wait and "SPECIAL_EXIT" in special.failure
    unknown = Slurm().parse_status(0, "8|POWER_DOWN_NEW|0|None|\n9|SOMETHING|x|None|\n", "", ["8", "9"])
    for external_id in ("8", "9"):  # kept by Slurm, in a state this daemon does not know: given up at once
        assert unknown[external_id].phase == Observed.HELD and not unknown[external_id].wait


def test_running_and_only_the_jobs_asked_about():
    seen = Slurm().parse_status(0, captured("slurm_squeue_status.txt"), "", ["14", "17"])
    assert seen["14"].phase == Observed.RUNNING and seen["17"].phase == Observed.ENDED


def test_every_job_purged_is_an_empty_answer_and_other_errors_raise():
    stderr = captured("slurm_squeue_unknown.stderr")
    assert Slurm().parse_status(1, "", stderr, ["999999"]) == {}
    with pytest.raises(SchedulerError, match="squeue failed.*Unable to contact"):
        Slurm().parse_status(1, "", "squeue: error: Unable to contact slurm controller (connect failure)", ["1"])


def test_sacct_with_accounting():
    seen = Slurm().parse_history(0, captured("slurm_sacct.txt"), "")
    assert seen["14"].phase == Observed.RUNNING
    assert seen["15"] == Observed(Observed.ENDED, 3, None, "FAILED")
    assert seen["16"].failure.startswith("cancelled in Slurm")
    assert seen["17"] == Observed(Observed.ENDED, 0, None, "COMPLETED")
    assert seen["18"].exit_code == -9 and "signal 9" in seen["18"].failure


def test_sacct_without_slurmdbd_is_no_history_not_an_answer():
    assert Slurm().parse_history(1, "", captured("slurm_sacct_disabled.stderr")) == {}
    with pytest.raises(SchedulerError):
        Slurm().parse_history(1, "", "sacct: error: slurmdbd: Connection refused")


def test_commands_ask_about_all_jobs_at_once():
    assert Slurm().status(["3", "4", "5"]) == ["squeue", "-h", "-t", "all", "-j", "3,4,5", "-O",
                                                "JobArrayID:|,State:|,exit_code:|,Reason:|"]
    assert Slurm().history(["3", "4"])[:6] == ["sacct", "-n", "-P", "-X", "-j", "3,4"]
    assert Slurm().delete("7") == ["scancel", "7"]


def test_sbatch_parsable_and_garbage():
    assert Slurm().parse_submit(captured("slurm_sbatch_parsable.txt")) == "19"
    assert Slurm().parse_submit("42;cluster2\n") == "42;cluster2"  # kept whole: test_slurm_ids.py
    with pytest.raises(SchedulerError, match="no job id"):
        Slurm().parse_submit("sbatch: error: something\n")


def test_find_by_name_and_submit_time():
    """squeue -t all as the look-up runs it (SLURM_TIME_FORMAT=%s: submit times in epoch seconds); more in
    test_slurm_ids.py."""
    stdout = captured("slurm_squeue_find_epoch.txt")
    assert Slurm().parse_find(stdout, "plcap_hold", 1796622655, "root") == ["5"]  # 2026-12-07T05:50:55Z
    assert Slurm().parse_find(stdout, "plcap_hold", 1796622656, "root") == []  # submitted before
    assert Slurm().parse_find(stdout, "other", 0, "root") == []


def script(policy=None, **submit_params):
    return Script(name="pulsar_7", stdout="/s/7/metadata/job_stdout", stderr="/s/7/metadata/job_stderr",
                  params={}, native_specification="-p debug --qos=normal", submit_params=submit_params,
                  policy=policy)


def test_headers_carry_name_streams_native_specifications_and_resources():
    plugin = Slurm({"partition": "big", "--mem": "4G", "-A": "proj"})
    headers = plugin.headers(script(plugin.policy({"client_submit_params": "allow"}), native_specification="--exclusive",
                                    cores=4, memory=2048, walltime="1-02:00:00"))
    assert headers == [
        "#SBATCH -J pulsar_7", "#SBATCH -o /s/7/metadata/job_stdout", "#SBATCH -e /s/7/metadata/job_stderr",
        "#SBATCH -p big", "#SBATCH --mem 4G", "#SBATCH -A proj",
        "#SBATCH -p debug", "#SBATCH --qos=normal",  # the manager's native_specification, one option a line
        "#SBATCH --exclusive",  # the client's, after it (client_submit_params: allow)
        "#SBATCH -c 4", "#SBATCH --mem 2048M", "#SBATCH -t 26:00:00",
    ]


def test_a_directive_cannot_smuggle_a_second_line():
    with pytest.raises(SchedulerError, match="one line"):
        Slurm().headers(script(native_specification="-p x\nrm -rf /"))
    with pytest.raises(SchedulerError, match="unknown Slurm option job_colour"):
        Slurm({"colour": "red"}).headers(script())
    with pytest.raises(SchedulerError, match="walltime"):
        Slurm().headers(script(walltime="soon"))
