#!/usr/bin/env python3
"""REST job throughput: pulsar_lite against the real Pulsar 0.16.0, same machine, same run.

Both servers get the same app configuration (queued_python, num_concurrent_jobs 16) and
are driven by the real client (pulsar-galaxy-lib 0.16.0, `_rest_client_driver.py`): N trivial
jobs, each with 3 small inputs pushed by the client (transfer) and 2 outputs downloaded,
at each concurrency. Printed per server: jobs/s, p50/p95 latency (submit -> outputs
downloaded -> cleaned), server CPU seconds per job (utime+stime of the server processes
themselves; job processes are excluded), idle and peak RSS of the server processes.

    python benchmarks/rest_jobs.py [--jobs 200] [--concurrency 1,16] [--only pulsar_lite|pulsar]

Virtualenvs are made on first use under .cache/ (Pulsar: pulsar-app[web]==0.16.0;
client: pulsar-galaxy-lib==0.16.0). Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
DRIVER = Path(__file__).resolve().parent / "_rest_client_driver.py"
TOKEN = "bench-token"
CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1


def venv(path: Path, *packages: str) -> Path:
    python = path / "bin" / "python"
    marker = path / ".ready"
    wanted = " ".join(packages)
    if marker.exists() and marker.read_text() != wanted:
        # made with other packages: add what is missing
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                       check=True)
        marker.write_text(wanted)
    if not marker.exists():
        print(f"creating {path} ({' '.join(packages)}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                       check=True)
        marker.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_pids(root_pid: int) -> list[int]:
    """The server's own processes: the root and descendants that are not job scripts."""
    pids, frontier = [root_pid], [root_pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"python" in cmdline or b"gunicorn" in cmdline or b"pulsar" in cmdline.split(b"\0")[0]:
                pids.append(child)
                frontier.append(child)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def memory_kib(pids: list[int], field: str) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Server:
    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        workdir.mkdir(parents=True)
        (workdir / "app.yml").write_text(json.dumps({
            "staging_directory": str(workdir / "staging"),
            "persistence_directory": str(workdir / "persisted"),
            "private_token": TOKEN,
            "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 16}},
        }))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = open(self.workdir / "server.log", "wb")
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        self.process = subprocess.Popen(self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}jobs/probe/status?private_token={TOKEN}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


class PulsarLite(Server):
    def command(self):
        return [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.workdir / "app.yml"),
                "--port", str(self.port)]


class Pulsar(Server):
    def __init__(self, name, workdir, python: Path):
        super().__init__(name, workdir)
        self.python = python
        (workdir / "server.ini").write_text(
            f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\n\n"
            f"[app:main]\napp_config = %(here)s/app.yml\n")

    def command(self):
        return [str(self.python.parent / "pulsar-serve"), str(self.workdir / "server.ini")]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_one(server: Server, client_python: Path, jobs: int, concurrency: int, poll: float) -> dict:
    pids = server_pids(server.process.pid)
    cpu_before = cpu_seconds(pids)
    out = server.workdir / f"result-{concurrency}.json"
    subprocess.run([str(client_python), str(DRIVER), server.url, TOKEN, str(jobs), str(concurrency), str(poll),
                    str(out)], check=True, timeout=1800)
    pids = server_pids(server.process.pid)
    cpu = cpu_seconds(pids) - cpu_before
    result = json.loads(out.read_text())
    latencies = result["latencies"]
    return {
        "jobs_per_s": jobs / result["elapsed"],
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "cpu_per_job": cpu / jobs,
        "peak_rss_mib": memory_kib(pids, "VmHWM") / 1024,
    }


def measure(server: Server, client_python: Path, jobs: int, concurrencies: list[int], poll: float) -> dict:
    server.start()
    try:
        time.sleep(3)
        idle = memory_kib(server_pids(server.process.pid), "VmRSS") / 1024
        results = {"idle_rss_mib": idle}
        for concurrency in concurrencies:
            print(f"  {server.name}: {jobs} jobs at concurrency {concurrency} ...", flush=True)
            results[concurrency] = run_one(server, client_python, jobs, concurrency, poll)
        return results
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--poll", type=float, default=0.05, help="client status poll interval, seconds")
    parser.add_argument("--only", choices=("pulsar_lite", "pulsar"))
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    client_python = venv(CACHE / "clients" / "0.16.0", "pulsar-galaxy-lib==0.16.0", "galaxy-tool-util", "pycurl")
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-bench-"))
    servers = []
    if args.only != "pulsar":
        servers.append(PulsarLite("pulsar_lite", scratch / "pulsar_lite"))
    if args.only != "pulsar_lite":
        pulsar_python = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        servers.append(Pulsar("pulsar 0.16.0", scratch / "pulsar", pulsar_python))
    results = {}
    for server in servers:
        results[server.name] = measure(server, client_python, args.jobs, concurrencies, args.poll)

    print(f"\n{args.jobs} jobs per run, client pulsar-galaxy-lib 0.16.0, poll {args.poll}s, "
          f"{os.cpu_count()} CPUs\n")
    header = f"{'server':<15}{'conc':>5}{'jobs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/job':>12}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        for concurrency in concurrencies:
            r = result[concurrency]
            print(f"{name:<15}{concurrency:>5}{r['jobs_per_s']:>9.1f}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                  f"{r['cpu_per_job'] * 1000:>12.2f}{r['peak_rss_mib']:>10.1f}")
        print(f"{name:<15} idle RSS {result['idle_rss_mib']:.1f} MiB")
    if len(results) == 2:
        lite, pulsar = results["pulsar_lite"], results["pulsar 0.16.0"]
        print("\nratios pulsar_lite / Pulsar, and targets")
        for concurrency in concurrencies:
            ratio = lite[concurrency]["jobs_per_s"] / pulsar[concurrency]["jobs_per_s"]
            cpu = lite[concurrency]["cpu_per_job"] / pulsar[concurrency]["cpu_per_job"]
            line = f"  concurrency {concurrency:>2}: jobs/s x{ratio:.2f}, CPU/job x{cpu:.2f}"
            if concurrency == max(concurrencies):
                line += (f"   [target jobs/s >= x3: {'PASS' if ratio >= 3 else 'MISS'}; "
                         f"CPU/job <= x0.25: {'PASS' if cpu <= 0.25 else 'MISS'}]")
            print(line)
        idle = lite["idle_rss_mib"]
        print(f"  idle RSS {idle:.1f} MiB vs {pulsar['idle_rss_mib']:.1f} MiB "
              f"[target <= 64 MiB: {'PASS' if idle <= 64 else 'MISS'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
