"""A second daemon on the same port or the same state refuses to start, and the first keeps serving."""
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


def second_daemon(config: Path, port: int, server: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run([sys.executable, "-m", "pulsar_lite", "serve", "--config", str(config), "--port", str(port),
                           "--server", server], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("server", ["paste", "granian"])
def test_second_daemon_is_refused(daemon_factory, server):
    from tests.conftest import free_port
    first = daemon_factory({"web_server": server}).start()
    config = first.root / "app.yml"

    same_port = second_daemon(config, first.port, server)
    assert same_port.returncode == 2
    assert f"cannot listen on 127.0.0.1:{first.port}" in same_port.stderr

    same_state = second_daemon(config, free_port(), server)
    assert same_state.returncode == 2
    assert "in use by another pulsar_lite daemon (pid" in same_state.stderr

    with urllib.request.urlopen(first.url + "healthz", timeout=5) as response:  # the first one goes on
        assert json.load(response)["status"] == "ok"
    assert first.process.poll() is None
