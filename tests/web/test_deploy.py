"""Paste Deploy: existing server.ini deployments load pulsar_lite's app."""
import json
import os
import threading

from paste.deploy import loadapp
from webob import Request

from pulsar_lite import affinity


def test_loadapp_from_server_ini(tmp_path, monkeypatch):
    (tmp_path / "app.yml").write_text(f"staging_directory: {tmp_path / 'staging'}\n"
                                      f"persistence_directory: {tmp_path / 'p'}\nprivate_token: tok\n")
    (tmp_path / "server.ini").write_text(
        "[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = 8913\n\n"
        "[app:main]\nuse = egg:pulsar_lite\napp_config = %(here)s/app.yml\n")
    monkeypatch.setattr(affinity, "_started_with", None)
    loaded = {}

    def load():  # as paster's main thread would: the factory narrows the loading thread's CPUs (daemon_cpus)
        loaded["app"] = loadapp(f"config:{tmp_path / 'server.ini'}")
        loaded["cpus"] = os.sched_getaffinity(0)

    thread = threading.Thread(target=load)  # a thread of its own, so that the test process keeps its CPUs
    thread.start()
    thread.join()
    app = loaded["app"]
    try:
        allowed = os.sched_getaffinity(0)
        assert loaded["cpus"] == ({max(allowed)} if len(allowed) > 1 else allowed)
        response = Request.blank("/jobs?job_id=1&private_token=tok", method="POST").get_response(app)
        assert response.status_int == 200
        assert json.loads(response.body)["job_directory"] == str(tmp_path / "staging" / "1")
    finally:
        app.engine.stop()
