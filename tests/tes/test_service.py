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


def test_strict_backend_parameters_the_backend_does_not_support_are_a_400_at_create(engine_factory):
    import pytest

    from pulsar_lite.errors import BadRequest
    engine, tes = service(engine_factory)
    run = [{"image": "busybox", "command": ["true"]}]
    with pytest.raises(BadRequest, match="not supported here: gpu .*backend_parameters_strict.*supported: manager"):
        tes.create({"executors": run, "resources": {"backend_parameters": {"gpu": "a100", "queue": "long"},
                                                     "backend_parameters_strict": True}})
    assert engine.store.tasks_after(None, 10) == []  # nothing was set up
    # supported keys with strict, and unsupported ones without it, are accepted (those dropped and noted)
    strict = tes.create({"executors": run, "resources": {"backend_parameters": {"queue": "long"},
                                                          "backend_parameters_strict": True}})
    assert tes.get(strict, "BASIC")["resources"]["backend_parameters"] == {"queue": "long"}
    lenient = tes.create({"executors": run, "resources": {"backend_parameters": {"gpu": "a100"}}})
    full = tes.get(lenient, "FULL")
    assert any("not supported here, ignored: gpu" in line for line in full["logs"][0]["system_logs"])
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


def test_camel_case_resources_reach_the_job_and_the_views(engine_factory):
    engine, tes = service(engine_factory)
    task_id = tes.create({"executors": [{"image": "busybox", "command": ["true"]}],
                          "resources": {"cpuCores": 2, "ramGb": 1.5, "diskGb": 10}})
    assert engine.store.get(M, task_id).launch_config["submit_params"] == {"cores": 2, "memory": 1536}
    basic = tes.get(task_id, "BASIC")
    assert basic["resources"] == {"cpu_cores": 2, "ram_gb": 1.5, "disk_gb": 10, "backend_parameters_strict": False}
    system_logs = tes.get(task_id, "FULL")["logs"][0]["system_logs"]
    assert any("disk_gb (10) is accepted but not enforced" in line for line in system_logs)


def test_a_url_naming_a_refused_address_is_a_bad_request_at_create(engine_factory):
    import pytest

    from pulsar_lite.errors import BadRequest
    engine, tes = service(engine_factory)
    run = [{"image": "busybox", "command": ["true"]}]
    for document, reason in [
            ({"inputs": [{"url": "http://169.254.169.254/latest/meta-data/iam", "path": "/in/x"}]},
             r"inputs\[0\].url http://169.254.169.254/latest/meta-data/iam: 169.254.169.254 is a cloud metadata "
             r"service \(169.254.169.254/32\), refused unless tes_fetch_allowed_networks lists it"),
            ({"outputs": [{"url": "ftp://user:pw-42@127.0.0.1:2121/o", "path": "/o/x"}]},
             r"outputs\[0\].url ftp://user:\*\*\*@127.0.0.1:2121/o: 127.0.0.1 is loopback"),
            ({"inputs": [{"url": "https://[::1]/x", "path": "/in/x"}]}, "::1 is loopback")]:
        with pytest.raises(BadRequest, match=reason) as info:
            tes.create({"executors": run, **document})
        assert "pw-42" not in str(info.value)
    # a name is judged when it is connected to; a private address is allowed by default
    for url in ("http://localhost/x", "http://10.0.0.1/x", "ftp://192.168.1.1/x"):
        assert is_task_id(tes.create({"executors": run, "inputs": [{"url": url, "path": "/in/x"}]}))


def test_the_operator_opens_the_loopback_and_closes_private_networks(engine_factory):
    import pytest

    from pulsar_lite.errors import BadRequest
    engine, tes = service(engine_factory, tes_fetch_allowed_networks=["127.0.0.0/8"],
                          tes_fetch_denied_networks=["private"])
    run = [{"image": "busybox", "command": ["true"]}]
    assert is_task_id(tes.create({"executors": run, "inputs": [{"url": "http://127.0.0.1:1/x", "path": "/in/x"}]}))
    with pytest.raises(BadRequest, match="10.1.2.3 is private .10.0.0.0/8., refused by tes_fetch_denied_networks"):
        tes.create({"executors": run, "outputs": [{"url": "http://10.1.2.3/o", "path": "/o/x"}]})


def test_a_urls_password_shows_in_no_view_no_system_log_and_no_log_line(engine_factory, caplog):
    import json
    import logging

    from tests.conftest import wait_until
    caplog.set_level(logging.DEBUG)
    engine, tes = service(engine_factory, preprocess_action_max_retries=-1)
    task_id = tes.create({"executors": [{"image": "busybox", "command": ["true"]}],
                          "inputs": [{"url": "ftp://reader:pw-in-77@data.invalid/in.txt", "path": "/in/x"}],
                          "outputs": [{"url": "https://tok-88@store.invalid/o", "path": "/o/x"}]})
    wait_until(lambda: tes.get(task_id, "MINIMAL")["state"] == "SYSTEM_ERROR", what="the failed staging")
    for view in ("BASIC", "FULL"):
        shown = tes.get(task_id, view)
        assert "pw-in-77" not in json.dumps(shown) and "tok-88" not in json.dumps(shown)
        assert shown["inputs"][0]["url"] == "ftp://reader:***@data.invalid/in.txt"
        assert shown["outputs"][0]["url"] == "https://***@store.invalid/o"
    system_logs = tes.get(task_id, "FULL")["logs"][0]["system_logs"]
    assert any("ftp://reader:***@data.invalid/in.txt" in line for line in system_logs), system_logs
    assert "pw-in-77" not in caplog.text and "data.invalid" in caplog.text
    assert tes.document(task_id)["inputs"][0]["url"].startswith("ftp://reader:pw-in-77@")  # kept, to be used
