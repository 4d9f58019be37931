import json
import os

from pulsar_lite.engine.status import read_stream, trim_stream
from tests.conftest import wait_until


def test_trim_keeps_head_and_tail():
    data = b"H" * 100 + b"T" * 100
    trimmed = trim_stream(data, 50)
    assert len(trimmed) == 50
    assert trimmed.startswith(b"H") and trimmed.endswith(b"T") and b"\n..\n" in trimmed
    assert trim_stream(b"short", 50) == b"short"


def test_read_stream_respects_maximum_then_cap(tmp_path):
    path = tmp_path / "s"
    path.write_bytes(b"a" * 1000 + b"END")
    assert read_stream(str(path), maximum=100, cap=None).endswith("END")
    assert len(read_stream(str(path), maximum=100, cap=None).encode()) <= 104
    assert read_stream(str(tmp_path / "missing"), 100) == ""


def test_finished_statuses_match_the_record_instance_and_stay_bounded():
    from types import SimpleNamespace

    from pulsar_lite.engine.status import FinishedStatuses
    cache = FinishedStatuses(size=2, stream_bytes=10)
    record, newer = SimpleNamespace(), SimpleNamespace()
    cache.put(("m", "a"), record, {"status": "complete", "stdout": "ok"})
    copy = cache.get(("m", "a"), record)
    assert copy == {"status": "complete", "stdout": "ok"}
    copy["status"] = "changed"  # a caller's change does not reach the cache
    assert cache.get(("m", "a"), record)["status"] == "complete"
    assert cache.get(("m", "a"), newer) is None  # the job's row was written since
    cache.put(("m", "big"), record, {"stdout": "x" * 6, "job_stderr": "y" * 6})  # more stream bytes than kept
    assert cache.get(("m", "big"), record) is None
    cache.put(("m", "b"), record, {})
    cache.put(("m", "c"), record, {})
    assert cache.get(("m", "a"), record) is None and cache.get(("m", "c"), record) == {}  # the oldest went
    cache.forget(("m", "c"))
    assert cache.get(("m", "c"), record) is None


def test_the_status_reply_never_reads_a_file_outside_the_job_directory(engine_factory, tmp_path):
    """A job (running as another account, on a cluster) replaces its streams and its dynamic file sources
    with symlinks to a file only the daemon can read: the reply holds none of it."""
    engine = engine_factory()
    secret = tmp_path / "app.yml"
    secret.write_text("private_token: s3cret-17\n")
    engine.setup("_default_", "planter")
    links = " && ".join(f"ln -sf {secret} ../metadata/{name}" for name in
                        ("job_stdout", "job_stderr", "tool_stdout", "tool_stderr"))
    engine.submit("_default_", "planter", {
        "command_line": f"echo '{{}}' > real.json && ln -s real.json inside.json && ln -s {secret} galaxy.json && "
                        f"ln -s ../metadata sneaky && {links}",
        "dynamic_file_sources": [{"type": "galaxy", "path": "galaxy.json"}, {"type": "galaxy", "path": "inside.json"},
                                 {"type": "galaxy", "path": "sneaky/job_stdout"}]})
    wait_until(lambda: engine.store.get("_default_", "planter").terminal, what="the job's end")
    status = engine.status("_default_", "planter")
    assert status["status"] == "complete"
    assert os.path.islink(os.path.join(status["metadata_directory"], "job_stdout"))  # the job did plant them
    assert "s3cret" not in json.dumps(status)
    # a symlink that stays inside the job directory is still read
    assert status["realized_dynamic_file_sources"] == [{"type": "galaxy", "path": "inside.json", "contents": "{}\n"}]
