"""The GA4GH TES face with py-tes as the client, executors in real podman containers (scripts/ci/podman-up.sh:
a local busybox image, no registry), against a running daemon."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import need, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")

IMAGE = "localhost/pl-test:latest"
TOKEN = "tes-token"


def podman_ready() -> bool:
    if not shutil.which("podman"):
        return False
    return subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def podman():
    need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")


def tes_app(**extra):
    # the tests' HTTP origins listen on the loopback, which TES transfers may not reach unless the operator
    # allows it (docs/security.md): allowed here, explicitly
    return {"private_token": TOKEN, "tes_allowed_images": ["localhost/pl-test*", "pl-test*"],
            "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 4}},
            "kill_grace_period": 2, "tes_fetch_allowed_networks": ["127.0.0.0/8"], **extra}


@pytest.fixture
def server(podman, daemon_factory):
    return daemon_factory(tes_app()).start()


@pytest.fixture
def client(server):
    return tes.HTTPClient(server.url, token=TOKEN, timeout=30)


class Files:
    """A small HTTP origin: GET serves ``files``, PUT stores into ``stored``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.stored: dict[str, bytes] = {}
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = origin.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                body = body if body is not None else b"missing\n"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self):
                body = origin.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()

            def do_PUT(self):
                length = int(self.headers.get("Content-Length", 0))
                origin.stored[self.path] = self.rfile.read(length)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self):
        self.http.shutdown()


@pytest.fixture
def files():
    origin = Files()
    yield origin
    origin.close()


def task(*executors, **fields) -> "tes.Task":
    return tes.Task(executors=list(executors), **fields)


def executor(*command, **fields) -> "tes.Executor":
    return tes.Executor(image=IMAGE, command=list(command), **fields)


def wait(client, task_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get_task(task_id, view="MINIMAL").state
        if state not in ("QUEUED", "INITIALIZING", "RUNNING", "CANCELING"):
            return client.get_task(task_id, view="FULL")
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} is {state} after {timeout}s")


def raw(server, method, path, body=None, token=TOKEN):
    request = urllib.request.Request(server.url.rstrip("/") + path, data=body, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def containers_of(task_id: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    return [name for name in out.split() if name.startswith(task_id)]


def test_service_info(client):
    info = client.get_service_info()
    assert info.type == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert "manager" in info.tes_resources_backend_parameters
    assert info.organization["name"] and info.name and info.id and info.version


def test_views_return_exactly_the_specs_fields(client, server):
    task_id = client.create_task(task(executor("sh", "-c", "echo hi; echo err >&2"),
                                      name="views", tags={"suite": "tes"},
                                      inputs=[tes.Input(path="/in/greeting", content="hello")]))
    wait(client, task_id)
    minimal = raw(server, "GET", f"/ga4gh/tes/v1/tasks/{task_id}")[1]
    assert minimal == {"id": task_id, "state": "COMPLETE"}  # MINIMAL is the default
    basic = raw(server, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=BASIC")[1]
    full = raw(server, "GET", f"/ga4gh/tes/v1/tasks/{task_id}?view=FULL")[1]
    assert "content" not in basic["inputs"][0] and full["inputs"][0]["content"] == "hello"
    assert "system_logs" not in basic["logs"][0] and "system_logs" in full["logs"][0]
    assert "stdout" not in basic["logs"][0]["logs"][0] and full["logs"][0]["logs"][0]["stdout"] == "hi\n"
    assert full["logs"][0]["logs"][0]["stderr"] == "err\n"
    assert set(full) <= {"id", "state", "name", "description", "inputs", "outputs", "resources", "executors",
                         "volumes", "tags", "logs", "creation_time"}
    assert set(full["logs"][0]) <= {"start_time", "end_time", "metadata", "logs", "outputs", "system_logs"}
    # py-tes parses every view (it refuses any field the schema does not define)
    for view in ("MINIMAL", "BASIC", "FULL"):
        assert client.get_task(task_id, view=view).id == task_id
    assert client.get_task(task_id, view="FULL").logs[0].logs[0].exit_code == 0


def test_paging_over_120_tasks_returns_each_once(client, server):
    created = {client.create_task(task(executor("true"), name=f"page-{n:03d}")) for n in range(120)}
    seen, token, pages = [], None, 0
    while True:
        page = client.list_tasks(view="MINIMAL", page_size=50, page_token=token)
        seen += [t.id for t in page.tasks]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(seen) == created and pages == 3
    # name_prefix, state and tags filters (py-tes has none of them: plain HTTP)
    status, named = raw(server, "GET", "/ga4gh/tes/v1/tasks?name_prefix=page-11&page_size=100")
    assert status == 200 and len(named["tasks"]) == 10


def test_tag_and_state_filters(client, server):
    a = client.create_task(task(executor("true"), tags={"project": "a", "kind": "x"}))
    b = client.create_task(task(executor("sh", "-c", "exit 2"), tags={"project": "b"}))
    for task_id in (a, b):
        wait(client, task_id)
    ids = lambda query: {t["id"] for t in raw(server, "GET", f"/ga4gh/tes/v1/tasks?{query}")[1]["tasks"]}
    assert ids("tag_key=project&tag_value=a") == {a}
    assert ids("tag_key=project") >= {a, b}
    assert ids("tag_key=project&tag_value=a&tag_key=kind&tag_value=y") == set()
    assert b in ids("state=EXECUTOR_ERROR") and a not in ids("state=EXECUTOR_ERROR")
    assert raw(server, "GET", "/ga4gh/tes/v1/tasks?state=DONE")[0] == 400


def test_two_executors_share_a_volume(client):
    task_id = client.create_task(task(
        executor("sh", "-c", "echo first > /shared/out.txt"),
        executor("sh", "-c", "cat /shared/out.txt; echo second"),
        volumes=["/shared"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE"
    assert [log.exit_code for log in done.logs[0].logs] == [0, 0]
    assert done.logs[0].logs[1].stdout == "first\nsecond\n"


def test_input_by_url_and_output_put_back_byte_identical(client, files):
    data = bytes(range(256)) * 4000
    files.files["/data/in.bin"] = data
    task_id = client.create_task(task(
        executor("sh", "-c", "cp /in/data.bin /out/copy.bin; cp /in/data.bin /out/many/a.bin; "
                             "cp /in/data.bin /out/many/b.bin", workdir="/out"),
        inputs=[tes.Input(url=f"{files.url}/data/in.bin", path="/in/data.bin")],
        outputs=[tes.Output(url=f"{files.url}/results/copy.bin", path="/out/copy.bin"),
                 tes.Output(url=f"{files.url}/results/many", path="/out/many/*.bin", path_prefix="/out/many")]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert files.stored["/results/copy.bin"] == data
    assert files.stored["/results/many/a.bin"] == data and files.stored["/results/many/b.bin"] == data
    logged = {(o.path, o.url, int(o.size_bytes)) for o in done.logs[0].outputs}
    assert ("/out/copy.bin", f"{files.url}/results/copy.bin", len(data)) in logged and len(logged) == 3


def test_inline_content_and_stdio_paths(client):
    task_id = client.create_task(task(
        executor("sh", "-c", "tr a-z A-Z", stdin="/in/text", stdout="/out/upper", stderr="/out/err"),
        executor("cat", "/out/upper"),
        inputs=[tes.Input(path="/in/text", content="shout\n")],
        volumes=["/out"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE"
    assert done.logs[0].logs[0].stdout == "SHOUT\n" and done.logs[0].logs[1].stdout == "SHOUT\n"


def test_failing_executor_is_an_executor_error_with_its_code(client):
    task_id = client.create_task(task(executor("sh", "-c", "exit 3"), executor("echo", "never")))
    done = wait(client, task_id)
    assert done.state == "EXECUTOR_ERROR"
    assert [log.exit_code for log in done.logs[0].logs] == [3]  # the second never ran


def test_ignore_error_goes_on(client):
    task_id = client.create_task(task(executor("sh", "-c", "exit 4", ignore_error=True), executor("echo", "ran")))
    done = wait(client, task_id)
    assert done.state == "COMPLETE"
    assert [log.exit_code for log in done.logs[0].logs] == [4, 0]


def test_unreachable_input_is_a_system_error_with_the_reason(client, files):
    task_id = client.create_task(task(executor("true"),
                                      inputs=[tes.Input(url=f"{files.url}/nowhere", path="/in/x")]))
    done = wait(client, task_id)
    assert done.state == "SYSTEM_ERROR"
    assert any("404" in line and "/nowhere" in line for line in done.logs[0].system_logs), done.logs[0].system_logs


def test_bad_requests_are_4xx_with_a_json_reason(client, server):
    status, body = raw(server, "POST", "/ga4gh/tes/v1/tasks", b'{"executors": []}')
    assert status == 400 and "executors" in body["message"]
    status, body = raw(server, "POST", "/ga4gh/tes/v1/tasks",
                       json.dumps({"executors": [{"image": "evil/miner", "command": ["x"]}]}).encode())
    assert status == 400 and "not allowed" in body["message"]
    assert raw(server, "GET", "/ga4gh/tes/v1/tasks/tes-0000")[0] == 404
    assert raw(server, "GET", "/ga4gh/tes/v1/tasks", token="wrong")[0] == 401
    assert raw(server, "GET", "/ga4gh/tes/v1/nothing/here")[0] == 404
    # a Pulsar client may not take a TES id
    request = urllib.request.Request(server.url + f"jobs?job_id=tes-123&private_token={TOKEN}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400


def start_running(client, timeout=30, command=("sleep", "300")) -> str:
    """A task whose executor runs ``command`` (by default it sleeps), once it is RUNNING and its container
    exists."""
    task_id = client.create_task(task(executor(*command)))
    wait_until(lambda: client.get_task(task_id).state == "RUNNING" and containers_of(task_id), timeout=timeout,
               what="the task running in its container")
    return task_id


def test_cancel_while_running_removes_the_container(client):
    task_id = start_running(client)
    client.cancel_task(task_id)
    done = wait(client, task_id, timeout=30)
    assert done.state == "CANCELED"
    assert containers_of(task_id) == []


def test_cancel_while_queued_never_starts(podman, daemon_factory):
    server = daemon_factory({**tes_app(), "managers": {"_default_": {"num_concurrent_jobs": 1}}}).start()
    client = tes.HTTPClient(server.url, token=TOKEN, timeout=30)
    blocker = client.create_task(task(executor("sleep", "300")))
    queued = client.create_task(task(executor("touch", "/never")))
    assert client.get_task(queued).state in ("QUEUED", "INITIALIZING")  # one read: it moves between the two
    client.cancel_task(queued)
    assert wait(client, queued).state == "CANCELED"
    client.cancel_task(blocker)
    assert wait(client, blocker).state == "CANCELED"
    assert client.get_task(queued, view="FULL").logs[0].logs in (None, [])


def test_kill9_with_tasks_queued_and_running(podman, daemon_factory):
    server = daemon_factory({**tes_app(), "managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    client = tes.HTTPClient(server.url, token=TOKEN, timeout=30)
    running = [client.create_task(task(executor("sh", "-c", "sleep 4; echo done"))) for _ in range(2)]
    queued = [client.create_task(task(executor("echo", "later"))) for _ in range(3)]
    wait_until(lambda: all(client.get_task(t).state == "RUNNING" for t in running), timeout=30,
               what="both long tasks running")
    server.kill9()
    server.start()
    for task_id in running + queued:
        done = wait(client, task_id, timeout=60)
        assert done.state == "COMPLETE", (task_id, done.state)
    assert all(wait(client, t).logs[0].logs[0].stdout == "done\n" for t in running)


def test_the_tes_face_can_be_switched_off(podman, daemon_factory):
    server = daemon_factory({**tes_app(), "tes": False}).start()
    request = urllib.request.Request(server.url + "ga4gh/tes/v1/service-info",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=10)
    assert missing.value.code == 404


# Symlinks an executor plants in its own writable mounts, for the next executor's stdin/stdout/stderr: the
# job script opens those files on the host, and must not follow a link out of the task's directory (issue 27).
# The targets are the daemon's own app.yml (the token) and a host directory.

def test_stdout_to_a_planted_symlink_leaves_the_host_file_unchanged(client, server):
    app = server.root / "app.yml"
    before = app.read_bytes()
    task_id = client.create_task(task(
        executor("sh", "-c", f"ln -s {app} /v/log"),
        executor("echo", "overwritten", stdout="/v/log"),
        executor("sh", "-c", "test -L /v/log || cat /v/log"),
        volumes=["/v"]))
    done = wait(client, task_id)
    assert app.read_bytes() == before, "the executor's stdout went to the host file the link named"
    # the link itself was replaced by the executor's stdout, as a file of the task's there would have been
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[2].stdout == "overwritten\n"


def test_stdout_and_stderr_below_a_planted_directory_symlink_write_nothing_there(client, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    task_id = client.create_task(task(
        executor("sh", "-c", f"rm -rf /v/sub && ln -s {outside} /v/sub"),
        executor("sh", "-c", "echo out; echo err >&2", stderr="/v/sub/err", ignore_error=True),
        executor("sh", "-c", "echo out; echo err >&2", stdout="/v/sub/log"),
        volumes=["/v"]))
    done = wait(client, task_id)
    assert list(outside.iterdir()) == [], "a file was made in the host directory the link named"
    assert done.state == "EXECUTOR_ERROR" and [log.exit_code for log in done.logs[0].logs] == [0, 1, 1]
    system_logs = done.logs[0].system_logs
    assert any("executor 1" in line and "stderr /v/sub/err" in line for line in system_logs), system_logs
    assert any("executor 2" in line and "stdout /v/sub/log" in line for line in system_logs), system_logs


def test_stdin_from_a_planted_symlink_does_not_feed_the_host_file_to_the_container(client, server):
    app = server.root / "app.yml"
    task_id = client.create_task(task(
        executor("sh", "-c", f"ln -s {app} /v/in"),
        executor("cat", stdin="/v/in"),
        volumes=["/v"]))
    done = wait(client, task_id)
    assert TOKEN not in (done.logs[0].logs[-1].stdout or ""), "the host file was fed to the container"
    assert done.state == "EXECUTOR_ERROR" and [log.exit_code for log in done.logs[0].logs] == [0, 1]
    assert any("stdin /v/in" in line for line in done.logs[0].system_logs), done.logs[0].system_logs


def test_stdio_files_an_earlier_executor_left_are_replaced_and_one_file_takes_both_streams(client):
    task_id = client.create_task(task(
        executor("sh", "-c", "echo old old old > /v/log; echo input > /v/in"),
        executor("sh", "-c", "cat; echo err >&2", stdin="/v/in", stdout="/v/log", stderr="/v/log"),
        executor("cat", "/v/log"),
        volumes=["/v"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[2].stdout == "input\nerr\n"


# A mount's source on the host, below a writable mount: executor 0 renames /data/x and puts a symlink to a host
# directory in its place; executor 1's runtime would mount the host's file (read) or directory (write there).

def test_an_input_below_a_planted_directory_symlink_is_not_mounted_from_the_host(client, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.yml").write_text(f"private_token: {TOKEN}\n")
    task_id = client.create_task(task(
        executor("sh", "-c", f"mv /data/x /data/x.old && ln -s {outside} /data/x"),
        executor("cat", "/data/x/app.yml"),
        inputs=[tes.Input(path="/data/x/app.yml", content="the task's own\n")], volumes=["/data"]))
    done = wait(client, task_id)
    assert TOKEN not in (done.logs[0].logs[-1].stdout or ""), "the host's file was mounted into the container"
    assert done.state == "EXECUTOR_ERROR" and [log.exit_code for log in done.logs[0].logs] == [0, 1]
    assert any("executor 1: /data/x/app.yml was not mounted" in line for line in done.logs[0].system_logs), \
        done.logs[0].system_logs


def test_a_nested_volume_below_a_planted_directory_symlink_writes_nothing_on_the_host(client, tmp_path):
    outside = tmp_path / "outside"
    (outside / "y").mkdir(parents=True)
    (outside / "y" / "app.yml").write_text("unchanged\n")
    task_id = client.create_task(task(
        executor("sh", "-c", f"mv /data/x /data/x.old && ln -s {outside} /data/x"),
        executor("sh", "-c", "echo overwritten > /data/x/y/app.yml; echo new > /data/x/y/new"),
        volumes=["/data", "/data/x/y"]))
    done = wait(client, task_id)
    assert (outside / "y" / "app.yml").read_text() == "unchanged\n"
    assert sorted(p.name for p in (outside / "y").iterdir()) == ["app.yml"]
    assert done.state == "EXECUTOR_ERROR" and [log.exit_code for log in done.logs[0].logs] == [0, 1]
    assert any("executor 1: /data/x/y was not mounted" in line for line in done.logs[0].system_logs), \
        done.logs[0].system_logs


def test_outputs_are_not_sent_through_a_planted_symlink_out_of_the_tasks_directory(podman, daemon_factory, tmp_path):
    sent, outside = tmp_path / "sent", tmp_path / "outside"
    sent.mkdir()
    (outside / "deeper").mkdir(parents=True)
    (outside / "id_rsa.txt").write_text("key\n")
    (outside / "deeper" / "shadow.txt").write_text("hash\n")
    server = daemon_factory(tes_app(tes_file_roots=[str(sent)])).start()
    client = tes.HTTPClient(server.url, token=TOKEN, timeout=30)
    task_id = client.create_task(task(
        executor("sh", "-c", f"mkdir -p /out/mine && echo mine > /out/mine/a.txt && ln -s {outside} /out/linked"
                             f" && ln -s ../../../command.sh /out/job.txt && ln -s {outside} /out/dir"),
        outputs=[tes.Output(path="/out/*/*.txt", path_prefix="/out", url=f"file://{sent}/glob"),
                 tes.Output(path="/out/job.txt", url=f"file://{sent}/job.txt"),
                 tes.Output(path="/out/dir", url=f"file://{sent}/dir", type="DIRECTORY")]))
    done = wait(client, task_id)
    assert sorted(str(p.relative_to(sent)) for p in sent.rglob("*")) == ["glob", "glob/mine", "glob/mine/a.txt"]
    assert done.state == "SYSTEM_ERROR"
    system_logs = " ".join(done.logs[0].system_logs)
    assert "id_rsa" not in system_logs and "shadow" not in system_logs, system_logs
    # /out/dir is a mount of its own: the link went inside it (ln -s into a directory), where the walk does not
    # enter it, and the directory left empty is no error of its own
    assert "job.txt" in system_logs and "/out/dir" not in system_logs, system_logs


def test_mounted_paths_with_the_runtimes_separators_are_refused_and_other_paths_pass_as_they_are(client, server):
    """A volume "/srv,/home:/h:rw" would bind the host's /home read-write under apptainer (and ':' splits
    podman's -v): refused at create. A ':' or ',' in a file's own name is mounted through its directory."""
    for volume in ("/srv,/home:/h:rw", "/v:/etc/x", "/v,x"):
        status, body = raw(server, "POST", "/ga4gh/tes/v1/tasks", json.dumps(
            {"executors": [{"image": IMAGE, "command": ["true"]}], "volumes": [volume]}).encode())
        assert status == 400 and "may not hold" in body["message"] and "\n" not in body["message"], body
    task_id = client.create_task(task(
        executor("sh", "-c", "echo a, b: c", stdout="/out/a:b,c.log"),
        executor("cat", "/out/a:b,c.log", workdir="/out"),
        volumes=["/out"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[1].stdout == "a, b: c\n"


# Hardened containers by default (tes_container_*), relaxable by the operator only.

PROBE = ("id -u; id -g; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' ';"
         " echo made > /v/by-executor && echo wrote; mkdir -p /v/sub/deeper && echo made-dirs")


def test_executors_run_as_nobody_without_capabilities_or_new_privileges_and_own_their_files(client, server):
    task_id = client.create_task(task(
        executor("sh", "-c", PROBE, stdout="/v/probe.log"),
        executor("sh", "-c", "cat /v/probe.log >> /v/by-executor && cat /v/by-executor"),
        volumes=["/v"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    lines = done.logs[0].logs[1].stdout.splitlines()
    assert lines == ["made", "65534", "65534", "CapEff: 0000000000000000", "NoNewPrivs: 1", "wrote", "made-dirs"]
    mirror = server.staging / task_id / "tes" / "root" / "v"
    assert {(p.name, p.stat().st_uid) for p in mirror.iterdir()} == {
        ("by-executor", 65534), ("sub", 65534), ("probe.log", 65534)}


def test_the_operator_may_relax_each_hardened_default(podman, daemon_factory):
    server = daemon_factory(tes_app(tes_container_user="image", tes_container_capabilities=["runtime-default"],
                                    tes_container_no_new_privileges=False, tes_container_pids_limit=0)).start()
    client = tes.HTTPClient(server.url, token=TOKEN, timeout=30)
    done = wait(client, client.create_task(task(executor("sh", "-c", PROBE), volumes=["/v"])))
    assert done.state == "COMPLETE", done.logs[0].system_logs
    lines = done.logs[0].logs[0].stdout.splitlines()
    assert lines[:2] == ["0", "0"] and lines[2] != "CapEff: 0000000000000000" and lines[3] == "NoNewPrivs: 0"


def test_a_fork_bomb_stops_at_the_pids_limit(podman, daemon_factory):
    server = daemon_factory(tes_app(tes_container_pids_limit=64)).start()
    client = tes.HTTPClient(server.url, token=TOKEN, timeout=30)
    done = wait(client, client.create_task(task(executor(  # forks until it cannot; counts the forks it made
        "sh", "-c", "(i=0; while [ $i -lt 200 ]; do sleep 2 & i=$((i + 1)); echo $i > /tmp/n; done) 2>/dev/null;"
                    " sleep 3; cat /tmp/n"))))
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert int(done.logs[0].logs[0].stdout) < 64, done.logs[0].logs[0].stdout
