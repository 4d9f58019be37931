"""Found by review 4 (fixed): live output (pulsar_lite/engine/live_output.py) against a real HTTP server appending what it is
posted, as Galaxy's job-files API does."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from pulsar_lite.engine.live_output import Followed, LiveOutput, delivered_everything


@pytest.fixture
def galaxy():
    """Appends each posted file's bytes (multipart body: the part's payload) to ``received``; the first post
    of number n takes ``delays[n]`` seconds, as a busy Galaxy's may."""
    received, state = bytearray(), {"delays": {}, "posts": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["posts"] += 1
            time.sleep(state["delays"].get(state["posts"], 0))
            boundary = body.split(b"\r\n", 1)[0]
            payload = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n" + boundary, 1)[0]
            received.extend(payload)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/files", received, state
    server.shutdown()


def run_race(tmp_path, galaxy, delays):
    url, received, state = galaxy
    state["delays"] = delays
    engine = SimpleNamespace(stopping=threading.Event())
    job = tmp_path / "job"
    (job / "metadata").mkdir(parents=True)
    (job / "metadata" / "tool_stdout").write_bytes(b"line one\n")
    (job / "metadata" / "tool_stderr").write_bytes(b"")
    output = LiveOutput(engine, interval=0.1, timeout=10, chunk_size=1024 * 1024)
    followed = Followed("m", "j", 1.0, str(job), {"metadata/tool_stdout": url, "metadata/tool_stderr": url + "?e"},
                        {"metadata/tool_stdout": 0, "metadata/tool_stderr": 0})
    output._jobs[("m", "j")] = followed
    live = threading.Thread(target=output._send, args=(followed, False))  # the live thread's round
    live.start()
    time.sleep(0.2)  # its post is in flight; the job ends: the staging phase flushes (phases._stage_out)
    output.flush("m", "j")
    live.join(10)
    return bytes(received), str(job)


def test_a_job_ending_while_a_live_post_is_in_flight_delivers_each_byte_once(tmp_path, galaxy):
    """The live thread is posting a chunk (Galaxy slow) when the job ends: the staging phase's flush reads the
    same offset and posts the same bytes again. Galaxy appends every post: its tool_stdout has them twice."""
    received, _ = run_race(tmp_path, galaxy, {1: 1.0})
    assert received == b"line one\n"


def test_the_race_can_also_end_with_a_null_stdout_over_a_tripled_copy(tmp_path, galaxy):
    """The other order: the live post returns first, the flush's post after it. Both add their length to the
    one offset (18 for a 9-byte file); the flush's loop takes offset > size for a truncated file and sends
    the stream from its start again. Galaxy holds it three times, and the state (offset 9 == size,
    delivered) made the final status leave stdout null: Galaxy kept the tripled copy."""
    received, job = run_race(tmp_path, galaxy, {1: 0.5, 2: 1.0})
    assert received == b"line one\n" and delivered_everything(job)


def test_an_endpoint_libcurl_cannot_take_does_not_stop_live_output_for_every_job(tmp_path, galaxy):
    """A files_endpoint holding a non-ASCII character (an IDN Galaxy host, say) makes pycurl raise
    UnicodeEncodeError, not a TransferError: _send lets it out, the one live-output thread of the daemon dies
    (no other job's output is sent again until a restart), and flush raises it into the staging phase."""
    url, received, _ = galaxy
    engine = SimpleNamespace(stopping=threading.Event())
    jobs = []
    for name, endpoint in (("bad", "http://gälaxy.example/api/jobs/1/files?job_key=k"), ("good", url)):
        job = tmp_path / name
        (job / "metadata").mkdir(parents=True)
        (job / "metadata" / "tool_stdout").write_bytes(f"{name}\n".encode())
        jobs.append(Followed("m", name, 1.0, str(job), {"metadata/tool_stdout": endpoint,
                                                        "metadata/tool_stderr": endpoint},
                             {"metadata/tool_stdout": 0, "metadata/tool_stderr": 0}))
    output = LiveOutput(engine, interval=0.1, timeout=5, chunk_size=1024)
    for followed in jobs:
        output._jobs[("m", followed.job_id)] = followed
    output._thread = threading.Thread(target=output._run, daemon=True)
    output._thread.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and b"good" not in received:
        time.sleep(0.1)
    engine.stopping.set()
    assert b"good\n" in bytes(received), "the live-output thread died on the other job's endpoint"


def test_flush_of_such_a_job_raises_into_the_staging_phase(tmp_path):
    """phases._stage_out calls flush outside its try: the exception leaves _postprocess, whose future in the
    staging ThreadPoolExecutor keeps it unlogged, and the job never leaves postprocessing."""
    engine = SimpleNamespace(stopping=threading.Event())
    job = tmp_path / "job"
    (job / "metadata").mkdir(parents=True)
    (job / "metadata" / "tool_stdout").write_bytes(b"x\n")
    endpoint = "http://gälaxy.example/api/jobs/1/files?job_key=k"
    output = LiveOutput(engine, interval=0.1, timeout=5, chunk_size=1024)
    output._jobs[("m", "j")] = Followed("m", "j", 1.0, str(job), {"metadata/tool_stdout": endpoint,
                                                                  "metadata/tool_stderr": endpoint},
                                        {"metadata/tool_stdout": 0, "metadata/tool_stderr": 0})
    output.flush("m", "j")  # UnicodeEncodeError today
