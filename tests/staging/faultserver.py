"""A real HTTP job-files origin with scripted faults, for transfer tests.

GET serves files from a directory with proper Range support (206, 416);
POST accepts multipart uploads (field ``file``) into ``uploads`` keyed by the
``path`` query parameter. ``faults`` is a list consumed one per request:
``("status", code)`` answers that status, ``("drop", n)`` sends n body bytes
then closes the connection, ``("stall", seconds)`` sends headers and then
nothing for that long. Every request is recorded in ``requests``.
"""
from __future__ import annotations

import cgi
import os
import shutil
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FaultServer:
    def __init__(self, root: str):
        self.root = root
        self.uploads: dict[str, bytes] = {}
        self.filenames: dict[str, str] = {}  # the file name of each multipart upload's part
        self.faults: list[tuple] = []
        self.requests: list[dict] = []
        self.rate = 0
        self.tus: dict[str, dict] = {}
        self.patched_bytes = 0
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self):
                query = parse_qs(urlsplit(self.path).query)
                entry = {"method": self.command, "path": urlsplit(self.path).path,
                         "range": self.headers.get("Range"), "query": query}
                server.requests.append(entry)
                return entry, server.faults.pop(0) if server.faults else None

            def _status(self, code):
                body = f"status {code}\n".encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with server.lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._get()
                finally:
                    with server.lock:
                        server.active -= 1

            def _get(self):
                entry, fault = self._record()
                if fault and fault[0] == "status":
                    return self._status(fault[1])
                if entry["path"].startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", entry["path"][len("/redirect"):])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = os.path.join(server.root, entry["path"].lstrip("/"))
                if not os.path.isfile(path):
                    return self._status(404)
                size = os.path.getsize(path)
                start = 0
                if entry["range"]:
                    start = int(entry["range"].split("=")[1].split("-")[0])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                with open(path, "rb") as handle:
                    handle.seek(start)
                    if fault and fault[0] == "drop":
                        self.wfile.write(handle.read(fault[1]))
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault and fault[0] == "stall":
                        self.wfile.write(handle.read(1024))
                        self.wfile.flush()
                        time.sleep(fault[1])
                        self.close_connection = True
                        return
                    if server.rate:  # bytes per second, for tests that must interrupt a transfer
                        for index, chunk in enumerate(iter(lambda: handle.read(server.rate // 20), b"")):
                            if index:
                                time.sleep(0.05)  # never after the last chunk: the request is over then
                            self.wfile.write(chunk)
                        self.wfile.flush()
                        return
                    shutil.copyfileobj(handle, self.wfile, 1024 * 1024)

            def do_HEAD(self):
                entry, _ = self._record()
                upload = server.tus.get(entry["path"].rsplit("/", 1)[-1])
                if upload is None:
                    return self._status(404)
                self.send_response(200)
                self.send_header("Upload-Offset", str(len(upload["data"])))
                self.send_header("Upload-Length", str(upload["length"]))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PATCH(self):
                entry, fault = self._record()
                upload = server.tus.get(entry["path"].rsplit("/", 1)[-1])
                length = int(self.headers.get("Content-Length", 0))
                if fault and fault[0] == "drop":  # take part of the chunk, then vanish
                    upload["data"].extend(self.rfile.read(min(fault[1], length)))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if upload is None or int(self.headers["Upload-Offset"]) != len(upload["data"]):
                    self.rfile.read(length)
                    return self._status(409)
                remaining = length
                while remaining:  # keep what arrives, like a real TUS server, even if the sender dies
                    piece = self.rfile.read(min(remaining, server.rate // 20 if server.rate else remaining))
                    if not piece:
                        return
                    upload["data"].extend(piece)
                    server.patched_bytes += len(piece)
                    remaining -= len(piece)
                    if server.rate:
                        time.sleep(0.05)
                self.send_response(204)
                self.send_header("Upload-Offset", str(len(upload["data"])))
                self.end_headers()

            def do_POST(self):
                entry, fault = self._record()
                if fault and fault[0] == "status":
                    length = int(self.headers.get("Content-Length", 0))
                    self.rfile.read(length)
                    return self._status(fault[1])
                if entry["path"].endswith("/job_files/resumable_upload"):
                    upload_id = uuid.uuid4().hex
                    server.tus[upload_id] = {"length": int(self.headers["Upload-Length"]), "data": bytearray()}
                    self.send_response(201)
                    self.send_header("Location", f"{entry['path']}/{upload_id}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                    server.uploads[entry["query"]["path"][0]] = bytes(server.tus[form["session_id"][0]]["data"])
                    return self._status(200)
                form = cgi.FieldStorage(fp=self.rfile, headers=self.headers,
                                        environ={"REQUEST_METHOD": "POST", "CONTENT_TYPE": self.headers["Content-Type"]})
                server.uploads[entry["query"]["path"][0]] = form["file"].file.read()
                server.filenames[entry["query"]["path"][0]] = form["file"].filename
                self._status(200)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
