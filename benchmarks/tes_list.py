"""Listing TES tasks with many held: ListTasks with and without filters, and the start-up that readies them.

    PYTHONPATH=. .venv/bin/python benchmarks/tes_list.py [--tasks 10000] [--runs 5] [--keep DIR | --reuse DIR]

Builds a store of ``--tasks`` finished tasks straight through the store's own calls (no job runs: 80 %
complete, 8 % failed executors, 7 % failed jobs, 5 % cancelled; names ``sample-00000``...; tags ``project``
one of ten and ``run`` one of each), opens it as the daemon does (engine, TES service, its start-up), then
times ``TesService.list`` as the TES face calls it: the first page of each query, the median of ``--runs``.
``--keep DIR`` leaves the store in DIR; ``--reuse DIR`` times a store made before (e.g. by an older
pulsar_lite: the start-up figure is then its migration). Prints one line per query: milliseconds and the
number of tasks on the page.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pulsar_lite import wire
from pulsar_lite.config import build_config
from pulsar_lite.engine import JobEngine
from pulsar_lite.tes import TesService
from pulsar_lite.tes.protocol import read_task

M = wire.DEFAULT_MANAGER
S = wire.State
#: (share of the tasks, the job's path through its states, its return code, its message)
KINDS = ((0.80, (S.PREPROCESSING, S.QUEUED, S.RUNNING, S.POSTPROCESSING, S.COMPLETE), 0, None),
         (0.08, (S.PREPROCESSING, S.QUEUED, S.RUNNING, S.POSTPROCESSING, S.COMPLETE), 1, None),
         (0.07, (S.PREPROCESSING, S.FAILED), None, "staging inputs failed: 404"),
         (0.05, (S.PREPROCESSING, S.CANCELLED), None, None))
QUERIES = (
    ("no filter", {}),
    ("state=COMPLETE", {"state": "COMPLETE"}),
    ("state=EXECUTOR_ERROR", {"state": "EXECUTOR_ERROR"}),
    ("state=CANCELED", {"state": "CANCELED"}),
    ("state=RUNNING (none)", {"state": "RUNNING"}),
    ("tag project=p3", {"tags": {"project": "p3"}}),
    ("tag run=r<last> (one)", {"tags": {"run": "LAST"}}),
    ("tag project=p3 + state=SYSTEM_ERROR", {"tags": {"project": "p3"}, "state": "SYSTEM_ERROR"}),
    ("name_prefix=sample-0999 (ten)", {"name_prefix": "sample-0999"}),
)


def config(directory: Path):
    return build_config({"staging_directory": str(directory / "staging"), "persistence_directory": str(directory / "p"),
                         "store_synchronous": "normal", "tes_container_command": "/bin/false"})


def build(directory: Path, count: int) -> None:
    """``count`` finished tasks, written through the store (the engine is not started: nothing runs)."""
    engine = JobEngine(config(directory))
    store = engine.store
    bounds, total = [], 0.0
    for share, path, code, message in KINDS:
        total += share
        bounds.append((total * count, path, code, message))
    created = time.time() - count
    for n in range(count):
        task_id = f"tes-{uuid.uuid4().hex}"
        _, path, code, message = next(b for b in bounds if n < b[0])
        task = read_task({"name": f"sample-{n:05d}", "tags": {"project": f"p{n % 10}", "run": f"r{n}"},
                          "executors": [{"image": "busybox", "command": ["sh", "-c", f"echo {n}"]}],
                          "inputs": [{"path": "/in/a.txt", "content": "x" * 200}],
                          "outputs": [{"path": "/out/b.txt", "url": f"http://h/{n}/b.txt"}]})
        task["system_logs"] = []
        store.create(M, task_id, "tes", "1.1.0", durable=False)
        store.put_task(task_id, M, created + n, task["name"], task)
        store.transition(M, task_id, path, message=message, returncode=code, durable=False)
    engine.stop()


def measure(directory: Path, runs: int, count: int) -> None:
    started = time.perf_counter()
    engine = JobEngine(config(directory))
    engine.background_recovery = False
    tes = TesService(engine, engine.config)
    engine.start()
    tes.recover()
    print(f"{'start-up (engine, TES service, recover)':44} {1000 * (time.perf_counter() - started):9.1f} ms")
    try:
        for label, query in QUERIES:
            query = dict(query)
            if query.get("tags", {}).get("run") == "LAST":
                query["tags"] = {"run": f"r{count - 1}"}
            for view in ("MINIMAL", "BASIC") if label == "no filter" else ("MINIMAL",):
                times, found = [], 0
                for _ in range(runs):
                    begun = time.perf_counter()
                    page = tes.list(view, 256, None, query.get("name_prefix"), query.get("state"),
                                    query.get("tags", {}))
                    times.append(time.perf_counter() - begun)
                    found = len(page["tasks"])
                print(f"{label + ' ' + view:44} {1000 * statistics.median(times):9.1f} ms  {found:4d} tasks")
        begun, seen, token = time.perf_counter(), 0, None
        while True:
            page = tes.list("MINIMAL", 2047, token, None, None, {})
            seen += len(page["tasks"])
            token = page.get("next_page_token")
            if not token:
                break
            from pulsar_lite.tes.protocol import read_page_token
            token = read_page_token(token)
        print(f"{'every task, pages of 2047, MINIMAL':44} {1000 * (time.perf_counter() - begun):9.1f} ms  {seen:4d} tasks")
    finally:
        engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="build the store in this directory and leave it there")
    parser.add_argument("--reuse", help="time the store in this directory (made by --keep)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.reuse or args.keep or scratch)
        if not args.reuse:
            directory.mkdir(parents=True, exist_ok=True)
            begun = time.perf_counter()
            build(directory, args.tasks)
            print(f"{'build ' + str(args.tasks) + ' tasks':44} {time.perf_counter() - begun:9.1f} s")
        measure(directory, args.runs, args.tasks)


if __name__ == "__main__":
    main()
