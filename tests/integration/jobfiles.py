"""A Galaxy-compatible job-files API for tests: simple-job-files (PyPI) served on loopback."""
import threading
from contextlib import contextmanager

from paste import httpserver
from simplejobfiles.app import JobFilesApp


@contextmanager
def job_files_server(root_directory: str):
    """Serve Galaxy's /api/jobs/<id>/files API for files under ``root_directory``; yields its base URL."""
    app = JobFilesApp(root_directory=root_directory, allow_multiple_downloads=True)
    server = httpserver.serve(app, host="127.0.0.1", port=0, start_loop=False, use_threadpool=True,
                              threadpool_workers=8,
                              daemon_threads=True)  # no atexit shutdown logging to closed streams
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.running = False
        thread.join(5)
        server.server_close()


#: what Galaxy's job-files API appends to instead of replacing (live tool output, Galaxy 24.2+)
APPENDED = ("/outputs/tool_stdout", "/outputs/tool_stderr")


class AppendingStreams:
    """Galaxy's contract for live output in front of simple-job-files: a POST whose ``path`` ends in
    ``outputs/tool_stdout`` or ``outputs/tool_stderr`` appends its ``file`` part to that file; every other request
    goes to the job-files app. Each append is recorded as (path, bytes, time)."""

    def __init__(self, app):
        import time

        self.app = app
        self.appends: list[tuple[str, bytes, float]] = []
        self.refuse = False  # answer 500 to every append (a Galaxy that cannot take them)
        self._time = time.time

    def __call__(self, environ, start_response):
        from webob import Request

        request = Request(environ)
        path = request.GET.get("path", "")
        if request.method == "POST" and path.endswith(APPENDED):
            if self.refuse:
                start_response("500 Internal Server Error", [("Content-Type", "application/json")])
                return [b'{"err_msg": "refused"}']
            part = request.POST.get("file")
            data = part.file.read() if hasattr(part, "file") else b""
            import os

            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "ab") as handle:
                handle.write(data)
            self.appends.append((path, data, self._time()))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"message": "ok"}']
        return self.app(environ, start_response)


@contextmanager
def appending_job_files_server(root_directory: str):
    """Like job_files_server, appending live output as Galaxy does; yields (base URL, the AppendingStreams)."""
    app = AppendingStreams(JobFilesApp(root_directory=root_directory, allow_multiple_downloads=True))
    server = httpserver.serve(app, host="127.0.0.1", port=0, start_loop=False, use_threadpool=True,
                              threadpool_workers=8, daemon_threads=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", app
    finally:
        server.running = False
        thread.join(5)
        server.server_close()
