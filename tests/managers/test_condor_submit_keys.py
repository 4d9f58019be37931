"""Found by adversarial review 3 (now fixed), HTCondor under its default (append with '*'): submit commands that set what the daemon
owns under another name than the one DAEMON_KEYS knows.

* ``batch_name`` is the submit command for JobBatchName: HTCondor takes the client's over the daemon's
  ``JobBatchName`` (checked on the real pool, test_real_pool_*), so a submission whose outcome is unknown is looked
  for under a name it does not have: never found, then submitted again (two runs) or, if it started meanwhile,
  failed while it runs.
* ``want_io_proxy`` / ``+WantIOProxy`` (Chirp: ``condor_chirp fetch/put`` reads and writes any file of the
  submit host through the shadow, as the daemon's account) and ``dagman_log`` / ``+DAGManNodesLog`` (the shadow
  appends job events to any file of the submit host): files moved as the daemon's account, like transfer_*.
* ``max_retries``, ``on_exit_remove``, ``cron_*``: the job runs again in its directory (how often it runs).
"""
import time

import pytest

from pulsar_lite.managers.contract import Submission


@pytest.fixture
def condor(engine_factory):
    pytest.importorskip("htcondor2")

    def make(**settings):
        engine = engine_factory(managers={"c": {"type": "queued_condor", "min_polling_interval": 60, **settings}})
        return engine.managers["c"]
    return make


def describe(manager, job_dir="/s/j", **params) -> dict:
    return manager.description(Submission("j", "pulsar_j", job_dir, f"{job_dir}/command.sh", f"{job_dir}/o",
                                          f"{job_dir}/e", launch={"submit_params": params}))


@pytest.mark.parametrize("key, value", [
    ("batch_name", "other"), ("want_io_proxy", "true"), ("+WantIOProxy", "true"), ("dagman_log", "/etc/app.yml"),
    ("+DAGManNodesLog", '"/etc/app.yml"'), ("max_retries", "5"), ("on_exit_remove", "false"),
    ("cron_minute", "*/5"),
])
def test_default_policy_drops_daemon_settings_spelled_otherwise(condor, key, value):
    described = describe(condor(), **{key: value})
    assert key.lower().replace("+", "my.") not in {k.lower() for k in described}, described


@pytest.mark.integration
def test_real_pool_a_clients_batch_name_never_hides_the_job_from_the_lookup(condor, monkeypatch, tmp_path):
    from tests.conftest import need
    from tests.integration.clusters import CONDOR_CONFIG, condor as condor_tool, condor_ready
    need(condor_ready(), "the HTCondor pool is not running here, or the htcondor bindings are missing")
    monkeypatch.setenv("CONDOR_CONFIG", CONDOR_CONFIG)
    manager = condor()
    description = describe(manager, job_dir=str(tmp_path), batch_name="not_the_daemons", hold="true")
    description["initialdir"] = str(tmp_path)
    since = time.time() - 5
    cluster = str(manager._call("condor submit", "submit", once=True,
                                description={str(k): str(v) for k, v in description.items()}))
    try:
        found = manager.find_submitted("pulsar_j", since)  # what the lookup asks after an unknown outcome
        shown = condor_tool("condor_q", cluster, "-af", "JobBatchName").stdout.strip()
    finally:
        condor_tool("condor_rm", cluster)
    assert shown == "pulsar_j" and found == [cluster], (shown, found)
