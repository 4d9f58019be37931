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


def test_paths_directly_under_the_containers_root(client, files):
    """An input, a FILE output, a stream and a wildcard's path_prefix at /: the files are mounted one by one
    (the container's / is its image's), the output and the stream made empty before the first executor."""
    task_id = client.create_task(task(
        executor("sh", "-c", "tr a-z A-Z < /in.txt > /out.txt; echo logged", stdout="/log.txt"),
        executor("sh", "-c", "cat /log.txt /out.txt; echo more >> /out.txt; echo made > /v/made.txt"),
        inputs=[tes.Input(path="/in.txt", content="shout\n")],
        outputs=[tes.Output(url=f"{files.url}/r/out.txt", path="/out.txt"),
                 tes.Output(url=f"{files.url}/r/log.txt", path="/log.txt"),
                 tes.Output(url=f"{files.url}/r/all", path="/v/*.txt", path_prefix="/")],
        volumes=["/v"]))
    done = wait(client, task_id)
    assert done.state == "COMPLETE", done.logs[0].system_logs
    assert done.logs[0].logs[1].stdout == "logged\nSHOUT\n"
    assert files.stored["/r/out.txt"] == b"SHOUT\nmore\n" and files.stored["/r/log.txt"] == b"logged\n"
    assert files.stored["/r/all/v/made.txt"] == b"made\n"
    missing = client.create_task(task(executor("true"), outputs=[tes.Output(url=f"{files.url}/m", path="/m.txt")]))
    done = wait(client, missing)
    assert done.state == "SYSTEM_ERROR" and "/m" not in files.stored
    assert any("(/m.txt): the executors did not create it" in line for line in done.logs[0].system_logs)
