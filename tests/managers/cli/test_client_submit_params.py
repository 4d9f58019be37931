"""Who decides a queued_cli job's options: the directives Slurm, Torque and OpenPBS get under each
client_submit_params value (the manager's native_specification and job_* are the administrator's)."""
import logging
import shlex

import pytest

from pulsar_lite.managers.cli.openpbs import OpenPBS
from pulsar_lite.managers.cli.plugin import Script
from pulsar_lite.managers.cli.slurm import Slurm
from pulsar_lite.managers.cli.torque import Torque
from pulsar_lite.managers.contract import SchedulerError

SITE = "-A galaxy_site --qos=normal"  # the administrator's native_specification
#: a remote Galaxy asking for another partition, account and QoS, a quoted comment, a hold, and resources
CLIENT = {"native_specification": "--partition=gpu -Aother --qos high --comment=\"two words\" --hold -J evil",
          "cores": 4, "memory": 2048, "walltime": 3600, "queue": "bigmem"}


def slurm_lines(values: dict, client: dict = CLIENT, native: str | None = SITE, params=None) -> tuple[list, list]:
    plugin = Slurm(params if params is not None else {"partition": "debug"})
    script = Script(name="pulsar_7", stdout="/s/o", stderr="/s/e", params=plugin.params, native_specification=native,
                    submit_params=client, policy=plugin.policy(values))
    directives = plugin.directives(script)
    return [line[len("#SBATCH "):] for line in directives.lines], directives.dropped


OWN = ["-J pulsar_7", "-o /s/o", "-e /s/e"]
ADMIN = ["-p debug", "-A galaxy_site", "--qos=normal"]


def test_unset_is_pulsars_ignore_the_clients_resources_only():
    lines, dropped = slurm_lines({})
    assert lines == OWN + ADMIN + ["-c 4", "--mem 2048M", "-t 1:00:00"]  # no partition, account, QoS of its own
    assert "-p bigmem (the manager sets it)" in dropped
    assert any(d.startswith("--partition=gpu (client_submit_params: ignore)") for d in dropped)


def test_the_default_policy_on_a_script_without_one_drops_the_clients_partition():
    plugin = Slurm()
    headers = plugin.headers(Script("pulsar_7", "/s/o", "/s/e", {}, None,
                                    {"native_specification": "-p gpu --comment=x", "queue": "gpu", "cores": 2}))
    assert headers == ["#SBATCH -J pulsar_7", "#SBATCH -o /s/o", "#SBATCH -e /s/e", "#SBATCH -c 2"]


def test_append_adds_what_is_allowed_and_never_what_the_manager_set():
    lines, dropped = slurm_lines({"client_submit_params": "append",
                                  "client_submit_options": ["--comment", "-c", "--mem", "-t", "-p", "-A", "-q"]})
    assert lines == OWN + ADMIN + ["'--comment=two words'", "-c 4", "--mem 2048M", "-t 1:00:00"]
    assert dropped == ["--partition=gpu (the manager sets it)", "-A other (the manager sets it)",
                       "--qos high (the manager sets it)", "--hold (not in client_submit_options)",
                       "-J evil (pulsar_lite sets it)", "-p bigmem (the manager sets it)"]


def test_append_with_nothing_set_by_the_manager_lets_listed_options_through():
    lines, dropped = slurm_lines({"client_submit_params": "append", "client_submit_options": ["-p", "--hold"]},
                                 client={"native_specification": "--parti=gpu --hold --exclusive"}, native=None,
                                 params={})
    assert lines == OWN + ["--parti=gpu", "--hold"]  # sbatch takes abbreviations: --parti is --partition
    assert dropped == ["--exclusive (not in client_submit_options)"]


def test_append_knows_every_spelling_of_an_option_and_the_memory_options_as_one():
    lines, dropped = slurm_lines({"client_submit_params": "append", "client_submit_options": ["*"]},
                                 client={"native_specification": "-pgpu --part gpu --account=x --mem-per-cpu=1G"},
                                 native="--mem=4G --account y", params={"partition": "debug"})
    assert lines == OWN + ["-p debug", "--mem=4G", "--account y"]
    assert dropped == ["-p gpu (the manager sets it)", "--part gpu (the manager sets it)",
                       "--account=x (the manager sets it)", "--mem-per-cpu=1G (the manager sets it)"]


def test_allow_is_the_clients_last_but_never_the_daemons_name_and_streams():
    lines, dropped = slurm_lines({"client_submit_params": "allow"})
    assert lines == OWN + ADMIN + ["--partition=gpu", "-A other", "--qos high", "'--comment=two words'", "--hold",
                                   "-p bigmem", "-c 4", "--mem 2048M", "-t 1:00:00"]
    assert dropped == ["-J evil (pulsar_lite sets it)"]


def test_quoting_survives_in_directive_lines():
    """sbatch reads quotes in #SBATCH lines as a shell does (checked on the real Slurm: test_slurm.py)."""
    lines, _ = slurm_lines({}, client={}, native="--comment=\"two words\" --mail-user 'a b' --x=it\\'s", params={})
    assert lines == OWN + ["'--comment=two words'", "--mail-user 'a b'", "'--x=it'\"'\"'s'"]
    plugin = Slurm({"--comment": "two words"})
    assert plugin.headers(Script("n", "/o", "/e", plugin.params, None, {}))[3] == "#SBATCH --comment 'two words'"


def test_pbs_resources_are_settings_of_their_own_and_the_queue_is_the_sites():
    policy = {"client_submit_params": "append"}
    script = Script(name="pulsar_9", stdout="/o", stderr="/e", params={},
                    native_specification="-q site -l walltime=2:00:00",
                    submit_params={"native_specification": "-q other -l mem=4gb,walltime=9:00:00 -V -l host=n1",
                                   "cores": 2, "memory": 512, "walltime": 60, "queue": "long"})
    torque = Torque({"Account_Name": "proj"})
    directives = torque.directives(Script(**{**script.__dict__, "params": torque.params,
                                             "policy": torque.policy(policy)}))
    assert directives.lines == ["#PBS -N pulsar_9", "#PBS -o /o", "#PBS -e /e", "#PBS -A proj", "#PBS -q site",
                                "#PBS -l walltime=2:00:00", "#PBS -l mem=4gb", "#PBS -l nodes=1:ppn=2",
                                "#PBS -l mem=512mb"]
    assert directives.dropped == ["-q other (the manager sets it)", "-l walltime=9:00:00 (the manager sets it)",
                                  "-V (not in client_submit_options)", "-l host=n1 (not in client_submit_options)",
                                  "-q long (the manager sets it)", "-l walltime=0:01:00 (the manager sets it)"]
    openpbs = OpenPBS()
    ignored = openpbs.directives(Script(**{**script.__dict__, "policy": openpbs.policy({})}))
    assert ignored.lines[3:] == ["#PBS -q site", "#PBS -l walltime=2:00:00", "#PBS -l select=1:ncpus=2:mem=512mb"]
    allow = openpbs.policy({"client_submit_params": "allow"})
    allowed = openpbs.directives(Script(**{**script.__dict__, "policy": allow}))
    assert allowed.lines[5:] == ["#PBS -q other", "#PBS -l mem=4gb", "#PBS -l walltime=9:00:00", "#PBS -V",
                                 "#PBS -l host=n1", "#PBS -q long", "#PBS -l select=1:ncpus=2:mem=512mb",
                                 "#PBS -l walltime=0:01:00"]


def test_what_a_client_loses_is_logged_once_per_job(engine_factory, caplog):
    engine = engine_factory(managers={"s": {"type": "queued_cli", "job_plugin": "Slurm", "min_polling_interval": 60,
                                            "native_specification": "-p debug"}})
    manager = engine.managers["s"]
    launch = {"submit_params": {"native_specification": "-p gpu", "cores": 2}}
    with caplog.at_level(logging.WARNING):
        first = manager.script_headers("j1", "/s/j1", launch)
        again = manager.script_headers("j1", "/s/j1", launch)
    assert first == again and "#SBATCH -p gpu" not in first and "#SBATCH -c 2" in first
    said = [r.getMessage() for r in caplog.records if "were not all used" in r.getMessage()]
    assert len(said) == 1 and "job j1 [s]" in said[0] and "-p gpu (client_submit_params: ignore)" in said[0]


def test_the_settings_are_typed_configuration():
    from pulsar_lite.config import build_config
    from pulsar_lite.errors import ConfigError

    config = build_config({"managers": {"s": {"type": "queued_cli", "job_plugin": "Slurm",
                                              "client_submit_params": "append",
                                              "client_submit_options": "--mem, -c, -l h_vmem"}}})
    assert config.managers["s"].values["client_submit_options"] == ["--mem", "-c", "-l h_vmem"]
    with pytest.raises(ConfigError, match="client_submit_params.*expected one of ignore, append, allow"):
        build_config({"managers": {"s": {"type": "queued_cli", "job_plugin": "Slurm", "client_submit_params": "x"}}})


@pytest.mark.parametrize("mode", ["ignore", "append", "allow"])
def test_a_clients_array_is_refused_in_every_mode_even_when_listed(mode):
    """An array would run the job's one script in its one directory N times: refused (not dropped) whatever
    client_submit_params and client_submit_options say, in every spelling sbatch takes."""
    from pulsar_lite.managers.contract import SchedulerError

    for spec in ("--array=1-3", "-a 1-4", "-a5", "--arr=1-3", "--array 2"):
        with pytest.raises(SchedulerError, match="job arrays .* are not supported"):
            slurm_lines({"client_submit_params": mode, "client_submit_options": ["*"]},
                        client={"native_specification": spec})
    with pytest.raises(SchedulerError, match="job arrays .* are not supported"):
        slurm_lines({"client_submit_params": mode}, client={}, native="--arr=1-2")  # the manager's too
    lines, _ = slurm_lines({"client_submit_params": mode, "client_submit_options": ["*"]},
                           client={"native_specification": "--account=lab"}, native=None, params={})
    assert lines[:3] == OWN  # not an array: written or dropped as the mode says


@pytest.mark.parametrize("spec", [
    # sbatch reads a backslash as an escape even inside quotes: shlex's '"'"' reopened the line to options
    shlex.join(["--comment=x\\'\"'\"'\" -p gpu -A other --qos=high -J evil #"]),
    "--comment=a#b", "--comment=$HOME", "--comment=`id`", shlex.join(["--comment=it's"]),
    # sbatch splits the job into components at a directive line holding these, before reading its options
    "--gres=HetJob --mem=500G", "--comment=packjob",
])
def test_a_client_word_sbatch_would_read_otherwise_fails_the_job(spec):
    """Found by the adversarial review of the site policy: under append with --comment (or --gres) allowed, a
    client escaped the quoting and chose partition, account, QoS, name and streams."""
    with pytest.raises(SchedulerError, match="may not hold"):
        slurm_lines({"client_submit_params": "append", "client_submit_options": ["--comment", "--gres", "--mem"]},
                    client={"native_specification": spec})


def test_a_queue_value_with_a_quote_fails_the_job_too():
    with pytest.raises(SchedulerError, match="may not hold"):
        slurm_lines({"client_submit_options": ["-p"]}, client={"queue": "x'\"'\" -A other #"}, params={})


def test_slurm_never_takes_a_clients_directory_environment_cluster_or_waiting_submit():
    """Found by the adversarial review: -D, --export and -W passed under allow (and under append with '*')."""
    for values in ({"client_submit_params": "allow"}, {"client_submit_params": "append", "client_submit_options": ["*"]}):
        lines, dropped = slurm_lines(values, client={"native_specification": (
            "-D /etc --export=ALL,X=1 --export-file=/etc/env -W --wai -M other --uid=0 --get-user-env -i /etc/shadow "
            "--open-mode=append --test-only --wrap=id --comment=ok")}, native=None, params={})
        assert lines == OWN + ["--comment=ok"]
        assert all(d.endswith("(pulsar_lite sets it)") for d in dropped) and len(dropped) == 12


def test_a_size_the_manager_set_is_not_multiplied_by_a_clients_tasks_or_nodes():
    """Found by the adversarial review: the manager's -c 4 and a client's --ntasks 64 made 256 cores."""
    lines, dropped = slurm_lines({"client_submit_params": "append", "client_submit_options": ["*"]},
                                 client={"native_specification": "--ntasks 64 -N4 --ntasks-per-node=8 --exclusive"},
                                 native="-c 4 --mem=8G", params={})
    assert lines == OWN + ["-c 4", "--mem=8G"] and len(dropped) == 4
    assert all(d.endswith("(the manager sets it)") for d in dropped)
    # a manager that sets the shape (one node, one task) leaves the size to the client
    lines, dropped = slurm_lines({}, client={"cores": 8, "native_specification": "-n 4"}, native="-N 1 -n 1",
                                 params={})
    assert lines == OWN + ["-N 1", "-n 1", "-c 8"] and dropped == ["-n 4 (client_submit_params: ignore)"]


@pytest.mark.parametrize("mode", ["append", "allow"])
def test_pbs_never_takes_a_clients_array_interactive_job_or_waiting_submit(mode):
    """Found by the adversarial review: PBS arrays (-t, -J) passed under allow."""
    for plugin in (Torque(), OpenPBS()):
        script = Script(name="pulsar_9", stdout="/o", stderr="/e", params={}, native_specification=None,
                        submit_params={"native_specification": "-t 1-5 -J 1-9 -I -Wblock=true -W depend=afterok:1 "
                                                                "-d /etc -j oe -u root -z -l mem=1gb"},
                        policy=plugin.policy({"client_submit_params": mode, "client_submit_options": ["*"]}))
        directives = plugin.directives(script)
        assert directives.lines[3:] == ["#PBS -W depend=afterok:1", "#PBS -l mem=1gb"]
        assert len(directives.dropped) == 8 and all(d.endswith("(pulsar_lite sets it)") for d in directives.dropped)


@pytest.mark.parametrize("asked", [{"memory": "1e999"}, {"cores": [1, 2]}, {"walltime": 1e999},
                                   {"walltime": {"h": 1}}, {"cores": -4}, {"memory": float("nan")}])
def test_a_resource_it_cannot_read_fails_the_job_with_the_reason(asked):
    with pytest.raises(SchedulerError, match="invalid resource request"):
        slurm_lines({}, client=asked)
