"""kill -9 the daemon in the middle of a 1 GiB pull or TUS push: after restart the transfer resumes where it
stopped (not from zero) and the job completes with byte-identical files.

The origin here serves and stores files on disk (never a whole payload in memory). It sends or accepts
bytes at full speed up to ``hold_at`` and then holds the transfer (sends or reads nothing more) until
``release()``: the test waits until the daemon has exactly that much, kills it there, releases the
origin and restarts the daemon, so the kill lands at a known offset without a slow transfer.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import wait_until

from .rest_helpers import rest, wait_status

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
SIZE = 1024 * MIB
HOLD = SIZE // 2 + 5 * MIB + 4321  # where the kill lands: mid-transfer, and not on a chunk boundary
TUS_CHUNK = 64 * MIB


def write_test_file(path, size: int = SIZE) -> str:
    """Write ``size`` bytes in 1 MiB chunks (each chunk differs: a misplaced range cannot go unnoticed);
    returns their sha256."""
    block = random.Random(1234).randbytes(MIB)
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for index in range(size // MIB):
            chunk = index.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(4 * MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HoldingOrigin:
    """Job-files origin: GET of files under ``root`` (with ranges), and Galaxy's TUS upload endpoint
    (POST creates an upload, HEAD tells its offset, PATCH appends, a POST of ``session_id`` to the
    job-files URL registers it in ``uploads``). Upload data go to files under ``upload_dir``."""

    def __init__(self, root, upload_dir, hold_at: int):
        self.root, self.upload_dir = str(root), str(upload_dir)
        self.hold_at: int | None = hold_at
        self.released = threading.Event()
        self.requests: list[dict] = []
        self.tus: dict[str, dict] = {}  # upload id -> {"length", "path", "offset"}
        self.uploads: dict[str, str] = {}  # client path -> file holding the registered upload
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self):
                parts = urlsplit(self.path)
                entry = {"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                         "range": self.headers.get("Range"), "bytes": 0}
                with origin.lock:
                    origin.requests.append(entry)
                return entry

            def _reply(self, code, headers=(), body=b""):
                self.send_response(code)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                entry = self._record()
                path = os.path.join(origin.root, entry["path"].lstrip("/"))
                if not os.path.isfile(path):
                    return self._reply(404)
                size = os.path.getsize(path)
                start = int(entry["range"].split("=")[1].split("-")[0]) if entry["range"] else 0
                if start >= size:
                    return self._reply(416, [("Content-Range", f"bytes */{size}")])
                if entry["range"]:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                with open(path, "rb") as handle:
                    offset = start
                    try:
                        hold = origin.hold_at
                        if hold is not None and offset < hold:
                            entry["bytes"] += self.connection.sendfile(handle, offset, hold - offset)
                            origin.released.wait(60)
                            self.close_connection = True  # released after the kill: the receiver is gone
                            return
                        entry["bytes"] += self.connection.sendfile(handle, offset, size - offset)
                    except OSError:  # the daemon was killed
                        self.close_connection = True

            def do_HEAD(self):
                entry = self._record()
                upload = origin.tus.get(entry["path"].rsplit("/", 1)[-1])
                if upload is None:
                    return self._reply(404)
                self._reply(200, [("Upload-Offset", str(upload["offset"])), ("Upload-Length", str(upload["length"])),
                                  ("Tus-Resumable", "1.0.0")])

            def do_PATCH(self):
                entry = self._record()
                upload = origin.tus.get(entry["path"].rsplit("/", 1)[-1])
                length = int(self.headers.get("Content-Length", 0))
                if upload is None or int(self.headers["Upload-Offset"]) != upload["offset"]:
                    self.rfile.read(length)
                    return self._reply(409)
                remaining = length
                with open(upload["path"], "ab") as handle:
                    while remaining:  # keep what arrives, like a real TUS server, even if the sender dies
                        want = min(remaining, MIB)
                        hold = origin.hold_at
                        if hold is not None and upload["offset"] < hold:
                            want = min(want, hold - upload["offset"])
                        elif hold is not None:
                            handle.flush()
                            origin.released.wait(60)
                            # released after the kill: drop what the dead sender still had in flight, so
                            # the upload's offset is exactly HOLD
                            self.close_connection = True
                            return
                        try:
                            piece = self.rfile.read(want)
                        except OSError:
                            piece = b""
                        if not piece:
                            self.close_connection = True
                            return
                        handle.write(piece)
                        upload["offset"] += len(piece)
                        entry["bytes"] += len(piece)
                        remaining -= len(piece)
                self._reply(204, [("Upload-Offset", str(upload["offset"])), ("Tus-Resumable", "1.0.0")])

            def do_POST(self):
                entry = self._record()
                if entry["path"].endswith("/job_files/resumable_upload"):
                    upload_id = uuid.uuid4().hex
                    origin.tus[upload_id] = {"length": int(self.headers["Upload-Length"]), "offset": 0,
                                             "path": os.path.join(origin.upload_dir, upload_id)}
                    open(origin.tus[upload_id]["path"], "wb").close()
                    return self._reply(201, [("Location", f"{entry['path']}/{upload_id}"),
                                             ("Tus-Resumable", "1.0.0")])
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                upload = origin.tus.get(form.get("session_id", [""])[0])
                if upload is None or upload["offset"] != upload["length"]:
                    return self._reply(400)
                origin.uploads[entry["query"]["path"][0]] = upload["path"]
                self._reply(200)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def release(self) -> None:
        """From now on at full speed, and let a held transfer go on (or notice its peer is gone)."""
        self.hold_at = None
        self.released.set()

    def since(self, mark: int, method: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests[mark:] if r["method"] == method]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate, timeout: float, what: str) -> None:
    wait_until(predicate, timeout=timeout, interval=0.02, what=what)


def test_kill9_mid_pull_resumes(daemon_factory, tmp_path):
    root, uploads = tmp_path / "origin", tmp_path / "uploads"
    root.mkdir()
    uploads.mkdir()
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 1}}})
    try:
        expected = write_test_file(root / "big.bin")
        daemon.start()
        with HoldingOrigin(root, uploads, hold_at=HOLD) as origin:
            staging = {"setup": [{"name": "big.dat", "type": "input",
                                  "action": {"action_type": "remote_transfer", "url": origin.url + "/big.bin?job_key=k",
                                             "path": "/gx/big.dat", "source": {"path": "/gx/big.dat"}}}]}
            assert rest(daemon.url, "POST", "/jobs", job_id="pull")[0] == 200
            code, body = rest(daemon.url, "POST", "/jobs/pull/submit", remote_staging=json.dumps(staging),
                              command_line="stat -c %s ../inputs/big.dat > ../outputs/size")
            assert code == 200, body
            part = daemon.staging / "pull" / "inputs" / "big.dat.part"
            wait_for(lambda: part.exists() and part.stat().st_size >= HOLD - MIB, 30, "the pull to reach the hold")
            assert wait_status(daemon.url, "pull", {"preprocessing"})
            daemon.kill9()
            done_before = part.stat().st_size
            assert HOLD - MIB <= done_before <= HOLD
            mark = len(origin.requests)
            origin.release()
            daemon.start()
            final = wait_status(daemon.url, "pull", {"complete", "failed"}, timeout=45)
            assert final["status"] == "complete", final
            after = origin.since(mark, "GET")
        # resumed with a range from where it stopped, and only the rest was sent again
        assert after and after[0]["range"], after
        assert int(after[0]["range"].split("=")[1].rstrip("-")) >= done_before
        sent_after = sum(r["bytes"] for r in after)
        assert sent_after <= SIZE - done_before + MIB, (sent_after, done_before)
        assert sent_after < 0.6 * SIZE  # a restart from zero would send all 1 GiB again
        staged = daemon.staging / "pull" / "inputs" / "big.dat"
        assert staged.stat().st_size == SIZE
        assert sha256_of(staged) == expected
        assert (daemon.staging / "pull" / "outputs" / "size").read_text().strip() == str(SIZE)
    finally:
        daemon.stop()
        for path in (root, uploads, daemon.staging):
            shutil.rmtree(path, ignore_errors=True)


def test_kill9_mid_push_resumes_with_tus(daemon_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("PULSAR_TUS_CHUNK_SIZE", str(TUS_CHUNK))
    source, uploads = tmp_path / "source.bin", tmp_path / "uploads"
    uploads.mkdir()
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 1}}})
    try:
        expected = write_test_file(source)
        daemon.start()
        with HoldingOrigin(tmp_path, uploads, hold_at=HOLD) as origin:
            staging = {
                "action_mapper": {"default_action": "remote_transfer_tus",
                                  "files_endpoint": origin.url + "/api/jobs/1/files?job_key=k", "paths": []},
                "client_outputs": {"working_directory": "/gx/w", "metadata_directory": None,
                                   "output_files": ["/gx/out.dat"], "work_dir_outputs": []},
            }
            assert rest(daemon.url, "POST", "/jobs", job_id="push")[0] == 200
            code, body = rest(daemon.url, "POST", "/jobs/push/submit", remote_staging=json.dumps(staging),
                              command_line=f"cp {source} ../outputs/out.dat")
            assert code == 200, body
            wait_for(lambda: any(u["offset"] >= HOLD for u in list(origin.tus.values())), 40,
                     "the push to reach the hold")
            assert wait_status(daemon.url, "push", {"postprocessing"})
            daemon.kill9()
            (upload,) = origin.tus.values()
            sent_before = upload["offset"]
            assert sent_before == HOLD
            mark = len(origin.requests)
            origin.release()
            daemon.start()
            final = wait_status(daemon.url, "push", {"complete", "failed"}, timeout=45)
            assert final["status"] == "complete", final
            heads, patches = origin.since(mark, "HEAD"), origin.since(mark, "PATCH")
            registered = origin.uploads.get("/gx/out.dat")
        # the daemon asked the TUS server for its offset and sent only the rest
        assert heads, "no HEAD after the restart: the upload was not resumed"
        assert len(origin.tus) == 1, "a new TUS upload was created after the restart"
        sent_after = sum(r["bytes"] for r in patches)
        assert sent_after <= SIZE - sent_before + MIB, (sent_after, sent_before)
        assert sent_after < 0.6 * SIZE  # a restart from zero would send all 1 GiB again
        assert registered == upload["path"]
        assert os.path.getsize(registered) == SIZE
        assert sha256_of(registered) == expected
    finally:
        daemon.stop()
        source.unlink(missing_ok=True)
        for path in (uploads, daemon.staging):
            shutil.rmtree(path, ignore_errors=True)


def test_sigterm_mid_pull_stops_at_once_and_the_pull_resumes(daemon_factory, tmp_path):
    """A graceful stop does not wait for a transfer in flight (it may take hours): the transfer stops, its
    partial file stays, the job stays in preprocessing, and the next start resumes it."""
    root, uploads = tmp_path / "origin", tmp_path / "uploads"
    root.mkdir()
    uploads.mkdir()
    size, hold = 16 * MIB, 9 * MIB + 123
    expected = write_test_file(root / "big.bin", size)
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 1}}}).start()
    with HoldingOrigin(root, uploads, hold_at=hold) as origin:
        staging = {"setup": [{"name": "big.dat", "type": "input",
                              "action": {"action_type": "remote_transfer", "url": origin.url + "/big.bin?job_key=k",
                                         "path": "/gx/big.dat", "source": {"path": "/gx/big.dat"}}}]}
        assert rest(daemon.url, "POST", "/jobs", job_id="pull")[0] == 200
        assert rest(daemon.url, "POST", "/jobs/pull/submit", remote_staging=json.dumps(staging),
                    command_line="sha256sum ../inputs/big.dat > ../outputs/sum")[0] == 200
        part = daemon.staging / "pull" / "inputs" / "big.dat.part"
        wait_for(lambda: part.exists() and part.stat().st_size >= hold - MIB, 30, "the pull to reach the hold")
        stopped_at = time.time()
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(20) == 0
        assert time.time() - stopped_at < 5, "the stop waited for the held transfer"
        assert part.exists() and daemon.unfinished_jobs() == ["pull"]
        origin.release()
        daemon.start()
        final = wait_status(daemon.url, "pull", {"complete", "failed"}, timeout=45)
        assert final["status"] == "complete", final
    assert rest(daemon.url, "GET", "/jobs/pull/files", name="sum")[1].split()[0].decode() == expected
