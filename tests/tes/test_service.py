"""TES tasks as jobs of the engine, without containers: ids, recovery of a task created but not submitted."""
from pulsar_lite import wire
from pulsar_lite.tes import TesService, is_task_id

M = wire.DEFAULT_MANAGER


def service(engine_factory, **app):
    engine = engine_factory(tes_container_command="/bin/false", **app)
    return engine, TesService(engine, engine.config)


def test_task_ids_never_collide_with_pulsar_job_ids(engine_factory):
    engine, tes = service(engine_factory)
    task_id = tes.create({"executors": [{"image": "busybox", "command": ["true"]}]})
    assert is_task_id(task_id) and wire.valid_job_id(task_id)
    assert wire.reserved_job_id(task_id) is not None  # the Pulsar faces refuse it
    assert engine.store.get(M, task_id) is not None


def test_a_task_created_but_not_submitted_is_submitted_at_the_restart(engine_factory):
    engine, tes = service(engine_factory)
    task_id = "tes-" + "0" * 32
    document = tes_document = {"executors": [{"image": "busybox", "command": ["true"]}]}
    from pulsar_lite.tes.protocol import read_task
    task = read_task(tes_document)
    task["system_logs"] = []
    engine.setup(M, task_id, assign_id=False)
    engine.store.put_task(task_id, M, 1.0, None, task)  # the daemon died here, before the submit
    assert engine.store.get(M, task_id).state == wire.SETUP
    tes.recover()
    assert engine.store.get(M, task_id).state != wire.SETUP
    assert document


def test_strict_backend_parameters_fail_the_task(engine_factory):
    engine, tes = service(engine_factory)
    task_id = tes.create({"executors": [{"image": "busybox", "command": ["true"]}],
                          "resources": {"backend_parameters": {"gpu": "a100"}, "backend_parameters_strict": True}})
    assert tes.get(task_id, "MINIMAL")["state"] == "SYSTEM_ERROR"
    full = tes.get(task_id, "FULL")
    assert any("gpu" in line for line in full["logs"][0]["system_logs"])
    assert "backend_parameters" not in full["resources"]  # unsupported keys are neither stored nor returned


def test_mounted_paths_the_runtimes_would_split_are_refused_at_create(engine_factory):
    import pytest

    from pulsar_lite.errors import BadRequest
    engine, tes = service(engine_factory)
    run = [{"image": "busybox", "command": ["true"]}]
    for document, reason in [
            ({"volumes": ["/srv,/home:/h:rw"]}, "may not hold ':', ','"),
            ({"volumes": ["/a:b"]}, "may not hold"),
            ({"inputs": [{"path": "/in/a,b", "content": "x"}]}, "may not hold"),
            ({"inputs": [{"path": "/in/a\tb", "content": "x"}]}, "control character"),
            ({"outputs": [{"path": "/out,x/o.txt", "url": "http://h/o"}]}, "may not hold"),
            ({"outputs": [{"path": "/o/*.txt", "path_prefix": "o/../../..", "url": "http://h/o"}]}, "absolute"),
            ({"executors": [dict(run[0], stdout="/log:s/out")]}, "may not hold")]:
        with pytest.raises(BadRequest, match=reason):
            tes.create({"executors": run, **document})
    # a ':' or ',' where nothing is mounted (a file's own name, a working directory) is fine
    task_id = tes.create({"executors": [dict(run[0], stdout="/out/a:b,c.log", workdir="/w:x")],
                          "outputs": [{"path": "/out/x:y.txt", "url": "http://h/o"}]})
    assert is_task_id(task_id)


# Outputs after the executors ended (issue 27, item 6): sent whether they succeeded or not, as Funnel does.

def test_outputs_are_sent_after_an_executor_failed_and_the_missing_ones_noted(tes_service, tmp_path):
    from tests.tes.conftest import executor, finished
    engine, tes = tes_service()
    sent = tmp_path / "sent"
    task_id = tes.create({"executors": [executor("echo partial > $ROOT/work/.command.err; echo 2 > "
                                                 "$ROOT/work/.exitcode; exit 2"), executor("echo never")],
                          "outputs": [{"path": "/work/.command.err", "url": f"file://{sent}/err"},
                                      {"path": "/work/.exitcode", "url": f"file://{sent}/exitcode"},
                                      {"name": "result", "path": "/work/result.txt", "url": f"file://{sent}/r"}]})
    done = finished(tes, task_id)
    assert done["state"] == "EXECUTOR_ERROR"
    assert [entry.get("exit_code") for entry in done["logs"][0]["logs"]] == [2]
    assert (sent / "err").read_text() == "partial\n" and (sent / "exitcode").read_text() == "2\n"
    assert not (sent / "r").exists()
    assert sorted(o["path"] for o in done["logs"][0]["outputs"]) == ["/work/.command.err", "/work/.exitcode"]
    notes = [line for line in done["logs"][0]["system_logs"] if "not sent" in line]
    assert notes == ["outputs not sent, the executors did not create them: output result (/work/result.txt)"]


def test_a_missing_file_output_of_a_complete_task_is_a_system_error(tes_service, tmp_path):
    from tests.tes.conftest import executor, finished
    engine, tes = tes_service()
    sent = tmp_path / "sent"
    task_id = tes.create({"executors": [executor("mkdir -p $ROOT/d/sub")],
                          "outputs": [{"path": "/o/missing.txt", "url": f"file://{sent}/m"},
                                      {"path": "/d", "url": f"file://{sent}/d", "type": "DIRECTORY"},
                                      {"path": "/w/*.txt", "path_prefix": "/w", "url": f"file://{sent}/w"}]})
    done = finished(tes, task_id)
    assert done["state"] == "SYSTEM_ERROR"
    system_logs = done["logs"][0]["system_logs"]
    assert any("output 0 (/o/missing.txt): the executors did not create it" in line for line in system_logs)
    # the empty directory and the wildcard matching nothing are no error of their own
    assert not any("/d)" in line or "/w/" in line for line in system_logs), system_logs
    assert list(sent.iterdir()) == []


def test_an_empty_directory_and_a_wildcard_matching_nothing_leave_a_task_complete(tes_service, tmp_path):
    from tests.tes.conftest import executor, finished
    engine, tes = tes_service()
    sent = tmp_path / "sent"
    task_id = tes.create({"executors": [executor("mkdir -p $ROOT/w/sub/deeper && echo a > $ROOT/w/sub/deeper/a.txt"
                                                 " && echo b > $ROOT/w/b.txt")],
                          "outputs": [{"path": "/d", "url": f"file://{sent}/d", "type": "DIRECTORY"},
                                      {"path": "/w/*.none", "path_prefix": "/w", "url": f"file://{sent}/none"},
                                      {"path": "/w/*", "path_prefix": "/w", "url": f"file://{sent}/w"}]})
    done = finished(tes, task_id)
    assert done["state"] == "COMPLETE", done["logs"][0]["system_logs"]
    # a wildcard match that is a directory is sent as a DIRECTORY output is
    assert sorted(o["path"] for o in done["logs"][0]["outputs"]) == ["/w/b.txt", "/w/sub/deeper/a.txt"]
    assert (sent / "w" / "sub" / "deeper" / "a.txt").read_text() == "a\n" and (sent / "w" / "b.txt").exists()


# Paths directly under the container's / (issue 27, item 7)

def test_inputs_outputs_streams_and_volumes_directly_under_root(tes_service, tmp_path):
    from tests.tes.conftest import executor, finished
    engine, tes = tes_service()
    sent = tmp_path / "sent"
    task_id = tes.create({"executors": [executor("tr a-z A-Z < $ROOT/in.txt > $ROOT/out.txt; echo logged",
                                                 stdout="/log.txt"),
                                        executor("cat $ROOT/log.txt > $ROOT/v/copy")],
                          "inputs": [{"path": "/in.txt", "content": "shout"}],
                          "outputs": [{"path": "/out.txt", "url": f"file://{sent}/out.txt"},
                                      {"path": "/log.txt", "url": f"file://{sent}/log.txt"},
                                      {"path": "/v/copy", "url": f"file://{sent}/copy"},
                                      {"path": "/v/*", "path_prefix": "/", "url": f"file://{sent}/all"}],
                          "volumes": ["/v"]})
    done = finished(tes, task_id)
    assert done["state"] == "COMPLETE", done["logs"][0]["system_logs"]
    assert (sent / "out.txt").read_text() == "SHOUT" and (sent / "log.txt").read_text() == "logged\n"
    assert (sent / "copy").read_text() == "logged\n" and (sent / "all" / "v" / "copy").exists()


def test_a_file_output_directly_under_root_no_executor_wrote_is_not_created(tes_service, tmp_path):
    from tests.tes.conftest import executor, finished
    engine, tes = tes_service()
    sent = tmp_path / "sent"
    outputs = [{"path": "/out.txt", "url": f"file://{sent}/out.txt"},
               {"path": "/empty.txt", "url": f"file://{sent}/empty.txt"}]
    done = finished(tes, tes.create({"executors": [executor(": > $ROOT/empty.txt")], "outputs": outputs}))
    assert done["state"] == "SYSTEM_ERROR"
    assert any("output 0 (/out.txt): the executors did not create it" in line for line in done["logs"][0]["system_logs"])
    assert (sent / "empty.txt").read_text() == ""  # made empty by an executor: sent
    done = finished(tes, tes.create({"executors": [executor("exit 5")], "outputs": outputs}))
    assert done["state"] == "EXECUTOR_ERROR"
    assert "outputs not sent, the executors did not create them: output 0 (/out.txt), output 1 (/empty.txt)" in \
        done["logs"][0]["system_logs"]


def test_an_executor_still_running_has_no_exit_code(tes_service):
    from tests.conftest import wait_until
    engine, tes = tes_service()
    task_id = tes.create({"executors": [{"image": "busybox", "command": ["sleep", "30"]}], "volumes": ["/v"]})
    logs = wait_until(lambda: tes.get(task_id, "BASIC")["logs"][0].get("logs"), what="the executor started")
    assert "start_time" in logs[0] and "exit_code" not in logs[0] and "end_time" not in logs[0]
    tes.cancel(task_id)
    wait_until(lambda: tes.get(task_id, "MINIMAL")["state"] == "CANCELED", what="the task cancelled")
    assert tes.get(task_id, "BASIC")["logs"][0]["logs"][0]["exit_code"] == 143
