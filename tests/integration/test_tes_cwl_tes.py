"""cwl-tes 0.3.0 from PyPI (its own virtualenv: tests/cwltes.py) running small CWL documents against a running
daemon, executors in real podman containers (scripts/ci/podman-up.sh's local image, no registry).

Files go by ``file://`` under ``tes_file_roots``: cwl-tes and the daemon share this host's file system. Its
``--remote-storage-url ftp://…`` cannot reach a server on another port or with a password in the URL (see
docs/tes-clients.md), so FTP is not what this test uses. Both ways of authenticating cwl-tes can have are
shown: ``--token`` (cwl-tes insists on an RS256 JWT, which the operator sets as ``tes_token``) and HTTP Basic
through the user and password in the ``--tes`` URL (requests sends them; a ``tes_users_file`` user).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import need
from tests.cwltes import ensure_cwl_tes_venv

from .test_tes import IMAGE, podman_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")

PASSWORD = "alice-cwl-password-1"

ECHO_TOOL = f"""\
cwlVersion: v1.0
class: CommandLineTool
requirements:
  DockerRequirement: {{dockerPull: "{IMAGE}"}}
baseCommand: echo
inputs:
  message: {{type: string, inputBinding: {{position: 1}}}}
outputs:
  greeting: {{type: stdout}}
stdout: greeting.txt
"""

WC_TOOL = f"""\
cwlVersion: v1.0
class: CommandLineTool
requirements:
  DockerRequirement: {{dockerPull: "{IMAGE}"}}
baseCommand: [wc, -c]
stdin: $(inputs.text.path)
inputs:
  text: File
outputs:
  count: {{type: stdout}}
stdout: count.txt
"""

#: two tasks, the second's File input the first's output (back on this host in between, as cwl-tes does it)
WORKFLOW = """\
cwlVersion: v1.0
class: Workflow
inputs:
  message: string
outputs:
  greeting: {type: File, outputSource: say/greeting}
  count: {type: File, outputSource: count/count}
steps:
  say:
    run: echo.cwl
    in: {message: message}
    out: [greeting]
  count:
    run: wc.cwl
    in: {text: say/greeting}
    out: [count]
"""


@pytest.fixture(scope="session")
def cwl_tes():
    need(podman_ready(), f"podman with the local image {IMAGE} is not set up (bash scripts/ci/podman-up.sh)")
    try:
        return ensure_cwl_tes_venv()
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = (getattr(exc, "stderr", "") or "").strip().splitlines()[-5:]
        need(False, f"cannot install cwl-tes 0.3.0 from PyPI into .cache/cwl-tes: {exc} {' | '.join(detail)}")


@pytest.fixture(scope="session")
def jwt_pair(cwl_tes):
    """An RSA public key (PEM) and an RS256 JWT signed with its private key, made by cwl-tes's own PyJWT."""
    code = textwrap.dedent("""\
        import json, jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        print(json.dumps([public, jwt.encode({"sub": "cwl-tes"}, key, algorithm="RS256")]))
        """)
    out = subprocess.run([str(cwl_tes.parent / "python"), "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.fixture
def work(tmp_path):
    """The CWL documents and inputs, in the directory that is the daemon's file root."""
    area = tmp_path / "cwl"
    area.mkdir()
    (area / "echo.cwl").write_text(ECHO_TOOL)
    (area / "wc.cwl").write_text(WC_TOOL)
    (area / "workflow.cwl").write_text(WORKFLOW)
    return area


@pytest.fixture
def server(cwl_tes, jwt_pair, work, daemon_factory, tmp_path):
    users = tmp_path / "tes-users"
    subprocess.run([sys.executable, "-m", "pulsar_lite", "tes-user", "add", "alice", "--file", str(users),
                    "--iterations", "1000"], input=PASSWORD + "\n", check=True, capture_output=True, text=True)
    return daemon_factory({
        "tes_token": jwt_pair[1], "tes_users_file": str(users),
        "tes_allowed_images": ["localhost/pl-test*"], "tes_file_roots": [str(work)],
        "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 2}}, "kill_grace_period": 2,
    }).start()


def run_cwl_tes(cwl_tes, work, tes_url: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``cwl-tes --tes URL ARGS…`` in ``work``, its temporary directories there too (under the file root)."""
    return subprocess.run(
        [str(cwl_tes), "--tes", tes_url, "--outdir", str(work / "out"), "--tmpdir-prefix", f"{work}/tmp-",
         "--tmp-outdir-prefix", f"{work}/outtmp-", *args], cwd=str(work), capture_output=True, text=True,
        timeout=timeout)


def final_json(result: subprocess.CompletedProcess) -> dict:
    """The output object cwl-tes prints last on stdout."""
    return json.loads(result.stdout)


def test_a_two_step_workflow_with_a_jwt_token(cwl_tes, jwt_pair, work, server):
    """``--token JWT --token-public-key PEM``: the JWT is the daemon's ``tes_token``, sent as Bearer."""
    public_key, token = jwt_pair
    (work / "job.yml").write_text("message: hello from cwl-tes\n")
    result = run_cwl_tes(cwl_tes, work, server.url.rstrip("/"), "--token", token, "--token-public-key", public_key,
                         "workflow.cwl", "job.yml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Final process status is success" in result.stderr
    outputs = final_json(result)
    assert (work / "out" / "greeting.txt").read_text() == "hello from cwl-tes\n"
    assert outputs["greeting"]["path"] == str(work / "out" / "greeting.txt")
    assert (work / "out" / "count.txt").read_text().strip() == "19"  # bytes of the first task's output
    # two tasks, both complete, each with the output-directory DIRECTORY output cwl-tes always adds
    admin = tes.HTTPClient(server.url, token=token, timeout=30)
    tasks = admin.list_tasks(view="FULL").tasks
    assert sorted(t.name for t in tasks) == ["count", "say"]
    assert {t.state for t in tasks} == {"COMPLETE"}
    count = next(t for t in tasks if t.name == "count")
    assert count.inputs[0].url.startswith(f"file://{work}/")  # the first task's output, on this host
    assert any(o.type == "DIRECTORY" for o in count.outputs)


def test_a_tool_with_a_file_input_as_a_basic_user(cwl_tes, jwt_pair, work, server):
    """No ``--token``: the user and password in the ``--tes`` URL go as HTTP Basic; the task is alice's."""
    (work / "lines.txt").write_text("a\nb\nc\n")
    (work / "job.yml").write_text("text: {class: File, path: lines.txt}\n")
    url = server.url.replace("http://", f"http://alice:{PASSWORD}@").rstrip("/")
    result = run_cwl_tes(cwl_tes, work, url, "wc.cwl", "job.yml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "out" / "count.txt").read_text().strip() == "6"
    alice = tes.HTTPClient(server.url, user="alice", password=PASSWORD, timeout=30)
    [mine] = alice.list_tasks(view="BASIC").tasks
    assert mine.state == "COMPLETE" and mine.inputs[0].url == f"file://{work}/lines.txt"
    assert len(tes.HTTPClient(server.url, token=jwt_pair[1]).list_tasks().tasks) == 1


def test_what_cwl_tes_refuses_or_is_refused(cwl_tes, jwt_pair, work, server):
    (work / "job.yml").write_text("message: hi\n")
    # no credentials: the daemon answers 401 and cwl-tes fails the workflow
    result = run_cwl_tes(cwl_tes, work, server.url.rstrip("/"), "echo.cwl", "job.yml")
    assert result.returncode != 0
    assert "401 Client Error: Unauthorized" in result.stderr
    # a --token that is not an RS256 JWT signed by --token-public-key's key is refused by cwl-tes itself,
    # before any request: a plain (non-JWT) tes_token cannot be used with cwl-tes
    for args in (["--token", "not-a-jwt", "--token-public-key", jwt_pair[0]], ["--token", jwt_pair[1]]):
        result = run_cwl_tes(cwl_tes, work, server.url.rstrip("/"), *args, "echo.cwl", "job.yml")
        assert result.returncode != 0 and "Token is not valid" in result.stderr
    assert tes.HTTPClient(server.url, token=jwt_pair[1]).list_tasks().tasks == []
