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
