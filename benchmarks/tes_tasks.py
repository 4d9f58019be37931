"""TES tasks through py-tes: tasks per second and submit-to-COMPLETE latency, beside the container runtime's
own floor measured in the same run and the figure TESP API publishes.

    .venv/bin/python benchmarks/tes_tasks.py [--tasks 200] [--concurrency 10] [--floor-runs 20]

The daemon runs ``queued_python`` (``--jobs`` at once) with the TES face on; each of ``--concurrency``
client threads creates a task (one executor: ``true`` in the local image), polls it (MINIMAL view, every
0.05 s) until it is final, and starts the next. The runtime's floor is ``podman run --rm IMAGE true``
back to back, measured before and after the tasks (the machine drifts); its rate is what one stream of
containers can do here. TESP API (CESNET) publishes, for its stress test, 100 tasks from 10 threads, each
complete within 100 s (tests/load_stress_test.py): a bound, not a rate. Target: >= 80 % of the floor.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import tes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest_jobs import percentile  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/pl-test:latest"
TOKEN = "bench-token"


def floor(runs: int) -> float:
    """Seconds per ``podman run --rm IMAGE true``, back to back (median)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["podman", "run", "--rm", IMAGE, "true"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def start_daemon(root: Path, jobs: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (root / "app.yml").write_text(json.dumps({
        "staging_directory": str(root / "staging"), "persistence_directory": str(root / "persisted"),
        "private_token": TOKEN, "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": jobs}}}))
    log = open(root / "server.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "pulsar_lite", "serve", "--config", str(root / "app.yml"),
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            import urllib.request
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the daemon did not start")


def run_tasks(url: str, count: int, concurrency: int) -> tuple[float, list[float], list[str]]:
    client = tes.HTTPClient(url, token=TOKEN, timeout=60)
    latencies, bad = [], []
    lock = threading.Lock()
    remaining = [count]

    def worker():
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            started = time.perf_counter()
            task_id = client.create_task(tes.Task(executors=[tes.Executor(image=IMAGE, command=["true"])]))
            while True:
                state = client.get_task(task_id, view="MINIMAL").state
                if state not in ("QUEUED", "INITIALIZING", "RUNNING"):
                    break
                time.sleep(0.05)
            with lock:
                latencies.append(time.perf_counter() - started)
                if state != "COMPLETE":
                    bad.append(f"{task_id}: {state}")

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=4, help="num_concurrent_jobs of the daemon's manager")
    parser.add_argument("--floor-runs", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pulsar-lite-tes-bench-"))
    process, url = start_daemon(root, args.jobs)
    try:
        before = floor(args.floor_runs)
        elapsed, latencies, bad = run_tasks(url, args.tasks, args.concurrency)
        after = floor(args.floor_runs)
    finally:
        process.terminate()
        process.wait(30)
    rate = args.tasks / elapsed
    floor_rate = 1 / statistics.median([before, after])
    print(f"{args.tasks} tasks (podman 'true' in {IMAGE}) at concurrency {args.concurrency}, "
          f"queued_python with {args.jobs} jobs at once, {os.cpu_count()} CPUs")
    print(f"  pulsar_lite TES:  {rate:.2f} tasks/s; submit -> COMPLETE p50 {percentile(latencies, 0.5):.2f} s, "
          f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s; not COMPLETE: {len(bad)} {bad[:3]}")
    print(f"  runtime floor:    podman run --rm {IMAGE} true back to back: {before * 1000:.0f} ms before, "
          f"{after * 1000:.0f} ms after = {floor_rate:.2f} runs/s")
    print("  TESP API (published): 100 tasks from 10 threads, each COMPLETE within 100 s")
    print(f"  tasks/s / floor: {rate / floor_rate:.2f} [target >= 0.80: {'PASS' if rate >= 0.8 * floor_rate else 'MISS'}]")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
