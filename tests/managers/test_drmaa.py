"""queued_drmaa's readings of Grid Engine, on output captured from a real cell (captured/)."""
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pulsar_lite.managers.drmaa import observed_from_info, observed_from_status
from pulsar_lite.managers.grid_engine import parse_qacct, parse_qstat_xml
from pulsar_lite.managers.contract import Observed, SchedulerError

CAPTURED = Path(__file__).parent / "captured"


def test_qstat_xml_running_and_held():
    seen = parse_qstat_xml((CAPTURED / "sge_qstat.xml").read_text())
    assert seen["27"].phase == Observed.RUNNING and seen["30"].phase == Observed.RUNNING
    assert seen["28"] == Observed.held("held in Grid Engine (hqw)", "hqw")  # an operator may release it
    assert parse_qstat_xml("") == {}
    with pytest.raises(SchedulerError, match="not XML"):
        parse_qstat_xml("<job_info>")
    error = parse_qstat_xml("<job_info><job_info><job_list><JB_job_number>5</JB_job_number><state>Eqw</state>"
                            "</job_list></job_info></job_info>")
    # kept in the queue, never run unless an operator clears it: given up (and deleted) at once
    assert error["5"].phase == Observed.HELD and not error["5"].wait and "error state (Eqw)" in error["5"].failure


def test_qacct_exit_code_and_qdel():
    assert parse_qacct((CAPTURED / "sge_qacct_exit3.txt").read_text()) == Observed(Observed.ENDED, 3, None, "done")
    deleted = parse_qacct((CAPTURED / "sge_qacct_qdel.txt").read_text())
    assert deleted.failure == "Grid Engine reports failed 100 : assumedly after job" and deleted.exit_code == 137
    assert parse_qacct("error: job id 999999 not found\n") is None


def test_drmaa_states_and_job_info():
    assert observed_from_status("running").phase == Observed.RUNNING
    assert observed_from_status("queued_active").phase == Observed.QUEUED
    assert observed_from_status("user_on_hold") == Observed.held("held in the scheduler (user_on_hold)", "user_on_hold")
    assert observed_from_status("undetermined") is None  # not an answer: qstat and qacct are asked
    assert observed_from_status("done") is None and observed_from_status("failed") is None
    info = dict(hasExited=False, exitStatus=0, hasSignal=False, terminatedSignal="", wasAborted=False)
    assert observed_from_info(SimpleNamespace(**{**info, "hasExited": True, "exitStatus": 3})).exit_code == 3
    assert observed_from_info(SimpleNamespace(**{**info, "hasSignal": True, "terminatedSignal": "SIGKILL"})
                              ).failure == "killed by signal SIGKILL"
    assert "aborted" in observed_from_info(SimpleNamespace(**{**info, "wasAborted": True})).failure


def test_looking_for_a_job_by_name_in_unreadable_qstat_output_is_a_scheduler_error():
    from subprocess import CompletedProcess

    from pulsar_lite.managers.cli.shells import LocalShell
    from pulsar_lite.managers.drmaa import QueuedDrmaaManager

    manager = QueuedDrmaaManager.__new__(QueuedDrmaaManager)
    manager._shell = LocalShell()  # as __init__ makes it: who submits is the daemon's user
    job = ("<job_list><JB_job_number>{}</JB_job_number><JB_name>{}</JB_name>"
           "<JB_submission_time>2026-12-07T05:51:58</JB_submission_time></job_list>")
    commands = []

    def find(stdout: str, qacct=(1, "", "error: job name pulsar_j not found")) -> list[str]:
        def run(command):
            commands.append(command)
            return CompletedProcess(command, 0, stdout, "") if "qstat" in command else CompletedProcess(
                command, *qacct)
        manager._run = run
        return manager.find_submitted("pulsar_j", 0)

    assert find("<job_info><queue_info>" + job.format(12, "pulsar_j") + job.format(7, "other") +
                "</queue_info><job_info>" + job.format(9, "pulsar_j") + "</job_info></job_info>") == ["9", "12"]
    assert find("") == []
    # another user's job named with a control character: qstat prints it raw, which is not XML
    with pytest.raises(SchedulerError, match="not XML, looking for job pulsar_j"):
        find("<job_info><queue_info>" + job.format(13, "bad\x01name") + "</queue_info></job_info>")
    with pytest.raises(SchedulerError, match="not a job number"):
        find("<job_info>" + job.format("13.1-x", "pulsar_j") + "</job_info>")
    with pytest.raises(SchedulerError, match="qacct failed"):
        find("", qacct=(1, "", "error: can't open accounting file"))
    user = commands[0][commands[0].index("-u") + 1]
    assert commands[0] == ["env", "TZ=UTC", "qstat", "-xml", "-u", user, "-r"]  # this user's jobs, never '*'
    assert commands[1] == ["env", "TZ=UTC", "qacct", "-o", user, "-j", "pulsar_j"]


def test_lookup_on_captured_grid_engine_output():
    """qstat -xml -u root -r and qacct -o root -j NAME, run with TZ=UTC on the Grid Engine here: job 10 running,
    11 held (both plcap_sge), 6 another name, 5 an ended plcap_sge (qacct); 12 is another user's."""
    from pulsar_lite.managers.grid_engine import jobs_named, qacct_named

    qstat = (CAPTURED / "sge_qstat_find.xml").read_text()
    assert [found.external_id for found in jobs_named(qstat, "plcap_sge", 0, "root")] == ["10", "11"]
    assert jobs_named(qstat, "plcap_sge", 0, "root")[0].ran  # running: it has a start time
    since = 1796623104.0  # 2026-12-07T05:58:24Z: 11's submission; 10 started a second earlier
    assert [found.external_id for found in jobs_named(qstat, "plcap_sge", since, "root")] == ["11"]
    everyone = (CAPTURED / "sge_qstat_find_all_users.xml").read_text()
    assert {found.external_id for found in jobs_named(everyone, "plcap_sge", 0, None)} == {"10", "11", "12"}
    assert {found.external_id for found in jobs_named(everyone, "plcap_sge", 0, "root")} == {"10", "11"}
    qacct = (CAPTURED / "sge_qacct_find.txt").read_text()
    assert [(f.external_id, f.submitted, f.ran) for f in qacct_named(qacct, "plcap_sge", 0, "root")] == [
        ("5", 1796622718.0, True)]  # Mon Dec  7 05:51:58 2026 UTC
    assert qacct_named(qacct, "plcap_sge", 1796622719, "root") == []
    with pytest.raises(SchedulerError, match="qacct's record of a job named plcap_sge cannot be read"):
        qacct_named(qacct.replace("Mon Dec  7 05:51:58 2026", "sometime"), "plcap_sge", 0, "root")


def test_grid_engine_times_do_not_depend_on_the_daemons_time_zone(monkeypatch):
    from pulsar_lite.managers.grid_engine import jobs_named

    qstat = (CAPTURED / "sge_qstat_find.xml").read_text()
    answers = []
    for zone in ("UTC", "Asia/Tokyo", "America/Los_Angeles"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        answers.append([found.external_id for found in jobs_named(qstat, "plcap_sge", 1796623104.0, "root")])
    monkeypatch.delenv("TZ")
    time.tzset()
    assert answers == [["11"]] * 3
