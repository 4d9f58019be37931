"""Slurm ids beyond a plain number, and the look-up of a submission whose outcome is unknown (issue 26, items 4
and 7), on output captured from the real Slurm 22.05 here (tests/managers/cli/captured/): array tasks,
heterogeneous components, submit times in epoch seconds, another user's job of the same name. Multi-cluster
answers (``-M``) need slurmdbd, which this Slurm does not run: those are written by hand in the shape Slurm's
documentation gives (``<id>;<cluster>`` from ``sbatch --parsable``, a ``CLUSTER: <name>`` line before each
cluster's jobs from ``squeue -M``), and say so."""
import time
from pathlib import Path

import pytest

from pulsar_lite.managers.cli.plugin import Found, Script, kept_first
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.contract import Observed, SchedulerError

CAPTURED = Path(__file__).parent / "captured"
DISABLED = (CAPTURED / "slurm_sacct_disabled.stderr").read_text()


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


# -- arrays and heterogeneous jobs in status answers ---------------------------------------------------------
def test_array_tasks_and_het_components_are_read_as_their_job():
    """squeue -j 4,5,6,9,19,21: 4 an array whose three tasks failed (exit 3), 9 (held) and 21 arrays with every
    task pending (one record, 9_[1-4%2]), 19 a heterogeneous job (19+0, 19+1), 5 held, 6 a plain job."""
    ids = ["4", "5", "6", "9", "19", "21"]
    seen = Slurm().parse_status(0, captured("slurm_squeue_arrays_het.txt"), "", ids)
    assert set(seen) == set(ids)  # every record is some job's: nothing unattributed, nothing unreadable
    assert seen["4"] == Observed(Observed.ENDED, 3, None, "FAILED")
    assert seen["21"].phase == seen["19"].phase == Observed.QUEUED
    assert seen["9"].phase == seen["5"].phase == Observed.HELD  # JobHeldUser
    assert seen["6"] == Observed(Observed.ENDED, 3, None, "FAILED")


def test_an_array_runs_while_one_task_runs_and_a_task_is_found_in_its_pending_range():
    stdout = captured("slurm_squeue_array_running.txt")  # 21_1 running, 21_[2-3%1] pending
    assert Slurm().parse_status(0, stdout, "", ["21"])["21"].phase == Observed.RUNNING
    assert Slurm().parse_status(0, stdout, "", ["21_1"])["21_1"].phase == Observed.RUNNING
    assert Slurm().parse_status(0, stdout, "", ["21_3"])["21_3"] == Observed(Observed.QUEUED, 0, None, "PENDING")
    held = captured("slurm_squeue_arrays_het.txt")
    assert Slurm().parse_status(0, held, "", ["9_3"])["9_3"].phase == Observed.HELD  # 9_[1-4%2], JobHeldUser
    assert "9_7" not in Slurm().parse_status(0, held, "", ["9_7"])  # not among its tasks


def test_an_array_has_ended_only_when_every_task_has():
    """Hand-written from the shapes above: one task still running, one failed."""
    stdout = "7_1|FAILED|768|NonZeroExitCode|\n7_2|RUNNING|0|None|\n"
    assert Slurm().parse_status(0, stdout, "", ["7"])["7"].phase == Observed.RUNNING
    stdout = "7_1|COMPLETED|0|None|\n7_2|FAILED|512|NonZeroExitCode|\n"
    assert Slurm().parse_status(0, stdout, "", ["7"])["7"] == Observed(Observed.ENDED, 2, None, "FAILED")
    stdout = "7_1|COMPLETED|0|None|\n7_2|garbled\n"  # a task's record cut short: nothing concluded
    assert Slurm().parse_status(0, stdout, "", ["7"])["7"].phase == Observed.UNKNOWN
    stdout = "7_1|RUNNING|0|None|\n7_[2-3]|PENDING|0|JobHeldAdmin|\n"  # one task runs, the rest held
    assert Slurm().parse_status(0, stdout, "", ["7"])["7"].phase == Observed.RUNNING


def test_sacct_array_tasks_are_read_as_their_job():
    """Hand-written (no slurmdbd here): sacct -X lists array tasks as 123_4, pending ones as 123_[5-6]."""
    stdout = "31_1|COMPLETED|0:0|None\n31_[2-3]|PENDING|0:0|None\n32|RUNNING|0:0|None\n"
    seen = Slurm().parse_history(0, stdout, "", ["31", "32"])
    assert seen["31"].phase == Observed.QUEUED and seen["32"].phase == Observed.RUNNING  # 32: a runaway's record


def test_an_array_asked_for_is_refused_at_submission():
    def script(native=None, client=None):
        return Script(name="pulsar_7", stdout="/o", stderr="/e", params={}, native_specification=native,
                      submit_params={"native_specification": client} if client else {})
    for plugin, job in ((Slurm(), script(native="-p debug --array=1-3")), (Slurm(), script(client="-a 1-4")),
                        (Slurm(), script(client="-a5")), (Slurm({"--array": "1-2"}), script())):
        with pytest.raises(SchedulerError, match="job arrays .* are not supported"):
            plugin.headers(job)
    assert Slurm().headers(script(native="--account=lab -A lab"))  # not an array


# -- multi-cluster ids ----------------------------------------------------------------------------------------------
def test_a_cluster_id_is_kept_whole_and_every_command_names_its_cluster():
    """Hand-written: this Slurm runs no slurmdbd, so it cannot answer -M."""
    slurm = Slurm()
    assert slurm.parse_submit("42;cluster2\n") == "42;cluster2"
    with pytest.raises(SchedulerError):
        slurm.parse_submit("42;bad cluster\n")
    commands = slurm.status_commands(["42;cluster2", "43", "44;cluster2"])
    assert commands == [
        (["squeue", "-M", "cluster2", "-h", "-t", "all", "-j", "42,44", "-O", "JobArrayID:|,State:|,exit_code:|,"
          "Reason:|"], ["42;cluster2", "44;cluster2"]),
        (["squeue", "-h", "-t", "all", "-j", "43", "-O", "JobArrayID:|,State:|,exit_code:|,Reason:|"], ["43"])]
    assert [command[:4] for command, _ in slurm.history_commands(["42;cluster2"])] == [["sacct", "-M", "cluster2",
                                                                                         "-n"]]
    assert slurm.delete("42;cluster2") == ["scancel", "-M", "cluster2", "42"]
    seen = slurm.parse_status(0, "CLUSTER: cluster2\n42|RUNNING|0|None|\n44_1|COMPLETED|0|None|\n", "",
                              ["42;cluster2", "44;cluster2"])
    assert seen == {"42;cluster2": Observed(Observed.RUNNING, 0, None, "RUNNING"),
                    "44;cluster2": Observed(Observed.ENDED, 0, None, "COMPLETED")}
    history = slurm.parse_history(0, "42|COMPLETED|0:0|None\n", "", ["42;cluster2"])
    assert history == {"42;cluster2": Observed(Observed.ENDED, 0, None, "COMPLETED")}


def test_a_manager_that_sends_jobs_to_a_cluster_looks_for_them_there():
    """Hand-written squeue -M answer (see above)."""
    slurm = Slurm({"partition": "long"})
    slurm.configure("--clusters=cluster2 --qos=normal")
    assert slurm.find("pulsar_9", "galaxy")[3:6] == ["squeue", "-M", "cluster2"]
    stdout = "CLUSTER: cluster2\n42|1796622655|pulsar_9|PENDING|galaxy||\n"
    assert slurm.parse_find(stdout, "pulsar_9", 0, "galaxy") == ["42;cluster2"]
    other = Slurm({"-M": "c3"})
    other.configure(None)
    assert other.clusters == "c3"


# -- the look-up ----------------------------------------------------------------------------------------------------
def test_the_lookup_asks_for_this_users_jobs_in_every_partition_with_epoch_times():
    command = Slurm().find("pulsar_9", "galaxy")
    assert command[:3] == ["env", "TZ=UTC", "SLURM_TIME_FORMAT=%s"]
    assert command[3:] == ["squeue", "-h", "-a", "-t", "all", "-u", "galaxy", "-n", "pulsar_9", "-O",
                           "JobArrayID:|,SubmitTime:|,Name:|,State:|,UserName:|,Cluster:|"]
    history = Slurm().find_history("pulsar_9", 1796622655.0, "galaxy")
    assert history[:4] == ["env", "TZ=UTC", "SLURM_TIME_FORMAT=%s", "sacct"]
    assert history[history.index("-S") + 1] == "2026-12-07T05:45:55"  # UTC, 300 s before, whatever the TZ
    assert ["-u", "galaxy"] == history[history.index("-u"):history.index("-u") + 2]


def test_submit_times_in_epoch_seconds_do_not_depend_on_the_daemons_time_zone(monkeypatch):
    """The look-up's times are epoch seconds (SLURM_TIME_FORMAT=%s), or UTC: the answer is the same in any
    time zone of the daemon (the old parse read the submit host's local time in the daemon's zone)."""
    stdout = captured("slurm_squeue_find_epoch.txt")
    answers = []
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        answers.append((Slurm().parse_find(stdout, "plcap_hold", 1796622655, "root"),
                        Slurm().parse_find("5|2026-12-07T05:50:55|plcap_hold|PENDING|root|ci|\n", "plcap_hold",
                                           1796622655, "root")))
    monkeypatch.delenv("TZ")
    time.tzset()
    assert answers == [(["5"], ["5"])] * 3


def test_array_tasks_found_are_their_job_and_one_that_runs_is_kept_first():
    stdout = captured("slurm_squeue_find_epoch.txt")
    assert Slurm().parse_find(stdout, "plcap_arr", 0, "root") == ["4"]  # 4_1, 4_2, 4_3
    assert Slurm().parse_find(stdout, "plcap_arrun", 0, "root") == ["21"]
    assert Slurm().parse_found(stdout, "plcap_arrun", 0, "root")[-1] == Found("21", 1796623035.0, True)
    assert Slurm().parse_find(stdout, "plcap_het", 0, "root") == ["19"]
    assert kept_first([Found("30", 100.0), Found("31", 90.0), Found("32", 95.0, ran=True)]) == ["32", "31", "30"]


def test_another_users_job_of_the_same_name_is_not_ours():
    stdout = captured("slurm_squeue_find_two_users.txt")  # squeue without -u: root's 5 and cloudsdk's 23
    assert Slurm().parse_find(stdout, "plcap_hold", 0, "root") == ["5"]
    assert Slurm().parse_find(stdout, "plcap_hold", 0, "cloudsdk") == ["23"]


def test_an_unreadable_record_of_the_name_is_an_error_others_are_skipped():
    good = captured("slurm_squeue_find_epoch.txt")
    with pytest.raises(SchedulerError, match="record of a job named plcap_hold cannot be read"):
        Slurm().parse_find(good + "77|Unknown|plcap_hold|PENDING|root|ci|\n", "plcap_hold", 0, "root")
    with pytest.raises(SchedulerError, match="cannot be read"):
        Slurm().parse_find(good + "77|1796622655|plcap_hold\n", "plcap_hold", 0, "root")  # cut short
    assert Slurm().parse_find(good + "78|garbled|someone_else\n", "plcap_hold", 0, "root") == ["5"]


def test_finished_jobs_are_looked_for_in_sacct_when_accounting_runs():
    """Hand-written sacct answer (no slurmdbd here: the captured refusal is no history, not an error)."""
    slurm = Slurm()
    assert slurm.parse_found_history(1, "", DISABLED, "pulsar_9", 0, "galaxy") == []
    stdout = "57|1796622655|pulsar_9|COMPLETED|galaxy|ci\n58_1|1796622700|pulsar_9|FAILED|galaxy|ci\n"
    assert kept_first(slurm.parse_found_history(0, stdout, "", "pulsar_9", 1796622600, "galaxy")) == ["57", "58"]
    with pytest.raises(SchedulerError, match="sacct failed"):
        slurm.parse_found_history(1, "", "sacct: error: slurmdbd: Connection refused", "pulsar_9", 0, "galaxy")


class FakeShell:
    def __init__(self, answers):
        self.answers, self.commands = answers, []

    def user(self):
        return "root"

    def run(self, command):
        from pulsar_lite.managers.cli.shells import Result
        self.commands.append(command)
        return Result(*self.answers[command[3]])


def test_the_manager_finds_a_job_squeue_forgot_in_sacct():
    from pulsar_lite.managers.cli.manager import QueuedCliManager

    manager = QueuedCliManager.__new__(QueuedCliManager)
    manager.plugin = Slurm()
    manager.shell = FakeShell({"squeue": (0, "", ""), "sacct": (0, "57|1796622655|pulsar_9|COMPLETED|root|ci\n",
                                                                 "")})
    assert manager.find_submitted("pulsar_9", 1796622600) == ["57"]
    assert [command[3] for command in manager.shell.commands] == ["squeue", "sacct"]
    manager.shell = FakeShell({"squeue": (1, "", "squeue: error: Unable to contact slurm controller")})
    with pytest.raises(SchedulerError, match="Unable to contact"):
        manager.find_submitted("pulsar_9", 0)
