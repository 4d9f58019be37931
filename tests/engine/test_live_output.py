"""Live tool output's parts (pulsar_lite/engine/live_output.py): where the bytes go, what is read, what is kept.
End to end with the real clients: tests/integration/test_live_output.py."""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from pulsar_lite.engine.live_output import Followed, LiveOutput, delivered_everything, read_state, urls_of

LAUNCH = {"remote_staging": {"action_mapper": {"files_endpoint": "http://gx/api/jobs/7/files?job_key=k"},
                             "client_outputs": {"working_directory": "/galaxy/jobs/000/7/working"}}}


def test_the_urls_are_galaxys_outputs_next_to_its_working_directory():
    urls = urls_of(LAUNCH)
    assert urls["metadata/tool_stdout"] == ("http://gx/api/jobs/7/files?job_key=k&path=%2Fgalaxy%2Fjobs%2F000%2F7"
                                            "%2Foutputs%2Ftool_stdout&file_type=output")
    assert urls_of({}) is None and urls_of({"remote_staging": {"action_mapper": {}}}) is None
    assert urls_of({"remote_staging": "x"}) is None


@pytest.fixture
def endpoint():
    """A real HTTP server recording each POST's body; ``fail`` makes it answer 500."""
    seen, state = [], {"fail": False}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(body)
            self.send_response(500 if state["fail"] else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/files", seen, state
    server.shutdown()


def live(tmp_path, url, chunk=1024):
    engine = SimpleNamespace(stopping=threading.Event())
    job = tmp_path / "job"
    (job / "metadata").mkdir(parents=True)
    output = LiveOutput(engine, interval=0.1, timeout=5, chunk_size=chunk)
    followed = Followed("m", "j", 1.0, str(job), {s: f"{url}?s={s}" for s in ("metadata/tool_stdout",
                                                                              "metadata/tool_stderr")},
                        {"metadata/tool_stdout": 0, "metadata/tool_stderr": 0})
    return output, followed, job


def test_new_bytes_are_sent_once_and_the_offsets_kept_in_the_job(tmp_path, endpoint):
    url, seen, _ = endpoint
    output, followed, job = live(tmp_path, url)
    (job / "metadata" / "tool_stdout").write_bytes(b"one\n")
    output._send(followed, everything=False)
    output._send(followed, everything=False)  # nothing new: nothing sent
    assert len(seen) == 1 and b"one\n" in seen[0]
    with open(job / "metadata" / "tool_stdout", "ab") as handle:
        handle.write(b"two\n")
    output._send(followed, everything=False)
    assert len(seen) == 2 and b"two\n" in seen[1] and b"one" not in seen[1]
    assert read_state(str(job)) == {"metadata/tool_stdout": 8, "metadata/tool_stderr": 0, "delivered": True}
    assert delivered_everything(str(job))
    with open(job / "metadata" / "tool_stderr", "ab") as handle:
        handle.write(b"late\n")
    assert not delivered_everything(str(job))  # the final status would carry the streams


def test_a_failed_post_keeps_the_bytes_for_later_with_a_growing_pause(tmp_path, endpoint):
    url, seen, state = endpoint
    output, followed, job = live(tmp_path, url)
    (job / "metadata" / "tool_stdout").write_bytes(b"x" * 10)
    state["fail"] = True
    output._send(followed, everything=False)
    assert followed.offsets["metadata/tool_stdout"] == 0 and followed.failures == 1 and followed.next_try > 0
    output._send(followed, everything=False)
    assert followed.failures == 2
    state["fail"] = False
    output._send(followed, everything=True)
    assert followed.offsets["metadata/tool_stdout"] == 10 and followed.failures == 0


def test_everything_is_sent_in_chunks_at_the_end(tmp_path, endpoint):
    url, seen, _ = endpoint
    output, followed, job = live(tmp_path, url, chunk=1024)
    (job / "metadata" / "tool_stdout").write_bytes(b"y" * 3000)
    output._send(followed, everything=False)
    assert followed.offsets["metadata/tool_stdout"] == 1024  # one chunk per round
    output._send(followed, everything=True)
    assert followed.offsets["metadata/tool_stdout"] == 3000 and len(seen) == 3


def test_a_stream_the_job_made_a_symlink_out_of_its_directory_is_never_read(tmp_path, endpoint):
    url, seen, _ = endpoint
    output, followed, job = live(tmp_path, url)
    secret = tmp_path / "app.yml"
    secret.write_text("private_token: s3cret\n")
    os.symlink(secret, job / "metadata" / "tool_stdout")
    (job / "metadata" / "live_output_state").write_text(json.dumps({"metadata/tool_stdout": -5, "delivered": 1}))
    output._send(followed, everything=True)
    assert seen == [] and secret.read_text() == "private_token: s3cret\n"
