"""Who decides a job's options on HTCondor and DRMAA (Grid Engine), and the option helpers every cluster
manager shares (pulsar_lite/managers/options.py)."""
import logging

import pytest

from pulsar_lite.managers.contract import SchedulerError, Submission
from pulsar_lite.managers.drmaa import client_policy, merged_specification
from pulsar_lite.managers.options import ClientPolicy, Dialect, choose


def test_a_native_specification_reads_as_the_scheduler_reads_it():
    sge = Dialect("SGE", flags=frozenset({"-V", "-cwd"}), listed=frozenset({"-l"}))
    assert sge.groups(["-pe", "smp", "4", "-V", "-l", "h_rt=60,h_vmem=4G", "-q", "all.q", "stray"]) == [
        ("-pe", "smp", "4"), ("-V",), ("-l", "h_rt=60"), ("-l", "h_vmem=4G"), ("-q", "all.q", "stray")]
    assert [sge.setting(g) for g in sge.groups(["-l", "h_rt=60", "-pe", "smp", "4"])] == ["-l h_rt", "-pe"]
    getopt = Dialect("x", aliases={"-p": "--partition"}, long=frozenset({"--partition", "--parsable"}),
                     flags=frozenset({"--hold"}), attached=True)
    assert getopt.groups(["-pgpu", "--hold", "word", "--partition=a", "b"]) == [
        ("-p", "gpu"), ("--hold",), ("word",), ("--partition=a",), ("b",)]
    assert {getopt.name(o) for o in ("-p", "--parti", "--partition=x", "--partition")} == {"--partition"}
    assert getopt.name("--par") == "--par"  # ambiguous: sbatch refuses it too


def test_the_allowlist_names_options_or_single_settings():
    sge = Dialect("SGE", listed=frozenset({"-l"}))
    policy = ClientPolicy.of({"client_submit_params": "append", "client_submit_options": ["-l h_vmem", "-pe"]},
                             sge, "ignore", ())
    chosen = choose(sge, policy, [("-l", "h_rt=60")], sge.groups(["-l", "h_vmem=4G,h_rt=9,arch=x", "-pe", "smp", "2"]))
    assert chosen.kept == [("-l", "h_vmem=4G"), ("-pe", "smp", "2")]
    assert chosen.dropped == ["-l h_rt=9 (the manager sets it)", "-l arch=x (not in client_submit_options)"]
    with pytest.raises(SchedulerError, match="client_submit_params must be one of"):
        ClientPolicy.of({"client_submit_params": "maybe"}, sge, "ignore", ())


def test_grid_engine_default_is_pulsars_the_clients_specification_only_when_the_manager_has_none():
    assert client_policy({}).mode == "allow"
    assert client_policy({"native_specification": "-q all.q"}).mode == "ignore"
    assert merged_specification(None, "-l h_cpu=1000 -q other.q", client_policy({})) == (
        "-l h_cpu=1000 -q other.q", [])
    spec, dropped = merged_specification("-q all.q -l h_rt=600", "-l h_cpu=1000", client_policy(
        {"native_specification": "-q all.q"}))
    assert spec == "-q all.q -l h_rt=600" and dropped == ["-l h_cpu=1000 (client_submit_params: ignore)"]


@pytest.mark.parametrize("mode", ["append", "allow"])
def test_grid_engine_never_takes_a_clients_clear_options_file_array_or_waiting_submit(mode):
    """Found by the adversarial review: under append with '*', '-clear' dropped the manager's options before it
    and '-@ file' read options from a file on the daemon's host; arrays (-t) ran the job's one script N times."""
    policy = client_policy({"native_specification": "-q all.q", "client_submit_params": mode,
                            "client_submit_options": ["*"]})
    spec, dropped = merged_specification("-q all.q", "-clear -@ /etc/opts -t 1-5 -tc 2 -sync y -w v -b y "
                                         "-S /bin/csh -j y -i /etc/shadow -l h_vmem=4G", policy)
    assert spec == "-q all.q -l h_vmem=4G"
    assert [d.rsplit(" (", 1)[1] for d in dropped] == ["pulsar_lite sets it)"] * 10


def test_grid_engine_append_and_allow():
    admin = "-q all.q -l h_rt=600"
    client = "-q other.q -l h_rt=99999,h_vmem=4G -pe smp 4 -P proj -N evil -ac note='two words'"
    append = client_policy({"native_specification": admin, "client_submit_params": "append"})
    spec, dropped = merged_specification(admin, client, append)
    assert spec == "-q all.q -l h_rt=600 -l h_vmem=4G -pe smp 4"
    assert dropped == ["-q other.q (the manager sets it)", "-l h_rt=99999 (the manager sets it)",
                       "-P proj (not in client_submit_options)", "-N evil (pulsar_lite sets it)",
                       "-ac 'note=two words' (not in client_submit_options)"]
    spec, dropped = merged_specification(admin, client, client_policy({"client_submit_params": "allow"}))
    assert spec == ("-q all.q -l h_rt=600 -q other.q -l h_rt=99999 -l h_vmem=4G -pe smp 4 -P proj "
                    "-ac 'note=two words'")  # one word again for Grid Engine's parser (it reads '...' as one)
    assert dropped == ["-N evil (pulsar_lite sets it)"]


@pytest.fixture
def condor(engine_factory):
    pytest.importorskip("htcondor2")

    def make(**managers):
        """One queued_condor manager for each name=settings (one engine per test: it holds the state's lock)."""
        engine = engine_factory(managers={name: {"type": "queued_condor", "min_polling_interval": 60,
                                                 "submit_request_memory": 1024, "submit_accounting_group": "site",
                                                 **settings} for name, settings in managers.items()})
        return engine.managers

    return make


def describe(manager, **params) -> dict:
    return manager.description(Submission("j", "pulsar_j", "/s/j", "/s/j/command.sh", "/s/j/o", "/s/j/e",
                                          launch={"submit_params": params}))


CONDOR_CLIENT = {"accounting_group": "stolen", "request_memory": 999999, "cores": 4, "requirements": "True",
                 "+AccountingGroup": '"x"', "executable": "/bin/evil", "native_specification": "-p gpu"}


def test_condor_default_is_pulsars_append_any_key_the_manager_did_not_set(condor):
    described = describe(condor(c={})["c"], **CONDOR_CLIENT)
    assert described["accounting_group"] == "site" and described["request_memory"] == "1024"  # the manager's
    assert described["request_cpus"] == "4" and described["requirements"] == "True"
    # +AccountingGroup sets what the manager's accounting_group sets: the manager's (adversarial review)
    assert "my.accountinggroup" not in described and described["executable"] == "/s/j/command.sh"
    assert "native_specification" not in described


@pytest.mark.parametrize("mode", ["append", "allow"])
def test_condor_attributes_written_as_plus_keys_are_the_submit_commands_that_set_them(condor, mode):
    """Found by the adversarial review: under the default append with '*', a client's +Attr / MY.Attr set what
    the manager's or the daemon's submit commands set (the job's executable, directory, accounting group),
    and the universe (local: the daemon's own host) and file transfers (made as the daemon's account) were
    the client's."""
    manager = condor(c={"client_submit_params": mode, "client_submit_options": ["*"]})["c"]
    described = describe(manager, **{
        "+AccountingGroup": '"x"', "MY.AcctGroup": '"x"', "accounting_group_user": "bob",  # the manager's
        "+Cmd": '"/bin/evil"', "MY.Iwd": '"/etc"', "initial_dir": "/etc", "+JobBatchName": '"x"',  # the daemon's
        "+PulsarLiteManager": '"other"', "MY.Out": '"/tmp/o"', "+In": '"/etc/shadow"',
        "universe": "local", "+JobUniverse": "12", "should_transfer_files": "YES",
        "transfer_input_files": "/etc/pulsar_lite/app.yml", "+TransferInput": '"/etc/passwd"',
        "when_to_transfer_output": "ON_EXIT", "x509userproxy": "/root/proxy", "output_destination": "file:///x",
        "+Wanted": "true", "request_disk": "1G"})
    kept = {key.lower() for key in described if key.lower().startswith("my.")}
    if mode == "append":
        assert described["accounting_group"] == "site" and "accounting_group_user" not in described
        assert kept == {"my.wanted", "my.pulsarlitemanager"}, kept
    else:  # allow: the client's over the manager's, never over the daemon's
        assert described["accounting_group_user"] == "bob"
        assert kept == {"my.wanted", "my.pulsarlitemanager", "my.accountinggroup", "my.acctgroup"}, kept
    assert described["MY.PulsarLiteManager"] == '"c"' and described["universe"] == "vanilla"
    assert described["should_transfer_files"] == "NO" and described["request_disk"] == "1G"
    assert not {"transfer_input_files", "when_to_transfer_output", "x509userproxy", "output_destination",
                "initial_dir"} & set(described)
    assert described["initialdir"] == "/s/j/working" and described["executable"] == "/s/j/command.sh"


@pytest.mark.parametrize("memory", ["1e999", [1, 2], {"a": 1}, -5, "nan"])
def test_condor_a_resource_value_it_cannot_read_fails_the_job_with_the_reason(condor, memory):
    """An OverflowError or TypeError here made the submit's outcome 'unknown' (looked up and tried again)."""
    with pytest.raises(SchedulerError, match="invalid resource request"):
        describe(condor(c={})["c"], memory=memory)


def test_condor_append_with_an_allowlist_and_ignore(condor):
    managers = condor(listed={"client_submit_params": "append",
                              "client_submit_options": ["request_cpus", "request_disk"]},
                      ignored={"client_submit_params": "ignore", "client_submit_options": ["request_cpus"]})
    listed = describe(managers["listed"], request_disk="1G", **CONDOR_CLIENT)
    assert listed["request_cpus"] == "4" and listed["request_disk"] == "1G"
    assert "requirements" not in listed and "my.accountinggroup" not in listed
    ignored = describe(managers["ignored"], walltime=60, **CONDOR_CLIENT)
    assert ignored["request_cpus"] == "4" and "requirements" not in ignored and "periodic_remove" not in ignored


def test_condor_allow_is_the_clients_last_but_never_the_daemons_keys(condor, caplog):
    with caplog.at_level(logging.WARNING):
        allowed = describe(condor(c={"client_submit_params": "allow"})["c"], GetEnv="true", **CONDOR_CLIENT)
    assert allowed["accounting_group"] == "stolen" and allowed["request_memory"] == "999999"
    assert allowed["getenv"] == "false" and allowed["executable"] == "/s/j/command.sh"
    assert "the client's submit_GetEnv is ignored" in caplog.text  # said on its own line, as before the policy
