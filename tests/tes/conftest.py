"""TES tasks run by a real engine without containers: a stand-in runtime runs each executor's command on the
host, with ``ROOT`` set to the task's mirror (``<job>/tes/root``), so that ``$ROOT/data/out.txt`` is the
container's ``/data/out.txt``."""
import time

import pytest

from pulsar_lite.tes import TesService
from pulsar_lite.tes.protocol import FINAL_STATES

#: podman's ``run`` as far as these tests need it: the options skipped, the mounts' common root found
FAKE_RUNTIME = r"""#!/bin/bash
[ "$1" = run ] || exit 0
shift
root=
while [ $# -gt 0 ]; do
  case $1 in
    -v) spec=$2; host=${spec%%:*}; rest=${spec#*:}; target=${rest%%:*}; root=${host%"$target"}; shift 2 ;;
    --name|-w|-e|--cpus|--memory) shift 2 ;;
    -*) shift ;;
    *) shift; break ;;
  esac
done
export ROOT=$root
exec "$@"
"""


@pytest.fixture
def fake_runtime(tmp_path):
    path = tmp_path / "bin" / "fake-runtime"
    path.parent.mkdir()
    path.write_text(FAKE_RUNTIME)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def tes_service(engine_factory, fake_runtime, tmp_path):
    """``make(**app)``: (engine, TesService) whose executors run on the host; ``tmp_path/sent`` is a file://
    root outputs may be sent to."""
    sent = tmp_path / "sent"
    sent.mkdir()

    def make(**app):
        engine = engine_factory(tes_container_command=fake_runtime, tes_file_roots=[str(sent)], **app)
        return engine, TesService(engine, engine.config)

    return make


def finished(tes, task_id: str, timeout: float = 30) -> dict:
    """The task's FULL view once it is in a final state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if tes.get(task_id, "MINIMAL")["state"] in FINAL_STATES:
            return tes.get(task_id, "FULL")
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} is {tes.get(task_id, 'MINIMAL')['state']} after {timeout} s")


def executor(script: str, **fields) -> dict:
    return {"image": "busybox", "command": ["sh", "-c", script], **fields}
