"""A TES task's life beyond its job's record: its final state where ListTasks filters on it, its record once
job_retention has removed the job and its files, and the end of that record."""
import os
import time

import pytest

from tests.conftest import wait_until
from tests.tes.conftest import executor, finished

from pulsar_lite import wire
from pulsar_lite.engine.retention import RetentionSweeper
from pulsar_lite.errors import NotFound
from pulsar_lite.store_tes import ACTIVE
from pulsar_lite.tes import TesService
from pulsar_lite.tes.protocol import read_task

M = wire.DEFAULT_MANAGER
DAY = 86400


def listed(tes, view="MINIMAL", **query):
    page = tes.list(view, query.pop("page_size", 256), query.pop("after", None), query.pop("name_prefix", None),
                    query.pop("state", None), query.pop("tags", {}))
    return page


def test_the_final_state_is_recorded_when_the_job_ends_and_filters_list(tes_service):
    engine, tes = tes_service()
    ok = tes.create({"name": "ok", "tags": {"p": "a"}, "executors": [executor("true")]})
    failed = tes.create({"name": "failed", "tags": {"p": "b"}, "executors": [executor("exit 3")]})
    running = tes.create({"name": "running", "tags": {"p": "a"}, "executors": [executor("sleep 30")],
                          "volumes": ["/v"]})
    finished(tes, ok), finished(tes, failed)
    wait_until(lambda: tes.get(running, "MINIMAL")["state"] == "RUNNING", what="the task running")
    assert engine.store.task_row(ok).final_state == "COMPLETE"
    assert engine.store.task_row(failed).final_state == "EXECUTOR_ERROR"
    assert engine.store.task_row(running).final_state == ACTIVE
    ids = lambda **query: [t["id"] for t in listed(tes, **query)["tasks"]]  # noqa: E731
    assert ids(state="COMPLETE") == [ok] and ids(state="EXECUTOR_ERROR") == [failed]
    assert ids(state="RUNNING") == [running] and ids(state="QUEUED") == [] and ids(state="UNKNOWN") == []
    assert ids(tags={"p": "a"}) == [ok, running] and ids(tags={"p": "a"}, state="COMPLETE") == [ok]
    assert ids(name_prefix="fail") == [failed] and ids(tags={"p": ""}) == [ok, failed, running]
    page = listed(tes, page_size=2)
    assert [t["id"] for t in page["tasks"]] == [ok, failed] and "next_page_token" in page
    from pulsar_lite.tes.protocol import read_page_token
    rest = listed(tes, page_size=2, after=read_page_token(page["next_page_token"]))
    assert [t["id"] for t in rest["tasks"]] == [running] and "next_page_token" not in rest
    assert listed(tes, view="BASIC", state="COMPLETE")["tasks"][0]["name"] == "ok"
    tes.cancel(running)
    wait_until(lambda: engine.store.task_row(running).final_state == "CANCELED", what="the cancel recorded")


def test_states_not_recorded_are_settled_at_start_up(tes_service, engine_factory):
    engine, tes = tes_service()
    done = tes.create({"tags": {"k": "v"}, "executors": [executor("exit 2")]})
    finished(tes, done)
    # as an older pulsar_lite left them: no final state, no tags; and a task whose job ended unrecorded
    engine.store._db.execute("UPDATE tes_tasks SET final_state = NULL WHERE id = ?", (done,))
    engine.store._db.execute("DELETE FROM tes_task_tags")
    old = "tes-" + "1" * 32
    task = dict(read_task({"tags": {"k": "v"}, "executors": [executor("true")]}), system_logs=[])
    engine.store.create(M, old)
    engine.store.put_task(old, M, time.time(), None, task)
    engine.store.transition(M, old, (wire.State.QUEUED, wire.State.RUNNING, wire.State.POSTPROCESSING,
                                     wire.State.COMPLETE), returncode=0)
    assert engine.store.task_row(old).final_state == ACTIVE
    assert listed(tes, state="COMPLETE")["tasks"] == [] and listed(tes, tags={"k": "v"})["tasks"] == [
        {"id": old, "state": "COMPLETE"}]
    assert tes.lifetime.settle() == 2
    assert listed(tes, state="COMPLETE")["tasks"] == [{"id": old, "state": "COMPLETE"}]
    assert listed(tes, state="EXECUTOR_ERROR", tags={"k": "v"})["tasks"] == [{"id": done, "state": "EXECUTOR_ERROR"}]
    assert tes.lifetime.settle() == 0


def test_a_swept_task_answers_from_its_record_until_its_retention_ends(tes_service, tmp_path):
    import tes as py_tes
    from tes.utils import unmarshal

    engine, tes = tes_service(job_retention=3600)
    sent = tmp_path / "sent"
    task_id = tes.create({"name": "kept", "tags": {"run": "7"}, "inputs": [{"path": "/in/a", "content": "secret"}],
                          "executors": [executor("echo out; echo $(cat $ROOT/in/a) > $ROOT/out/b; exit 4",
                                                 stdout="/out/log")],
                          "outputs": [{"path": "/out/b", "url": f"file://{sent}/b"},
                                      {"path": "/out/missing", "url": f"file://{sent}/m"}]})
    before = finished(tes, task_id)
    assert before["state"] == "EXECUTOR_ERROR" and before["logs"][0]["logs"][0]["exit_code"] == 4
    directory = engine.job_directory(M, task_id).path
    assert RetentionSweeper(engine, 3600).sweep(now=time.time() + 2 * 3600) == 1
    assert engine.store.get(M, task_id) is None and not os.path.exists(directory)
    after = tes.get(task_id, "FULL")
    assert after["state"] == "EXECUTOR_ERROR" and after["name"] == "kept" and after["tags"] == {"run": "7"}
    assert after["inputs"] == [{"path": "/in/a", "type": "FILE", "streamable": False}]  # no content kept
    assert after["creation_time"] == before["creation_time"]
    log, was = after["logs"][0], before["logs"][0]
    assert [e["exit_code"] for e in log["logs"]] == [4] and "stdout" not in log["logs"][0]
    assert log["logs"][0]["start_time"] == was["logs"][0]["start_time"] and log["end_time"] == was["end_time"]
    assert log["outputs"] == was["outputs"] and [o["path"] for o in log["outputs"]] == ["/out/b"]
    assert log["system_logs"] == was["system_logs"] and any("/out/missing" in line for line in log["system_logs"])
    assert "files_removed" in log["metadata"]
    assert "system_logs" not in tes.get(task_id, "BASIC")["logs"][0]
    assert unmarshal(after, py_tes.Task).logs[0].logs[0].exit_code == 4  # py-tes reads it
    assert tes.get(task_id, "MINIMAL") == {"id": task_id, "state": "EXECUTOR_ERROR"}
    assert [t["id"] for t in listed(tes, state="EXECUTOR_ERROR", tags={"run": "7"})["tasks"]] == [task_id]
    assert listed(tes, view="FULL")["tasks"][0]["logs"][0]["logs"][0]["exit_code"] == 4
    # then tes_task_record_retention (30 days by default) after the files went, the record goes too
    assert tes.lifetime.sweep(now=time.time() + 29 * DAY) == 0
    assert tes.lifetime.sweep(now=time.time() + 31 * DAY) == 1
    with pytest.raises(NotFound):
        tes.get(task_id, "MINIMAL")
    assert listed(tes)["tasks"] == []


def test_records_are_swept_on_the_engines_timer(tes_service):
    engine, tes = tes_service(job_retention=3600, tes_task_record_retention=1)
    task_id = tes.create({"executors": [executor("true")]})
    finished(tes, task_id)
    RetentionSweeper(engine, 3600).sweep(now=time.time() + 2 * 3600)
    assert tes.get(task_id, "MINIMAL")["state"] == "COMPLETE"
    tes.recover()  # the daemon's start-up starts the sweep: every second here (a tenth of 1 s, at least 1 s)
    wait_until(lambda: engine.store.task_row(task_id) is None, timeout=10, what="the record swept")


def test_a_task_never_submitted_is_kept_as_a_system_error(engine_factory):
    engine = engine_factory(tes_container_command="/bin/false", job_retention=3600)
    tes = TesService(engine, engine.config)
    task_id = "tes-" + "2" * 32
    engine.setup(M, task_id, assign_id=False)
    engine.store.put_task(task_id, M, time.time(), None,
                          dict(read_task({"executors": [executor("true")]}), system_logs=[]))
    assert RetentionSweeper(engine, 3600).sweep(now=time.time() + 2 * 3600) == 1
    full = tes.get(task_id, "FULL")
    assert full["state"] == "SYSTEM_ERROR" and "removed (job_retention) before it ran" in full["logs"][0]["system_logs"][-1]


def test_a_basic_user_cannot_see_another_users_retired_task(tes_service):
    """tes-auth's ownership holds for the records job_retention leaves: get, list (every view, filtered or
    paged) and cancel answer a Basic user from their own tasks only; the tes_token administrator sees all."""
    from pulsar_lite.tes.auth import ADMIN, Caller

    engine, tes = tes_service(job_retention=3600)
    alice, bob = Caller("alice"), Caller("bob")
    hers = tes.create({"name": "hers", "tags": {"p": "x"}, "executors": [executor("true")]}, owner="alice")
    his = tes.create({"name": "his", "tags": {"p": "x"}, "executors": [executor("true")]}, owner="bob")
    admins = tes.create({"name": "admins", "tags": {"p": "x"}, "executors": [executor("true")]})
    for task_id in (hers, his, admins):
        finished(tes, task_id)
    assert RetentionSweeper(engine, 3600).sweep(now=time.time() + 2 * 3600) == 3
    assert all(engine.store.get(M, t) is None and engine.store.task_row(t).record for t in (hers, his, admins))
    for view in ("MINIMAL", "BASIC", "FULL"):
        assert tes.get(his, view, bob)["state"] == "COMPLETE"
        for other in (hers, admins):
            with pytest.raises(NotFound):
                tes.get(other, view, bob)
        for query in ({}, {"state": "COMPLETE"}, {"tags": {"p": "x"}}, {"name_prefix": "h"}):
            page = tes.list(view, 256, None, query.get("name_prefix"), query.get("state"), query.get("tags", {}),
                            caller=bob)
            assert [t["id"] for t in page["tasks"]] == [his], (view, query)
    page = tes.list("MINIMAL", 1, None, None, None, {}, caller=alice)
    assert [t["id"] for t in page["tasks"]] == [hers] and "next_page_token" not in page  # bob's is not a next page
    with pytest.raises(NotFound):
        tes.cancel(hers, bob)
    tes.cancel(his, bob)  # their own retired task: nothing to cancel, no error
    assert [t["id"] for t in tes.list("MINIMAL", 256, None, None, None, {}, caller=ADMIN)["tasks"]] == [
        hers, his, admins]
    assert tes.get(hers, "FULL", ADMIN)["name"] == "hers"


def test_a_retired_record_keeps_no_env_no_content_and_no_url_password(tes_service):
    """The record kept after the sweep holds neither the executors' env nor the inputs' content (FULL-only),
    and its URLs, outputs log and system_logs show a password masked, as the live views do."""
    engine, tes = tes_service(job_retention=3600)
    task_id = tes.create({"inputs": [{"path": "/in/a", "content": "inline-secret"}],
                          "executors": [executor("echo x > $ROOT/out/b; exit 1", env={"API_KEY": "env-secret"})],
                          "outputs": [{"path": "/out/b", "url": "ftp://u:pw-42@localhost:1/b"}]}, owner="alice")
    before = finished(tes, task_id)
    assert before["state"] == "EXECUTOR_ERROR"
    assert any("localhost" in line and "(not sent)" in line for line in before["logs"][0]["system_logs"])
    assert "pw-42" not in str(before) and before["executors"][0]["env"] == {"API_KEY": "env-secret"}  # live FULL
    assert RetentionSweeper(engine, 3600).sweep(now=time.time() + 2 * 3600) == 1
    document, record = engine.store._reader().execute(
        "SELECT document, record FROM tes_tasks WHERE id = ?", (task_id,)).fetchone()
    for secret in ("inline-secret", "env-secret", "pw-42"):
        assert secret not in document and secret not in record
    assert "alice" in document and engine.store.task_row(task_id).document["owner"] == "alice"
    full = tes.get(task_id, "FULL")
    assert full["outputs"][0]["url"] == "ftp://u:***@localhost:1/b" and "env" not in full["executors"][0]
    assert any("ftp://u:***@localhost:1/b" in line for line in full["logs"][0]["system_logs"])
