"""TES outputs with py-tes and real podman (the fixtures of test_tes.py): what is sent after an executor
failed, and paths directly under the container's /."""
from __future__ import annotations

import pytest

from tests.integration.test_tes import client, executor, files, podman, server, task, wait  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
tes = pytest.importorskip("tes")


def test_outputs_are_sent_after_an_executor_failed(client, files):
    """Nextflow reads .command.err and .exitcode of a failed task: they arrive, the task stays EXECUTOR_ERROR,
    and the output the executor never wrote is one line of system_logs."""
    task_id = client.create_task(task(
        executor("sh", "-c", "echo 'no such file: x.fa' > /work/.command.err; echo 1 > /work/.exitcode; exit 1"),
        outputs=[tes.Output(url=f"{files.url}/run/.command.err", path="/work/.command.err"),
                 tes.Output(url=f"{files.url}/run/.exitcode", path="/work/.exitcode"),
                 tes.Output(name="aligned", url=f"{files.url}/run/out.bam", path="/work/out.bam")]))
    done = wait(client, task_id)
    assert done.state == "EXECUTOR_ERROR"
    assert done.logs[0].logs[0].exit_code == 1
    assert files.stored["/run/.command.err"] == b"no such file: x.fa\n" and files.stored["/run/.exitcode"] == b"1\n"
    assert "/run/out.bam" not in files.stored
    assert sorted(o.path for o in done.logs[0].outputs) == ["/work/.command.err", "/work/.exitcode"]
    assert "outputs not sent, the executors did not create them: output aligned (/work/out.bam)" in \
        done.logs[0].system_logs
