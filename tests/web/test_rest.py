"""The REST face in-process: routes, parameters, auth and bad input."""
import json
import os
import time

import pytest
from webob import Request

from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from pulsar_lite.engine.filecache import FileCache
from pulsar_lite.web import RestApp


@pytest.fixture
def make_app(tmp_path):
    engines = []

    def make(**app):
        raw = {"staging_directory": str(tmp_path / "staging"), "persistence_directory": str(tmp_path / "p")}
        raw.update(app)
        config = build_config(raw)
        engine = JobEngine(config)
        engine.start()
        engines.append(engine)
        cache = FileCache(config.file_cache_dir, engine.store) if config.file_cache_dir else None
        return RestApp(engine, file_cache=cache)

    yield make
    for engine in engines:
        engine.stop()


@pytest.fixture
def app(make_app):
    return make_app()


def call(app, method, url_path, body=None, headers=None, **params):
    from urllib.parse import urlencode
    query = urlencode(params)
    request = Request.blank(url_path + ("?" + query if query else ""), method=method, headers=headers or {})
    if body is not None:
        request.body = body
        request.content_type = "application/x-www-form-urlencoded"  # what urllib sends
    return request.get_response(app)


def wait_state(app, job_id, states, timeout=10, manager=""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = json.loads(call(app, "GET", f"{manager}/jobs/{job_id}/status").body)
        if status["status"] in states:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} stuck in {status['status']}")


def test_setup_reply_shape(app, tmp_path):
    response = call(app, "POST", "/jobs", job_id="42", tool_id="cat1", tool_version="1.0")
    assert response.status_int == 200
    reply = json.loads(response.body)
    base = str(tmp_path / "staging" / "42")
    assert reply["job_directory"] == base
    assert reply["working_directory"] == base + "/working"
    assert reply["tools_directory"] == base + "/tool_files"
    assert reply["system_properties"]["separator"] == "/"
    assert reply["pulsar_version"] == "0.16.0"
    assert reply["tool_id"] == "cat1" and reply["job_id"] == "42"
    for sub in ("inputs", "working", "outputs", "configs", "tool_files", "metadata"):
        assert os.path.isdir(os.path.join(base, sub))


def test_full_job_over_rest(app):
    call(app, "POST", "/jobs", job_id="7")
    body = b"hello\x00world" * 1000
    response = call(app, "POST", "/jobs/7/files", body=body, name="sub/in.dat", type="input")
    path = json.loads(response.body)["path"]
    assert path.endswith("/7/inputs/sub/in.dat") and open(path, "rb").read() == body
    command = f"cat {path} > ../outputs/out.dat; echo tool-out > ../metadata/tool_stdout; exit 3"
    assert call(app, "POST", "/jobs/7/submit", command_line=command, params="{}").body == b"OK"
    status = wait_state(app, "7", {"complete"})
    assert status["complete"] == "true" and status["returncode"] == 3
    assert status["stdout"] == "tool-out\n"
    assert "out.dat" in status["outputs_directory_contents"]
    assert "command.sh" in status["job_directory_contents"]
    script = os.path.join(status["job_directory"], "command.sh")
    assert os.stat(script).st_mode & 0o777 == 0o700
    download = call(app, "GET", "/jobs/7/files", name="out.dat", type="output")
    assert download.status_int == 200 and download.body == body
    assert call(app, "DELETE", "/jobs/7").body == b"OK"
    assert json.loads(call(app, "GET", "/jobs/7/status").body)["status"] == "lost"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_download_output_edges(app, tmp_path):
    from pulsar_lite import fsutil
    call(app, "POST", "/jobs", job_id="dl")
    outputs = tmp_path / "staging" / "dl" / "outputs"
    big = os.urandom(fsutil.CHUNK * 2 + 123)
    (outputs / "big.dat").write_bytes(big)
    (outputs / "empty.dat").write_bytes(b"")
    (outputs / "adir").mkdir()
    os.mkfifo(outputs / "fifo")  # a job may leave one: it must neither block nor be served
    before = open_descriptors()
    download = call(app, "GET", "/jobs/dl/files", name="big.dat", type="output")
    assert download.status_int == 200 and download.content_length == len(big) and download.body == big
    empty = call(app, "GET", "/jobs/dl/files", name="empty.dat", type="output")
    assert empty.status_int == 200 and empty.body == b""
    for name in ("missing.dat", "adir", "fifo"):
        response = call(app, "GET", "/jobs/dl/files", name=name, type="output")
        assert response.status_int == 404 and name in response.text
    unread = app(Request.blank("/jobs/dl/files?name=big.dat&type=output").environ, lambda *args: None)
    assert open_descriptors() == before + 1
    unread.close()  # a server that closes the body unread (the client went away)
    assert open_descriptors() == before and list(unread) == []  # read to the end, refused, or unread: closed


def test_query_string_parsing(app):
    from pulsar_lite.web.handlers import query
    parsed = query(Request.blank("/x?a=1&b=x+y%2Bz;c=%C3%A9&a=2&empty=&d=\u00e9".encode().decode("latin-1")))
    assert parsed == {"a": "2", "b": "x y+z", "c": "\u00e9", "empty": "", "d": "\u00e9"}
    response = call(app, "POST", "/jobs/x/files", body=b"x", name="a", type="input")
    assert response.status_int == 200
    bad = Request.blank("/jobs", method="POST")
    bad.environ["QUERY_STRING"] = "job_id=%FF"
    response = bad.get_response(app)
    assert response.status_int == 400 and "UTF-8" in response.text


@pytest.mark.parametrize("text", ["", "a", "a=", "=v", "a=1&&b=2", "a=1;b=2&a=3", "x+y=%2B+%20", "k=%e2%82%ac",
                                  "k=%", "k=%zz", "k=%2", "q=a=b", "%41=%42", "\u00e9=\u00e8", "a=+&b=++c"])
def test_query_parsing_matches_the_standard_library(text):
    from urllib.parse import parse_qsl

    from pulsar_lite.web.handlers import parse_query
    raw = text.encode().decode("latin-1")  # PEP 3333: the query's bytes as latin-1
    expected = dict(parse_qsl(text.replace(";", "&"), keep_blank_values=True, errors="strict"))
    assert parse_query(raw) == expected
    if "%2" not in text.replace("%2B", "").replace("%20", ""):  # webob reads a lone "%2" as "\x02"
        assert parse_query(raw) == dict(Request({"QUERY_STRING": raw}).GET)


def test_path_that_is_not_utf8_is_a_400(app):
    request = Request.blank("/jobs/x/status")
    request.environ["PATH_INFO"] = "/jobs/\xff/status"
    response = request.get_response(app)
    assert response.status_int == 400 and "UTF-8" in response.text


def test_finished_status_is_built_once_per_record(app, monkeypatch):
    from pulsar_lite.engine import engine as engine_module
    built = []
    real = engine_module.status_payload
    monkeypatch.setattr(engine_module, "status_payload", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    call(app, "POST", "/jobs", job_id="f")
    call(app, "POST", "/jobs/f/submit", command_line="echo first")
    first = wait_state(app, "f", {"complete"})
    count = len(built)
    again = json.loads(call(app, "GET", "/jobs/f/status").body)
    assert again == first and first["job_stdout"] == "first\n" and len(built) == count  # the repeat poll: no rebuild
    # the same id run again: a new record, so a new payload
    call(app, "POST", "/jobs", job_id="f")
    call(app, "POST", "/jobs/f/submit", command_line="echo second")
    assert wait_state(app, "f", {"complete"})["job_stdout"] == "second\n"
    # cleaned: the job is unknown again, not its old finished self
    call(app, "DELETE", "/jobs/f")
    assert json.loads(call(app, "GET", "/jobs/f/status").body)["status"] == "lost"


def test_unknown_job_is_lost_in_full_shape(app):
    status = json.loads(call(app, "GET", "/jobs/nope/status").body)
    assert status["status"] == "lost" and status["complete"] == "true" and status["returncode"] is None
    assert status["working_directory_contents"] == []


def test_status_answers_any_method(app):
    assert call(app, "POST", "/jobs/x/status").status_int == 200


def test_cancel_running_job_kills_process_group(app):
    call(app, "POST", "/jobs", job_id="k")
    call(app, "POST", "/jobs/k/submit", command_line="sleep 60 & sleep 60")
    wait_state(app, "k", {"running"})
    started = time.time()
    call(app, "PUT", "/jobs/k/cancel")
    status = wait_state(app, "k", {"cancelled"})
    assert time.time() - started < 5
    assert status["returncode"] == -15


def test_managers_prefix_and_unknown_manager(make_app):
    app = make_app(managers={"_default_": {}, "big": {"num_concurrent_jobs": 2}})
    assert call(app, "POST", "/managers/big/jobs", job_id="1").status_int == 200
    call(app, "POST", "/managers/big/jobs/1/submit", command_line="true")
    assert wait_state(app, "1", {"complete"}, manager="/managers/big")["returncode"] == 0
    response = call(app, "POST", "/managers/nosuch/jobs", job_id="1")
    assert response.status_int == 404 and b"unknown manager" in response.body


@pytest.mark.parametrize("job_id", ["..", ".", "a/b", "a\x00b", "/etc", " x"])
def test_bad_job_ids(app, job_id):
    response = call(app, "POST", "/jobs", job_id=job_id)
    assert response.status_int == 400
    assert len(response.body.splitlines()) == 1


def test_dotdot_job_id_in_path_cannot_delete_outside(app, tmp_path):
    (tmp_path / "precious").write_text("x")
    response = call(app, "DELETE", "/jobs/%2E%2E")
    assert response.status_int in (400, 404)
    assert (tmp_path / "precious").exists()


@pytest.mark.parametrize("name,file_type", [
    ("../../evil", "input"), ("/etc/passwd", "input"), ("a/../../b", "tool"), ("x\x00y", "input"),
    ("sub/../../evil", "config"), ("..", "workdir"),
])
def test_bad_file_names(app, tmp_path, name, file_type):
    call(app, "POST", "/jobs", job_id="9")
    response = call(app, "POST", "/jobs/9/files", body=b"data", name=name, type=file_type)
    assert response.status_int == 400, response.body
    assert not (tmp_path / "evil").exists() and not (tmp_path / "staging" / "evil").exists()


def test_unknown_type_and_missing_params(app):
    call(app, "POST", "/jobs", job_id="9")
    assert call(app, "POST", "/jobs/9/files", body=b"x", name="a", type="bogus").status_int == 400
    assert call(app, "POST", "/jobs/9/files", body=b"x", type="input").status_int == 400
    assert call(app, "POST", "/jobs").status_int == 400
    assert call(app, "POST", "/jobs/9/submit").status_int == 400
    assert call(app, "GET", "/jobs/9/files", name="../../../etc/passwd").status_int == 400
    assert call(app, "GET", "/jobs/9/files", name="missing.dat").status_int == 404


def test_symlink_escape_is_refused(app, tmp_path):
    call(app, "POST", "/jobs", job_id="s")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    os.symlink(outside, tmp_path / "staging" / "s" / "outputs" / "link")
    os.symlink(outside, tmp_path / "staging" / "s" / "inputs" / "link")
    assert call(app, "GET", "/jobs/s/files", name="link/secret").status_int == 400
    assert call(app, "POST", "/jobs/s/files", body=b"x", name="link/new", type="input").status_int == 400
    assert not (outside / "new").exists()


def test_download_never_serves_a_file_outside_the_job_directory(app, tmp_path, monkeypatch):
    """An output may be a symlink within the job directory (served), never one out of it, even one the job
    swaps in after any check the daemon made (refused with a one-line 400, and the daemon goes on)."""
    call(app, "POST", "/jobs", job_id="sw")
    secret = tmp_path / "app.yml"
    secret.write_text("private_token: s3cret-17\n")
    job = tmp_path / "staging" / "sw"
    (job / "working" / "real.txt").write_bytes(b"in the job")
    (job / "outputs" / "out.dat").write_bytes(b"output")
    os.symlink("../working/real.txt", job / "outputs" / "inside.dat")
    served = call(app, "GET", "/jobs/sw/files", name="inside.dat", type="output")
    assert served.status_int == 200 and served.body == b"in the job"
    real_open = os.open

    def racing_open(path, flags, *args, **kwargs):
        if os.path.basename(os.fspath(path)) == "out.dat" and not os.path.islink(job / "outputs" / "out.dat"):
            os.unlink(job / "outputs" / "out.dat")  # the job's move, right before the daemon's open
            os.symlink(secret, job / "outputs" / "out.dat")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", racing_open)
    response = call(app, "GET", "/jobs/sw/files", name="out.dat", type="output")
    monkeypatch.undo()
    assert os.path.islink(job / "outputs" / "out.dat")  # the swap happened
    assert response.status_int == 400 and b"s3cret" not in response.body
    assert "outside" in response.text and response.text.count("\n") == 1
    assert call(app, "GET", "/jobs/sw/files", name="out.dat", type="output").status_int == 400
    assert call(app, "GET", "/jobs/sw/files", name="inside.dat", type="output").body == b"in the job"


def test_token_query_and_bearer(make_app):
    app = make_app(private_token="t0ken")
    assert call(app, "POST", "/jobs", job_id="1").status_int == 401
    assert call(app, "POST", "/jobs", job_id="1", private_token="wrong").status_int == 401
    assert call(app, "POST", "/jobs", job_id="1", private_token="t0ken").status_int == 200
    assert call(app, "GET", "/jobs/1/status", headers={"Authorization": "Bearer t0ken"}).status_int == 200
    assert call(app, "GET", "/healthz").status_int == 200


def test_oversized_body(make_app):
    app = make_app(max_upload_size=100)
    call(app, "POST", "/jobs", job_id="1")
    response = call(app, "POST", "/jobs/1/files", body=b"x" * 101, name="a", type="input")
    assert response.status_int == 413
    assert call(app, "POST", "/jobs/1/files", body=b"x" * 100, name="a", type="input").status_int == 200


def test_upload_after_submit_conflicts(app):
    call(app, "POST", "/jobs", job_id="c")
    call(app, "POST", "/jobs/c/submit", command_line="sleep 5")
    assert call(app, "POST", "/jobs/c/files", body=b"x", name="a", type="input").status_int == 409
    call(app, "PUT", "/jobs/c/cancel")


def test_setup_of_finished_id_starts_clean(app, tmp_path):
    call(app, "POST", "/jobs", job_id="r")
    call(app, "POST", "/jobs/r/files", body=b"old", name="stale.dat", type="input")
    call(app, "POST", "/jobs/r/submit", command_line="true")
    wait_state(app, "r", {"complete"})
    call(app, "POST", "/jobs", job_id="r")
    assert not (tmp_path / "staging" / "r" / "inputs" / "stale.dat").exists()
    assert json.loads(call(app, "GET", "/jobs/r/status").body)["status"] == "preprocessing"


def test_duplicate_submit_is_ignored(app):
    call(app, "POST", "/jobs", job_id="d")
    call(app, "POST", "/jobs/d/submit", command_line="echo 1 >> ../outputs/count")
    wait_state(app, "d", {"complete"})
    call(app, "POST", "/jobs/d/submit", command_line="echo 1 >> ../outputs/count")
    time.sleep(0.3)
    assert call(app, "GET", "/jobs/d/files", name="count").body == b"1\n"


def test_cache_routes(make_app, tmp_path):
    app = make_app(file_cache_dir=str(tmp_path / "cache"))
    assert json.loads(call(app, "PUT", "/cache", path="/gx/a.dat").body) is True
    assert json.loads(call(app, "PUT", "/cache", path="/gx/a.dat").body) is False
    status = json.loads(call(app, "GET", "/cache/status", path="/gx/a.dat").body)
    assert status["ready"] is False
    call(app, "POST", "/cache", body=b"cached!", path="/gx/a.dat")
    status = json.loads(call(app, "GET", "/cache/status", path="/gx/a.dat").body)
    assert status["ready"] is True
    call(app, "POST", "/jobs", job_id="1")
    reply = json.loads(call(app, "POST", "/jobs/1/files", name="a.dat", type="input",
                            cache_token=status["token"]).body)
    assert open(reply["path"], "rb").read() == b"cached!"


def test_cache_routes_without_cache_dir(app):
    response = call(app, "PUT", "/cache", path="/x")
    assert response.status_int == 400 and b"file_cache_dir" in response.body


def test_object_store_routes_answer_clearly(app):
    response = call(app, "GET", "/objects/1/exists")
    assert response.status_int == 400 and b"object store" in response.body


def test_unknown_route_is_404(app):
    assert call(app, "GET", "/nope").status_int == 404
    assert call(app, "GET", "/jobs/1/cancel").status_int == 405


def test_job_env_is_clean_and_has_galaxy_dirs(app, monkeypatch):
    monkeypatch.setenv("LEAKED_SECRET", "1")
    call(app, "POST", "/jobs", job_id="e")
    env = json.dumps([{"name": "MOO", "value": 'c"ow'}, {"name": "RAW", "value": "$HOME", "raw": True}])
    command = ('echo "$LEAKED_SECRET|$MOO|$_GALAXY_JOB_TMP_DIR|$_GALAXY_JOB_HOME_DIR|$GALAXY_SLOTS|$(pwd)" '
               '> ../outputs/env; [ -d "$_GALAXY_JOB_TMP_DIR" ] && [ -d "$_GALAXY_JOB_HOME_DIR" ]')
    call(app, "POST", "/jobs/e/submit", command_line=command, env=env)
    status = wait_state(app, "e", {"complete"})
    assert status["returncode"] == 0
    leaked, moo, tmp, home, slots, cwd = call(app, "GET", "/jobs/e/files", name="env").body.decode().strip().split("|")
    assert leaked == "" and moo == 'c"ow' and slots == "1"
    assert tmp.endswith("/e/tmp") and home.endswith("/e/home") and cwd.endswith("/e/working")


def test_stream_cap_in_status(app):
    call(app, "POST", "/jobs", job_id="big")
    command = "python3 -c \"print('a' * 200000 + 'END')\" > ../metadata/tool_stdout"
    call(app, "POST", "/jobs/big/submit", command_line=command)
    status = wait_state(app, "big", {"complete"})
    assert len(status["stdout"].encode()) <= 64 * 1024
    assert status["stdout"].startswith("aaa") and status["stdout"].rstrip().endswith("END")


def test_clean_waits_for_the_disk_only_for_an_active_job(app):
    """Cleaning a finished job need not be durable (a lost delete only brings back a terminal record);
    cleaning an active job must be, or a crash would let the restart take the job up again."""
    sync = app.engine.store._sync
    call(app, "POST", "/jobs", job_id="done")
    call(app, "POST", "/jobs/done/submit", command_line="true")
    wait_state(app, "done", ("complete",))
    assert call(app, "DELETE", "/jobs/done").body == b"OK"
    assert app.engine.store.get("_default_", "done") is None
    assert sync._synced < sync._committed  # the delete returned before its commit reached the disk
    call(app, "POST", "/jobs", job_id="busy")
    call(app, "POST", "/jobs/busy/submit", command_line="sleep 60")
    wait_state(app, "busy", ("running",))
    assert call(app, "DELETE", "/jobs/busy").body == b"OK"
    assert app.engine.store.get("_default_", "busy") is None
    assert sync._synced == sync._committed  # every commit, the delete's last, is on disk


def test_setup_is_not_waited_for_but_submit_makes_it_durable(app):
    sync = app.engine.store._sync
    call(app, "POST", "/jobs", job_id="promise")
    setup_ticket = sync._committed
    assert sync._synced < setup_ticket  # the setup reply did not wait for the disk
    assert call(app, "POST", "/jobs/promise/submit", command_line="true").body == b"OK"
    assert sync._synced >= setup_ticket + 1  # the queued commit, and the setup before it, are on disk
    assert call(app, "POST", "/jobs/never-set-up/submit", command_line="true").status_int == 404


def test_readyz_says_when_recovery_has_finished(app):
    assert app.engine.wait_recovered(10)
    response = call(app, "GET", "/readyz")
    assert response.status_int == 200 and response.json["ready"] is True
    assert response.json["recovery"] == {"jobs": 0, "remaining": 0, "finished": True}
    app.engine.recovery.finished.clear()
    app.engine.recovery.total = 5
    app.engine.recovery.done = 2
    response = call(app, "GET", "/readyz")
    assert response.status_int == 503 and response.json["waiting"] == ["recovering 3 of 5 job(s)"]
