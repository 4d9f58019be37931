"""Restart with many jobs held: how soon the daemon answers, how soon every job's state is true.

    .venv/bin/python benchmarks/startup.py [--jobs 10000,100000] [--pulsar-jobs 5000]

For each N: a daemon (``queued_python``, 2 jobs at once) gets N jobs (``sleep 600``) over REST (setup +
submit, 8 client threads on keep-alive connections), is killed with SIGKILL (its two running jobs go on),
and is started again on the same directories. Measured from the restart: the first answer (``/healthz``),
every job answered with a true state (pulsar_lite: ``/readyz`` says recovery has finished; Pulsar 0.16.0:
a status request for every job, answered in turn, as Pulsar computes states on request), the peak RSS of
the daemon and its CPU over that time. Pulsar runs beside it at ``--pulsar-jobs`` (its submissions take
minutes per thousand jobs here). Targets for 100k: first answer <= 3 s, every job <= 10 s, RSS <= 200 MiB.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rest_jobs import CACHE, TOKEN, cpu_seconds, free_port, memory_kib, server_pids, venv

COMMAND = "sleep 600"


class Daemon:
    def __init__(self, name: str, root: Path, pulsar_python: Path | None = None):
        self.name = name
        self.root = root
        self.port = free_port()
        self.pulsar_python = pulsar_python
        root.mkdir(parents=True)
        (root / "app.yml").write_text(json.dumps({
            "staging_directory": str(root / "staging"), "persistence_directory": str(root / "persisted"),
            "private_token": TOKEN, "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 2}}}))
        if pulsar_python:
            (root / "server.ini").write_text(f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\n\n"
                                             f"[app:main]\napp_config = %(here)s/app.yml\n")
        self.process = None

    def command(self) -> list[str]:
        if self.pulsar_python:
            return [str(self.pulsar_python.parent / "pulsar-serve"), str(self.root / "server.ini")]
        return [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.root / "app.yml"),
                "--port", str(self.port)]

    def start(self) -> float:
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(self.command(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return time.monotonic()

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def get(self, path: str, connection=None) -> tuple[int, bytes]:
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sep = "&" if "?" in path else "?"
            connection.request("GET", f"{path}{sep}private_token={TOKEN}")
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            if own:
                connection.close()


def submit_all(daemon: Daemon, count: int, threads: int = 8) -> float:
    started = time.monotonic()
    counter = iter(range(count))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            job_id = f"s{index}"
            for path in (f"/jobs?job_id={job_id}&private_token={TOKEN}",
                         f"/jobs/{job_id}/submit?command_line={urllib.parse.quote(COMMAND)}&private_token={TOKEN}"):
                request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}", data=b"", method="POST")
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return count / (time.monotonic() - started)


def wait_answer(daemon: Daemon, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = daemon.get("/healthz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{daemon.name} did not answer")


def sample(daemon: Daemon, peak: list, cpu: list, stop: threading.Event) -> None:
    while not stop.is_set():
        pids = server_pids(daemon.process.pid)
        peak[0] = max(peak[0], memory_kib(pids, "VmHWM") / 1024)
        cpu[0] = cpu_seconds(pids)
        stop.wait(0.1)


def restart(daemon: Daemon, count: int, lite: bool) -> dict:
    daemon.kill9()
    begun = daemon.start()
    peak, cpu, stop = [0.0], [0.0], threading.Event()
    sampler = threading.Thread(target=sample, args=(daemon, peak, cpu, stop), daemon=True)
    sampler.start()
    wait_answer(daemon)
    first = time.monotonic() - begun
    if lite:
        while True:
            status, body = daemon.get("/readyz")
            if status == 200:
                break
            time.sleep(0.05)
    else:  # Pulsar computes a job's state when asked: ask for every one
        connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
        for index in range(count):
            status, body = daemon.get(f"/jobs/s{index}/status", connection)
            if status != 200:
                raise RuntimeError(f"{daemon.name}: status of s{index}: {status}")
        connection.close()
    every = time.monotonic() - begun
    wrong = 0
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=120)
    for index in list(range(0, count, max(1, count // 200))):  # a true state: queued, or running (the 2)
        status, body = daemon.get(f"/jobs/s{index}/status", connection)
        state = json.loads(body).get("status")
        wrong += state not in ("queued", "running")
    connection.close()
    stop.set()
    sampler.join()
    return {"first": first, "every": every, "peak_mib": peak[0], "cpu_s": cpu[0], "wrong": wrong}


def kill_jobs(root: Path) -> None:
    subprocess.run(["pkill", "-f", f"{root}/.*command.sh"], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default="10000,100000")
    parser.add_argument("--pulsar-jobs", type=int, default=5000, help="0: leave Pulsar out")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-startup-"))
    runs = [("pulsar_lite", int(n), None) for n in args.jobs.split(",")]
    if args.pulsar_jobs:
        runs.append(("pulsar 0.16.0", args.pulsar_jobs,
                     venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")))
    results = []
    for name, count, python in runs:
        daemon = Daemon(name, scratch / f"{name.split()[0]}-{count}", python)
        daemon.start()
        try:
            wait_answer(daemon)
            rate = submit_all(daemon, count)
            print(f"{name}: {count} jobs submitted at {rate:.0f} jobs/s", flush=True)
            time.sleep(2)
            result = restart(daemon, count, lite=python is None)
            results.append((name, count, rate, result))
            print(f"  restart -> first answer {result['first']:.2f} s, every job true {result['every']:.2f} s, "
                  f"peak RSS {result['peak_mib']:.1f} MiB, CPU {result['cpu_s']:.1f} s", flush=True)
        finally:
            daemon.stop()
            kill_jobs(daemon.root)
    print(f"\n{'daemon':<15}{'jobs':>8}{'submit/s':>10}{'first answer':>14}{'every job':>11}{'peak RSS':>10}"
          f"{'CPU':>8}  wrong states in a sample of 200")
    for name, count, rate, r in results:
        print(f"{name:<15}{count:>8}{rate:>10.0f}{r['first']:>13.2f}s{r['every']:>10.2f}s{r['peak_mib']:>8.1f}Mi"
              f"{r['cpu_s']:>7.1f}s  {r['wrong']}")
    big = [r for name, count, _, r in results if name == "pulsar_lite" and count >= 100000]
    if big:
        r = big[-1]
        print(f"\n100k targets: first answer {r['first']:.2f} s [<= 3: {'PASS' if r['first'] <= 3 else 'MISS'}], "
              f"every job {r['every']:.2f} s [<= 10: {'PASS' if r['every'] <= 10 else 'MISS'}], peak RSS "
              f"{r['peak_mib']:.1f} MiB [<= 200: {'PASS' if r['peak_mib'] <= 200 else 'MISS'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
