"""The Torque and OpenPBS job plugins on output in the formats their documentation gives (no PBS server runs
here: Torque's qstat(1B) "-x" XML, the PBS Professional Reference Guide's "qstat -f -F json")."""
import calendar
import time
from pathlib import Path

import pytest

from pulsar_lite.managers.cli.openpbs import OpenPBS
from pulsar_lite.managers.cli.plugin import Script
from pulsar_lite.managers.cli.torque import Torque
from pulsar_lite.managers.contract import Observed, SchedulerError

CAPTURED = Path(__file__).parent / "captured"
TORQUE_XML = (CAPTURED / "torque_qstat_x.xml").read_text()
PBS_JSON = (CAPTURED / "openpbs_qstat_f_json.txt").read_text()


def test_torque_states_and_exit_status():
    ids = [f"{n}.pbs01" for n in range(101, 108)]
    seen = Torque().parse_status(0, TORQUE_XML, "", ids)
    assert set(seen) == set(ids)  # 108 was not asked about
    assert seen["101.pbs01"].phase == Observed.QUEUED
    assert seen["107.pbs01"].phase == Observed.HELD and seen["107.pbs01"].wait  # an operator may release it
    assert seen["107.pbs01"].failure == "held in Torque (job_state H, Hold_Types ?)"
    assert seen["102.pbs01"].phase == Observed.RUNNING
    assert seen["103.pbs01"] == Observed(Observed.ENDED, 0, None, "C")
    assert seen["104.pbs01"] == Observed(Observed.ENDED, 3, None, "C")
    assert "signal 15" in seen["105.pbs01"].failure  # qdel or a limit: 256 + SIGTERM
    assert "exit_status -1" in seen["106.pbs01"].failure
    assert Torque().parse_status(0, "", "", ids) == {}  # no job at all: qstat -x prints nothing
    with pytest.raises(SchedulerError, match="not XML"):
        Torque().parse_status(0, "<Data><Job>", "", ids)
    with pytest.raises(SchedulerError, match="qstat failed"):
        Torque().parse_status(1, "", "Cannot connect to default server host 'pbs01'", ids)


def test_torque_find_and_commands():
    assert Torque().parse_find(TORQUE_XML, "pulsar_q", 1764837500) == ["101.pbs01"]  # 108 is older
    assert Torque().parse_find(TORQUE_XML, "pulsar_q", 0) == ["108.pbs01", "101.pbs01"]  # kept first: it ran
    assert Torque().status(["1.x"]) == ["qstat", "-x"] and Torque().delete("5.x") == ["qdel", "5.x"]
    assert Torque().parse_submit("123.pbs01\n") == "123.pbs01"
    assert Torque().delete_succeeded(153, "", "qdel: Unknown Job Id 5.pbs01")


def test_openpbs_states_exit_status_and_limits():
    ids = [f"{n}.pbs01" for n in range(201, 208)]
    seen = OpenPBS().parse_status(0, PBS_JSON, "", ids)
    assert seen["201.pbs01"].phase == Observed.QUEUED and seen["202.pbs01"].phase == Observed.RUNNING
    assert seen["203.pbs01"] == Observed(Observed.ENDED, 0, None, "F")
    assert seen["204.pbs01"] == Observed(Observed.ENDED, 3, None, "F")
    assert "walltime limit exceeded" in seen["205.pbs01"].failure
    assert "signal 15" in seen["206.pbs01"].failure
    assert seen["207.pbs01"].phase == Observed.HELD and seen["207.pbs01"].failure.startswith("held in OpenPBS")
    unknown = OpenPBS().parse_status(0, PBS_JSON.replace('"job_state":"H"', '"job_state":"Z"'), "", ids)["207.pbs01"]
    assert unknown.phase == Observed.HELD and not unknown.wait  # kept there, in a state nobody here can judge
    # an id the server forgot: reported on stderr, the others still on stdout
    partial = OpenPBS().parse_status(153, PBS_JSON, "qstat: Unknown Job Id 299.pbs01", ids + ["299.pbs01"])
    assert "299.pbs01" not in partial and len(partial) == 7
    assert OpenPBS().parse_status(153, "", "qstat: Unknown Job Id 299.pbs01\n", ["299.pbs01"]) == {}
    assert OpenPBS().status(["1.a", "2.a"]) == ["qstat", "-x", "-f", "-F", "json", "1.a", "2.a"]


def test_openpbs_find_uses_queue_time():
    since = calendar.timegm(time.strptime("Thu Dec  4 08:00:02 2025", "%a %b %d %H:%M:%S %Y"))  # qstat ran in UTC
    assert OpenPBS().parse_find(PBS_JSON, "pulsar_ok", since) == ["203.pbs01"]
    assert OpenPBS().parse_find(PBS_JSON, "pulsar_q", since) == []


def test_resources_become_each_schedulers_directives():
    script = Script(name="pulsar_9", stdout="/o", stderr="/e", params={}, native_specification=None,
                    submit_params={"cores": 2, "memory": 512, "walltime": 3600, "queue": "long"},
                    policy=Torque().policy({"client_submit_options": ["-q", "-l"]}))  # the queue too
    assert Torque({"Account_Name": "proj"}).headers(script) == [
        "#PBS -N pulsar_9", "#PBS -o /o", "#PBS -e /e", "#PBS -A proj", "#PBS -q long",
        "#PBS -l nodes=1:ppn=2", "#PBS -l mem=512mb", "#PBS -l walltime=1:00:00"]
    assert OpenPBS().headers(script)[3:] == ["#PBS -q long", "#PBS -l select=1:ncpus=2:mem=512mb",
                                             "#PBS -l walltime=1:00:00"]


def test_openpbs_lookup_reads_qstat_in_utc_whatever_the_daemons_time_zone(monkeypatch):
    """qstat prints qtime in its own local time: the look-up runs it with TZ=UTC and reads it as UTC, so a
    daemon (or submit host) in another zone finds the same jobs (the old parse read it in the daemon's zone)."""
    assert OpenPBS().find("pulsar_ok", "galaxy")[:3] == ["env", "TZ=UTC", "qstat"]
    since = calendar.timegm(time.strptime("Thu Dec  4 08:00:02 2025", "%a %b %d %H:%M:%S %Y"))
    answers = []
    for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        answers.append([OpenPBS().parse_find(PBS_JSON, name, since) for name in ("pulsar_ok", "pulsar_q")])
    monkeypatch.delenv("TZ")
    time.tzset()
    assert answers == [[["203.pbs01"], []]] * 3


def test_pbs_lookup_keeps_the_submitting_users_jobs_only():
    assert Torque().parse_find(TORQUE_XML, "pulsar_q", 0, "galaxy") == ["101.pbs01"]  # 108 names no owner
    assert Torque().parse_find(TORQUE_XML, "pulsar_q", 0, "alice") == []
    assert OpenPBS().parse_find(PBS_JSON, "pulsar_q", 0, "galaxy") == ["201.pbs01"]
    assert OpenPBS().parse_find(PBS_JSON, "pulsar_q", 0, "alice") == []


def test_pbs_record_of_the_name_without_a_readable_time_is_an_error():
    with pytest.raises(SchedulerError, match="record of a job named pulsar_q cannot be read"):
        Torque().parse_find(TORQUE_XML.replace("<qtime>1764838000</qtime>", "<qtime>soon</qtime>"), "pulsar_q", 0)
    with pytest.raises(SchedulerError, match="record of a job named pulsar_q cannot be read"):
        OpenPBS().parse_find(PBS_JSON.replace('"qtime":"Thu Dec  4 08:00:00 2025"', '"qtime":"?"'), "pulsar_q", 0)
    assert Torque().parse_find(TORQUE_XML.replace("<qtime>1764838001</qtime>", ""), "pulsar_q", 0) == [
        "108.pbs01", "101.pbs01"]  # another name's record: not this look-up's business
