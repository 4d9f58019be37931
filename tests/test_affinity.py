"""daemon_cpus: the daemon's threads on one CPU, its jobs on every CPU it was started with."""
import os
import threading
from pathlib import Path

import pytest

from pulsar_lite import affinity
from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError

from tests.integration.rest_helpers import submit, wait_status

ALLOWED = os.sched_getaffinity(0)
several_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs a machine (or CPU mask) with 2 CPUs or more")


def test_setting_is_parsed_and_checked():
    assert affinity.parse_cpus("auto") == "auto" and affinity.parse_cpus("OFF") == "off"
    assert affinity.parse_cpus(False) == "off" and affinity.parse_cpus(True) == "auto"  # YAML's bare off / on
    assert affinity.parse_cpus(3) == (3,)
    assert affinity.parse_cpus("0-2, 5,1") == (0, 1, 2, 5)
    for bad in ("x", "1-", "3-1", "1,,2", "-1"):
        with pytest.raises(ValueError):
            affinity.parse_cpus(bad)
    assert build_config({"daemon_cpus": False}).daemon_cpus == "off"
    with pytest.raises(ConfigError, match="daemon_cpus"):
        build_config({"daemon_cpus": "two"})


def test_choice_of_cpus():
    assert affinity.choose("auto", {0, 1, 2, 3}) == {3}
    assert affinity.choose("auto", {5}) is None  # one CPU: nothing to narrow
    assert affinity.choose("off", {0, 1}) is None
    assert affinity.choose((1,), {0, 1}) == {1}
    assert affinity.choose((0, 1), {0, 1}) is None
    with pytest.raises(ConfigError, match="CPU\\(s\\) 7 are not among"):
        affinity.choose((1, 7), {0, 1})


@several_cpus
def test_pin_narrows_the_thread_and_unpinned_widens_it_for_a_start(monkeypatch):
    monkeypatch.setattr(affinity, "_started_with", None)
    seen = {}

    def daemon_main():  # a thread of its own: the test process keeps its mask
        seen["pinned"] = affinity.pin("auto")
        seen["own"] = os.sched_getaffinity(0)
        with affinity.unpinned():
            seen["inside"] = os.sched_getaffinity(0)
        seen["after"] = os.sched_getaffinity(0)
        child = threading.Thread(target=lambda: seen.setdefault("child", os.sched_getaffinity(0)))
        child.start()
        child.join()

    thread = threading.Thread(target=daemon_main)
    thread.start()
    thread.join()
    assert seen["pinned"] == seen["own"] == seen["after"] == seen["child"] == {max(ALLOWED)}
    assert seen["inside"] == ALLOWED
    assert os.sched_getaffinity(0) == ALLOWED


def _masks(pids) -> dict[str, frozenset]:
    """thread id -> its CPUs (Cpus_allowed_list, which daemon_cpus' parser reads), over every thread of ``pids``."""
    masks = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    masks[f"{pid}/{task.name}"] = frozenset(affinity.parse_cpus(line.split(":", 1)[1]))
    return masks


@several_cpus
@pytest.mark.parametrize("server", ["paste", "granian"])
@pytest.mark.parametrize("setting", ["auto", "off"])
def test_daemon_threads_pinned_and_jobs_get_every_cpu(daemon_factory, server, setting):
    daemon = daemon_factory({"web_server": server, "daemon_cpus": setting}).start()
    try:
        submit(daemon.url, "cpus", "grep Cpus_allowed_list /proc/self/status > cpus.txt")
        assert wait_status(daemon.url, "cpus", ("complete", "failed"))["status"] == "complete"
        job_line = (daemon.staging / "cpus" / "working" / "cpus.txt").read_text()
        job_mask = set(affinity.parse_cpus(job_line.split(":", 1)[1]))
        masks = _masks([daemon.process.pid, *daemon.worker_pids()])
    finally:
        daemon.stop()
    assert job_mask == ALLOWED  # a process the job started: every CPU, whatever the daemon's
    expected = frozenset({max(ALLOWED)} if setting == "auto" else ALLOWED)
    assert len(masks) >= 3 and set(masks.values()) == {expected}, masks
