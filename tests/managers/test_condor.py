"""queued_condor's readings of HTCondor, on ads and user logs captured from a real pool (captured/)."""
import json
from pathlib import Path

import pytest

from pulsar_lite.managers.condor import observed_from_ad, observed_from_log
from pulsar_lite.managers.contract import Observed

CAPTURED = Path(__file__).parent / "captured"
ADS = json.loads((CAPTURED / "condor_ads.json").read_text())


def ad(name: str, source: str = "query") -> dict:
    cluster = ADS["ids"][name]
    return next(a for a in ADS[source] if a["ClusterId"] == cluster)


def test_queue_states():
    now = 1796376552
    assert observed_from_ad(ad("idle"), now) == Observed(Observed.QUEUED, None, None, "1")
    assert observed_from_ad(ad("run"), now).phase == Observed.RUNNING


def test_a_held_job_is_held_with_its_reason_and_for_how_long():
    """The base decides when a held job is failed (held_job_grace); the ad says why and since when."""
    held = dict(ad("hold"), HoldReason="operator says no")
    now = held["EnteredCurrentStatus"] + 5
    seen = observed_from_ad(held, now)
    assert seen.phase == Observed.HELD and seen.failure == "held by HTCondor: operator says no"
    assert seen.wait and seen.held_for == 5
    assert observed_from_ad(ad("hold"), now).failure == "held by HTCondor: no reason given"


def test_an_unknown_job_status_is_given_up_at_once():
    seen = observed_from_ad(dict(ad("idle"), JobStatus=9), 0)
    assert seen.phase == Observed.HELD and not seen.wait and "unknown" in seen.failure


def test_history_ends():
    assert observed_from_ad(ad("three", "history"), 0) == Observed(Observed.ENDED, 3, None, "completed")
    signalled = observed_from_ad(ad("sig", "history"), 0)
    assert signalled.exit_code == -9 and signalled.failure == "killed by signal 9"
    assert observed_from_ad(ad("rm", "history"), 0).failure.startswith("removed from HTCondor")


@pytest.mark.parametrize("name, expected", [
    ("three", Observed(Observed.ENDED, 3, None, "completed")),
    ("sig", Observed(Observed.ENDED, -9, "killed by signal 9", "completed")),
    ("rm", None),  # aborted: checked below
    ("run", None),  # still running: no end in the log
])
def test_user_logs(name, expected, tmp_path):
    pytest.importorskip("htcondor2")
    path = tmp_path / "job_condor.log"
    path.write_text((CAPTURED / f"condor_user_log_{name}.txt").read_text())
    seen = observed_from_log(str(path))
    if name == "rm":
        assert seen.phase == Observed.ENDED and seen.failure.startswith("removed from HTCondor")
    else:
        assert seen == expected
    assert observed_from_log(str(tmp_path / "missing.log")) is None


def test_a_clients_submit_params_cannot_read_the_daemons_environment_through_macros(monkeypatch, engine_factory):
    htcondor2 = pytest.importorskip("htcondor2")
    from pulsar_lite.managers.contract import SchedulerError, Submission

    monkeypatch.setenv("PULSAR_CONFIG_PRIVATE_TOKEN", "sekrit-token")
    engine = engine_factory(managers={"c": {"type": "queued_condor", "min_polling_interval": 60,
                                            "submit_arguments": "$(Cluster) $ENV(HOME)"}})
    manager = engine.managers["c"]

    def description(**params):
        return manager.description(Submission("j", "pulsar_j", "/s/j", "/s/j/command.sh", "/s/j/o", "/s/j/e",
                                              launch={"submit_params": params}))

    # what the review found: the submit expands these in the daemon's process
    expanded = htcondor2.Submit({"environment": "X=$ENV(PULSAR_CONFIG_PRIVATE_TOKEN)"}).expand("environment")
    assert "sekrit-token" in expanded
    for key, value in [("environment", "X=$ENV(PULSAR_CONFIG_PRIVATE_TOKEN)"),
                       ("Environment", "X=$env(PULSAR_CONFIG_PRIVATE_TOKEN:none)"),
                       ("description", "$RANDOM_CHOICE(a,b)"), ("description", "$RANDOM_INTEGER(1,9)"),
                       ("description", "$(environment)"), ("description", "$$(Memory)"),
                       ("description", "$Fn(x)"), ("my.note", '"$INT(request_cpus)"'), ("description", "$ENV")]:
        with pytest.raises(SchedulerError, match=f"submit_{key} refused: HTCondor macros"):
            description(**{key: value})
    # a $ that is no macro stays; the administrator's submit_params keep theirs
    kept = description(description="costs $5, $HOME unexpanded")
    assert kept["description"] == "costs $5, $HOME unexpanded"
    assert kept["arguments"] == "$(Cluster) $ENV(HOME)"


def test_a_lost_submission_is_looked_for_by_its_own_job_script_and_the_one_that_ran_is_kept():
    """Another daemon's job of the same name and manager (two daemons on one pool, both with a '_default_'
    manager) is not this job: the look-up also asks for this job's script (Cmd, in this daemon's job
    directory). The ads are the captured ones, renamed to one job's name."""
    from types import SimpleNamespace

    from pulsar_lite.managers.condor import QueuedCondorManager

    manager = QueuedCondorManager.__new__(QueuedCondorManager)
    manager.name = "_default_"
    manager.hooks = SimpleNamespace(job_directory=lambda name, job_id: SimpleNamespace(path=f"/staging/{job_id}"))
    asked = []
    idle, run = dict(ad("idle"), JobBatchName="pulsar_7"), dict(ad("run"), JobBatchName="pulsar_7")

    def call(what, method, constraint, projection, **kwargs):
        asked.append((method, constraint))
        return [idle, run] if method == "query" else []

    manager._call = call
    assert manager.find_submission("7", "pulsar_7", 1796376500.7) == [str(run["ClusterId"]), str(idle["ClusterId"])]
    assert [method for method, _ in asked] == ["query", "history"]  # a job that ended meanwhile is found too
    assert asked[0][1] == ('PulsarLiteManager == "_default_" && JobBatchName == "pulsar_7" && QDate >= 1796376500'
                           ' && Cmd == "/staging/7/command.sh"')
