"""Status queries at a big site: every job asked about in commands under the argument limits (here and over
ssh), and a record that cannot be read concerns its job alone (captured output, garbled on purpose)."""
from __future__ import annotations

import errno
import logging
import shlex
import subprocess
from pathlib import Path

import pytest

from pulsar_lite import wire
from pulsar_lite.managers.cli.openpbs import OpenPBS
from pulsar_lite.managers.cli.plugin import STATUS_COMMAND_BYTES
from pulsar_lite.managers.cli.shells import Result, SecureShell
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.cli.torque import Torque
from pulsar_lite.managers.contract import Observed, SchedulerError

CAPTURED = Path(__file__).parent / "captured"
SQUEUE = (CAPTURED / "slurm_squeue_states.txt").read_text()
SACCT = (CAPTURED / "slurm_sacct.txt").read_text()
TORQUE_XML = (CAPTURED / "torque_qstat_x.xml").read_text()
PBS_JSON = (CAPTURED / "openpbs_qstat_f_json.txt").read_text()
#: what Linux accepts in one argument (MAX_ARG_STRLEN: 32 pages, the final NUL included)
ONE_ARGUMENT = 32 * 4096


def slurm_ids(count: int) -> list[str]:
    return [str(n) for n in range(10_000_000, 10_000_000 + count)]  # 8 digits: Slurm's MaxJobId is 67,043,328


def pbs_ids(count: int) -> list[str]:
    return [f"{n}.pbs-server.example.org" for n in range(1_000_000, 1_000_000 + count)]


def runs(argv: list[str]) -> None:
    """Execute ``argv`` with /bin/true in place of its program: the kernel accepts its arguments or not."""
    subprocess.run(["true", *argv[1:]], check=True)


def test_15000_slurm_ids_are_several_commands_each_under_the_limit_here_and_over_ssh():
    ids = slurm_ids(15_000)
    with pytest.raises(OSError) as refused:  # what a single squeue -j <all ids> did
        runs(Slurm().status(ids))
    assert refused.value.errno == errno.E2BIG
    ssh = SecureShell(hostname="submit.example.org")
    commands = Slurm().status_commands(ids)
    assert len(commands) >= 2
    asked = []
    for command, chunk in commands:
        assert command == Slurm().status(chunk)
        assert len(shlex.join(command)) <= STATUS_COMMAND_BYTES < ONE_ARGUMENT  # the remote shell's one argument
        assert len(ssh.argv(command)[-1]) <= STATUS_COMMAND_BYTES
        runs(command)
        runs(ssh.argv(command))
        asked += chunk
    assert asked == ids  # every job, once, in order


def test_slurm_history_is_chunked_too_and_a_few_jobs_are_one_command():
    ids = slurm_ids(15_000)
    commands = Slurm().history_commands(ids)
    assert len(commands) >= 2 and [i for _, chunk in commands for i in chunk] == ids
    assert all(len(shlex.join(command)) <= STATUS_COMMAND_BYTES for command, _ in commands)
    assert Slurm().status_commands(["3", "4"]) == [(Slurm().status(["3", "4"]), ["3", "4"])]
    assert Slurm().status_commands([]) == [] and Slurm().history_commands([]) == []
    small = Slurm().status_commands(slurm_ids(300), limit=1000)  # status_command_bytes: 1000
    assert len(small) == 3 and all(len(shlex.join(c)) <= 1000 for c, _ in small)


def test_openpbs_ids_over_ssh_are_chunked_and_torque_asks_once():
    ids = pbs_ids(4_300)
    ssh = SecureShell(hostname="submit.example.org")
    assert len(ssh.argv(OpenPBS().status(ids))[-1]) > ONE_ARGUMENT  # what broke at about 4,200 jobs
    commands = OpenPBS().status_commands(ids)
    assert len(commands) >= 2 and [i for _, chunk in commands for i in chunk] == ids
    for command, chunk in commands:
        assert command == OpenPBS().status(chunk) and len(ssh.argv(command)[-1]) <= STATUS_COMMAND_BYTES
        runs(ssh.argv(command))
    assert Torque().status_commands(ids) == [(["qstat", "-x"], ids)]  # qstat -x names no id


def garbled(text: str, line_start: str, replacement: str) -> str:
    lines = text.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith(line_start))
    lines[index] = replacement
    return "".join(lines)


SLURM_IDS = [str(n) for n in range(1, 21)]


@pytest.mark.parametrize("bad_line", [
    "14|RUNN\ufffdNG|0|None|\n",  # a state garbled (read with errors="replace")
    "14|CANCELLED|1x5|None|\n",  # an end without a readable exit status
    "14|CANCEL\n",  # a line cut short
])
def test_a_garbled_squeue_line_concerns_its_job_alone(bad_line):
    clean = Slurm().parse_status(0, SQUEUE, "", SLURM_IDS)
    seen = Slurm().parse_status(0, garbled(SQUEUE, "14|", bad_line), "", SLURM_IDS)
    assert seen["14"].phase == Observed.UNKNOWN and "unreadable record" in seen["14"].state
    assert {k: v for k, v in seen.items() if k != "14"} == {k: v for k, v in clean.items() if k != "14"}


def test_an_answer_cut_short_in_its_last_line():
    seen = Slurm().parse_status(0, SQUEUE[:-12], "", SLURM_IDS)  # its last line "5|TIMEOUT|15|TimeLimit|" cut to "5|TIMEOUT|15"
    assert seen["5"].phase == Observed.UNKNOWN and seen["4"].failure.startswith("time limit reached")


def test_a_line_naming_no_job_leaves_the_jobs_missing_from_the_answer_unknown_not_gone(caplog):
    text = garbled(SQUEUE, "14|", "\ufffd\ufffd|CANCELLED|15|None|\n")
    with caplog.at_level(logging.WARNING):
        seen = Slurm().parse_status(0, text, "", SLURM_IDS + ["21"])
        Slurm().parse_status(0, text, "", SLURM_IDS + ["21"])
    assert seen["14"].phase == seen["21"].phase == Observed.UNKNOWN  # either may have been that line
    assert seen["1"] == Observed(Observed.ENDED, 0, None, "COMPLETED")
    assert caplog.text.count("naming no job asked about") == 1  # logged once


def test_a_garbled_sacct_line_concerns_its_job_alone():
    seen = Slurm().parse_history(0, garbled(SACCT, "15|", "15|FAILED|3:x|None\n"), "")
    assert seen["15"].phase == Observed.UNKNOWN
    assert seen["17"] == Observed(Observed.ENDED, 0, None, "COMPLETED") and seen["14"].phase == Observed.RUNNING


def test_a_garbled_torque_record_concerns_its_job_alone():
    ids = [f"{n}.pbs01" for n in range(101, 108)]
    clean = Torque().parse_status(0, TORQUE_XML, "", ids)
    bad = TORQUE_XML.replace("<job_state>C</job_state><qtime>1764838003", "<job_state>C</job_stat><qtime>1764838003")
    seen = Torque().parse_status(0, bad, "", ids)
    assert seen["104.pbs01"].phase == Observed.UNKNOWN
    assert {k: v for k, v in seen.items() if k != "104.pbs01"} == {k: v for k, v in clean.items() if k != "104.pbs01"}
    cut = Torque().parse_status(0, TORQUE_XML[:TORQUE_XML.index("<Job><Job_Id>105")], "", ids)
    assert cut["104.pbs01"] == clean["104.pbs01"]  # cut short: what was read counts, the rest is unknown
    assert cut["105.pbs01"].phase == cut["107.pbs01"].phase == Observed.UNKNOWN
    bad_status = Torque().parse_status(0, TORQUE_XML.replace("<exit_status>3<", "<exit_status>x3<"), "", ids)
    assert bad_status["104.pbs01"].phase == Observed.UNKNOWN and bad_status["103.pbs01"] == clean["103.pbs01"]
    with pytest.raises(SchedulerError, match="not XML"):  # nothing at all could be read
        Torque().parse_status(0, "<Data><Job>", "", ids)


def test_a_garbled_openpbs_record_concerns_its_job_alone():
    ids = [f"{n}.pbs01" for n in range(201, 208)]
    clean = OpenPBS().parse_status(0, PBS_JSON, "", ids)
    start = PBS_JSON.index('"204.pbs01"')
    bad = PBS_JSON[:start] + PBS_JSON[start:].replace('"Exit_status":3', '"Exit_status":3,,', 1)
    seen = OpenPBS().parse_status(0, bad, "", ids)
    assert seen["204.pbs01"].phase == Observed.UNKNOWN
    assert {k: v for k, v in seen.items() if k != "204.pbs01"} == {k: v for k, v in clean.items() if k != "204.pbs01"}
    cut = OpenPBS().parse_status(0, PBS_JSON[:PBS_JSON.index('"206.pbs01"')], "", ids)
    assert cut["205.pbs01"] == clean["205.pbs01"] and cut["206.pbs01"].phase == Observed.UNKNOWN
    odd_status = OpenPBS().parse_status(0, PBS_JSON.replace('"Exit_status":3', '"Exit_status":"three"'), "", ids)
    assert odd_status["204.pbs01"].phase == Observed.UNKNOWN and odd_status["203.pbs01"] == clean["203.pbs01"]
    with pytest.raises(SchedulerError, match="not JSON"):
        OpenPBS().parse_status(0, '{"Jobs":{', "", ids)


# -- the manager: one command per chunk in the same round; an unreadable record's job waits, within bounds ----
class FakeShell:
    """squeue as a function of the ids asked about; remembers every command."""

    def __init__(self, answer):
        self.answer = answer
        self.commands: list[list[str]] = []

    def user(self):
        raise SchedulerError("who submits is not known here: asked by id")

    def run(self, command):
        self.commands.append(command)
        return Result(0, self.answer(command[command.index("-j") + 1].split(",")) if command[0] == "squeue" else "",
                      "")


@pytest.fixture
def cli(engine_factory):
    engine = engine_factory(managers={wire.DEFAULT_MANAGER: {"type": "queued_cli", "job_plugin": "Slurm",
                                                             "status_command_bytes": 2000}})
    return engine.managers[wire.DEFAULT_MANAGER]


def test_the_manager_asks_about_every_job_in_chunks_in_one_round(cli):
    cli.shell = FakeShell(lambda ids: "".join(f"{i}|RUNNING|0|None|\n" for i in ids))
    ids = slurm_ids(1000)
    seen = cli.query(ids)
    assert len(cli.shell.commands) > 3 and all(len(shlex.join(c)) <= 2000 for c in cli.shell.commands)
    assert set(seen) == set(ids) and {s.phase for s in seen.values()} == {Observed.RUNNING}


def test_an_unreadable_record_is_no_conclusion_for_a_few_rounds_then_the_job_counts_as_not_listed(cli, caplog):
    from pulsar_lite.managers.cli.manager import UNREADABLE_ROUNDS

    def answer(ids):
        return "".join(f"{i}|RUNN\ufffdNG|0|None|\n" if i == "10000001" else f"{i}|RUNNING|0|None|\n" for i in ids)

    cli.shell = FakeShell(answer)
    ids = slurm_ids(3)
    with caplog.at_level(logging.WARNING):
        for _ in range(UNREADABLE_ROUNDS):
            seen = cli.query(ids)
            assert seen["10000001"].phase == Observed.UNKNOWN and seen["10000002"].phase == Observed.RUNNING
        assert "10000001" not in cli.query(ids)  # then: history, its return_code file, or a failure decide
    assert caplog.text.count("record of job 10000001 cannot be read") == 1
    cli.shell = FakeShell(lambda ids: "".join(f"{i}|RUNNING|0|None|\n" for i in ids))
    assert cli.query(ids)["10000001"].phase == Observed.RUNNING and not cli._unreadable


def test_many_slurm_jobs_are_asked_about_in_one_squeue_of_the_users_jobs():
    ids = slurm_ids(Slurm.USER_WIDE + 1)
    [(command, asked)] = Slurm().status_commands(ids, user="galaxy")
    assert command[:7] == ["squeue", "-h", "-a", "-t", "all", "-u", "galaxy"] and "-j" not in command
    assert asked == ids
    # the user's other jobs (9001, 9002: not followed) are passed over; one of them garbled changes nothing
    answer = "".join(f"{i}|PENDING|0|None|\n" for i in ids) + "9001|RUNNING|0|None|\n9002|GARB\ufffdLED|x|x|\n"
    seen = Slurm().parse_status(0, answer, "", asked)
    assert set(seen) == set(ids) and all(s.phase == "queued" for s in seen.values())
    assert "-j" in Slurm().status_commands(ids[:Slurm.USER_WIDE], user="galaxy")[0][0]  # few: by id
    assert all("-j" in command for command, _ in Slurm().status_commands(ids))  # user unknown: by id
