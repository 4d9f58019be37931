"""Paste Deploy: existing server.ini deployments load pulsar_lite's app."""
import json

from paste.deploy import loadapp
from webob import Request


def test_loadapp_from_server_ini(tmp_path):
    (tmp_path / "app.yml").write_text(f"staging_directory: {tmp_path / 'staging'}\n"
                                      f"persistence_directory: {tmp_path / 'p'}\nprivate_token: tok\n")
    (tmp_path / "server.ini").write_text(
        "[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = 8913\n\n"
        "[app:main]\nuse = egg:pulsar_lite\napp_config = %(here)s/app.yml\n")
    app = loadapp(f"config:{tmp_path / 'server.ini'}")
    try:
        response = Request.blank("/jobs?job_id=1&private_token=tok", method="POST").get_response(app)
        assert response.status_int == 200
        assert json.loads(response.body)["job_directory"] == str(tmp_path / "staging" / "1")
    finally:
        app.engine.stop()
