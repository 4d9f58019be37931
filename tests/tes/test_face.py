"""The TES face in-process, through the REST face's WSGI app: errors before and around authentication, who
may use it and which tasks each caller sees."""
import base64
import json
import time

from webob import Request

from pulsar_lite.tes import TesService, passwords
from pulsar_lite.web import RestApp


def tes_app(engine_factory, **app):
    engine = engine_factory(private_token="t0ken", tes_container_command="/bin/false", **app)
    engine.tes = TesService(engine, engine.config)
    return RestApp(engine)


def test_a_query_string_that_is_not_utf8_is_a_bad_request_not_an_internal_error(engine_factory):
    app = tes_app(engine_factory)
    for path in ("/ga4gh/tes/v1/tasks?private_token=%ff", "/ga4gh/tes/v1/service-info?view=%ff",
                 "/ga4gh/tes/v1/tasks?view=%c3%28"):
        response = Request.blank(path).get_response(app)
        assert response.status_int == 400, (path, response.body)
        assert response.json == {"message": "the query string is not valid UTF-8", "status_code": 400}
    # and the face goes on answering
    ok = Request.blank("/ga4gh/tes/v1/tasks", headers={"Authorization": "Bearer t0ken"}).get_response(app)
    assert ok.status_int == 200 and ok.json["tasks"] == []
    assert Request.blank("/ga4gh/tes/v1/tasks?private_token=wrong").get_response(app).status_int == 401


# -- who may use it: tes_token, tes_users_file ------------------------------------------------------------------
RUN = {"executors": [{"image": "busybox", "command": ["true"], "env": {"API_KEY": "s3cret-env"}}],
       "inputs": [{"path": "/in/conf", "content": "s3cret-content"}]}


def basic(name: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


BEARER = {"Authorization": "Bearer tes-admin"}
ALICE, BOB = basic("alice", "alice-pw"), basic("bob", "bob-pw")


def users_app(engine_factory, tmp_path, **app):
    users = tmp_path / "tes_users"
    for name in ("alice", "bob"):
        passwords.write_user(str(users), name, passwords.hash_password(f"{name}-pw", iterations=1000))
    return tes_app(engine_factory, tes_token="tes-admin", tes_users_file=str(users), **app)


def call(app, method: str, path: str, headers: dict, body=None):
    request = Request.blank(path, method=method, headers=headers)
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    return request.get_response(app)


def test_the_pulsar_token_does_not_open_tes_once_tes_has_its_own_credentials(engine_factory, tmp_path):
    app = users_app(engine_factory, tmp_path)
    for headers, path in (({"Authorization": "Bearer t0ken"}, "/ga4gh/tes/v1/tasks"),
                          ({}, "/ga4gh/tes/v1/tasks?private_token=t0ken")):
        refused = call(app, "GET", path, headers)
        assert refused.status_int == 401 and refused.json["status_code"] == 401
        assert refused.headers.getall("WWW-Authenticate") == [
            'Bearer realm="pulsar_lite TES"', 'Basic realm="pulsar_lite TES", charset="UTF-8"']
    assert call(app, "GET", "/ga4gh/tes/v1/tasks", BEARER).status_int == 200
    assert call(app, "GET", "/ga4gh/tes/v1/tasks", ALICE).status_int == 200
    # and the TES credentials open no Pulsar route, which the Pulsar token still opens
    assert call(app, "GET", "/jobs/1/status", BEARER).status_int == 401
    assert call(app, "GET", "/jobs/1/status", ALICE).status_int == 401
    assert call(app, "GET", "/jobs/1/status", {"Authorization": "Bearer t0ken"}).status_int != 401


def test_without_tes_credentials_the_pulsar_token_opens_tes_as_before(engine_factory):
    app = tes_app(engine_factory)
    assert call(app, "GET", "/ga4gh/tes/v1/tasks", {"Authorization": "Bearer t0ken"}).status_int == 200
    assert call(app, "GET", "/ga4gh/tes/v1/tasks?private_token=t0ken", {}).status_int == 200
    task_id = call(app, "POST", "/ga4gh/tes/v1/tasks", {"Authorization": "Bearer t0ken"}, RUN).json["id"]
    full = call(app, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL", {"Authorization": "Bearer t0ken"}).json
    assert full["executors"][0]["env"] == {"API_KEY": "s3cret-env"}


def test_each_basic_user_sees_gets_lists_and_cancels_only_their_own_tasks(engine_factory, tmp_path):
    app = users_app(engine_factory, tmp_path)
    mine = call(app, "POST", "/ga4gh/tes/v1/tasks", ALICE, RUN).json["id"]
    theirs = call(app, "POST", "/ga4gh/tes/v1/tasks", BOB, RUN).json["id"]
    admins = call(app, "POST", "/ga4gh/tes/v1/tasks", BEARER, RUN).json["id"]
    for view in ("MINIMAL", "BASIC", "FULL"):
        listed = call(app, "GET", f"/ga4gh/tes/v1/tasks?view={view}", ALICE).json
        assert [t["id"] for t in listed["tasks"]] == [mine], view
        assert "bob" not in json.dumps(listed) and theirs not in json.dumps(listed)
        assert [t["id"] for t in call(app, "GET", f"/ga4gh/tes/v1/tasks?view={view}", BEARER).json["tasks"]] == [
            mine, theirs, admins]
    own = call(app, "GET", f"/ga4gh/tes/v1/tasks/{mine}?view=FULL", ALICE).json
    assert own["executors"][0]["env"] == {"API_KEY": "s3cret-env"} and own["inputs"][0]["content"] == "s3cret-content"
    assert "owner" not in json.dumps(own) and "alice" not in json.dumps(own)  # kept with the task, never shown
    for other in (theirs, admins, "tes-" + "0" * 32):
        for path, method in ((f"/ga4gh/tes/v1/tasks/{other}", "GET"), (f"/ga4gh/tes/v1/tasks/{other}?view=FULL", "GET"),
                             (f"/ga4gh/tes/v1/tasks/{other}:cancel", "POST")):
            answer = call(app, method, path, ALICE)
            assert answer.status_int == 404 and answer.json == {"message": f"no TES task {other}", "status_code": 404}
    # alice's cancel did nothing
    assert call(app, "GET", f"/ga4gh/tes/v1/tasks/{theirs}", BOB).json["state"] not in ("CANCELED", "CANCELING")
    assert call(app, "POST", f"/ga4gh/tes/v1/tasks/{mine}:cancel", ALICE).status_int == 200
    assert call(app, "GET", f"/ga4gh/tes/v1/tasks/{theirs}", BEARER).status_int == 200  # the admin sees all
    # paging through one's own tasks only, whoever else has tasks in between
    more = [call(app, "POST", "/ga4gh/tes/v1/tasks", who, RUN).json["id"] for who in (BOB, ALICE, BOB, ALICE)]
    seen, token = [], ""
    while True:
        page = call(app, "GET", f"/ga4gh/tes/v1/tasks?page_size=1&page_token={token}", ALICE).json
        seen += [t["id"] for t in page["tasks"]]
        if "next_page_token" not in page:
            break
        token = page["next_page_token"]
    assert seen == [mine, more[1], more[3]]


def test_basic_credentials_are_checked_once_then_remembered(engine_factory, tmp_path):
    """pbkdf2 at its default cost on every poll would make list and get slow: measured here."""
    users = tmp_path / "slow_users"
    passwords.write_user(str(users), "carol", passwords.hash_password("carol-pw"))
    app = tes_app(engine_factory, tes_users_file=str(users))
    carol = basic("carol", "carol-pw")
    task_id = call(app, "POST", "/ga4gh/tes/v1/tasks", carol, RUN).json["id"]  # the one pbkdf2
    started = time.perf_counter()
    for _ in range(20):
        assert call(app, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=BASIC", carol).status_int == 200
        assert call(app, "GET", "/ga4gh/tes/v1/tasks", carol).status_int == 200
    per_request = (time.perf_counter() - started) / 40
    started = time.perf_counter()
    assert call(app, "GET", "/ga4gh/tes/v1/tasks", basic("carol", "wrong")).status_int == 401
    checked = time.perf_counter() - started
    assert per_request < checked / 5, (per_request, checked)  # measured: 0.1-0.3 ms against 0.14 s


def test_py_tes_with_basic_auth_and_another_user_gets_404(engine_factory, tmp_path):
    """The real py-tes client (user=, password=: HTTP Basic) against the face served over HTTP."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import pytest
    tes = pytest.importorskip("tes")
    requests = pytest.importorskip("requests")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, users_app(engine_factory, tmp_path), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        alice = tes.HTTPClient(url, user="alice", password="alice-pw", timeout=10)
        bob = tes.HTTPClient(url, user="bob", password="bob-pw", timeout=10)
        task_id = alice.create_task(tes.Task(executors=[tes.Executor(image="busybox", command=["true"],
                                                                     env={"API_KEY": "s3cret-env"})]))
        assert alice.get_task(task_id, view="MINIMAL").id == task_id
        basic_view = alice.get_task(task_id, view="BASIC")  # py-tes parses it: only the schema's fields
        assert basic_view.executors[0].env is None and basic_view.executors[0].image == "busybox"
        assert alice.get_task(task_id, view="FULL").executors[0].env == {"API_KEY": "s3cret-env"}
        assert [t.id for t in alice.list_tasks(view="FULL").tasks] == [task_id]
        for attempt in (lambda: bob.get_task(task_id, view="FULL"), lambda: bob.cancel_task(task_id)):
            with pytest.raises(requests.HTTPError) as refused:
                attempt()
            assert refused.value.response.status_code == 404
        assert not bob.list_tasks(view="FULL").tasks
        with pytest.raises(requests.HTTPError) as refused:
            tes.HTTPClient(url, user="alice", password="wrong", timeout=10).list_tasks()
        assert refused.value.response.status_code == 401
        assert tes.HTTPClient(url, token="tes-admin", timeout=10).get_task(task_id).id == task_id
    finally:
        server.shutdown()
        server.server_close()


def test_env_values_and_inline_content_are_in_full_only(engine_factory, tmp_path):
    app = users_app(engine_factory, tmp_path)
    task_id = call(app, "POST", "/ga4gh/tes/v1/tasks", ALICE, RUN).json["id"]
    for who in (ALICE, BEARER):
        for view in ("MINIMAL", "BASIC"):
            for answer in (call(app, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view={view}", who),
                           call(app, "GET", f"/ga4gh/tes/v1/tasks?view={view}", who)):
                text = answer.body.decode()
                assert answer.status_int == 200 and "s3cret" not in text and "API_KEY" not in text, (view, text)
        basic_view = call(app, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=BASIC", who).json
        assert basic_view["executors"] == [{"image": "busybox", "command": ["true"], "ignore_error": False}]
        assert basic_view["inputs"] == [{"path": "/in/conf", "type": "FILE", "streamable": False}]
        full = call(app, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL", who).json
        assert full["executors"][0]["env"] == {"API_KEY": "s3cret-env"}
        assert full["inputs"][0]["content"] == "s3cret-content"
    for view in ("BASIC", "FULL"):  # another user's listing never holds them: the task is not in it
        assert "s3cret" not in call(app, "GET", f"/ga4gh/tes/v1/tasks?view={view}", BOB).body.decode()
