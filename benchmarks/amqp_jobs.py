#!/usr/bin/env python3
"""AMQP job throughput and latency: pulsar_lite against real Pulsar 0.16.0, same broker, same run.

Both servers run without a web face, consume from the RabbitMQ on 127.0.0.1:5672 under
their own manager name (benchlite / benchpulsar, so they never see each other's messages)
with queued_python and num_concurrent_jobs 16. The real client (pulsar-galaxy-lib 0.16.0 +
kombu, `_amqp_client_driver.py`) submits N jobs (3 inputs, 2 outputs, server-side
remote_copy) at each concurrency and waits for each final status_update. Printed: jobs/s,
p50/p95 latency (submit -> final status update), server CPU per job, idle/peak RSS.

    python benchmarks/amqp_jobs.py [--jobs 200] [--concurrency 1,16] [--only pulsar_lite|pulsar]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest_jobs import (  # noqa: E402
    CACHE, client_venv, cpu_ceiling, cpu_seconds, memory_kib, parse_lite_options, percentile, server_pids, venv)


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM (beam.smp) on this machine, for its CPU per job."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"beam.smp" in (entry / "cmdline").read_bytes().split(b"\0")[0]:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids

DRIVER = Path(__file__).resolve().parent / "_amqp_client_driver.py"
BROKER = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


class Daemon:
    def __init__(self, name: str, manager: str, workdir: Path, command_for, options: dict | None = None):
        self.name, self.manager, self.workdir = name, manager, workdir
        workdir.mkdir(parents=True)
        self.staging = workdir / "staging"
        (workdir / "app.yml").write_text(json.dumps({
            "staging_directory": str(self.staging), "persistence_directory": str(workdir / "persisted"),
            "message_queue_url": BROKER,
            "managers": {manager: {"type": "queued_python", "num_concurrent_jobs": 16}},
            **(options or {}),
        }))
        self.command = command_for(workdir)
        self.process = None

    def start(self):
        log = open(self.workdir / "server.log", "wb")
        self.process = subprocess.Popen(self.command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        time.sleep(4)  # consumers connect and declare their queues
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {(self.workdir / 'server.log').read_text()[-2000:]}")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def run(daemon: Daemon, client_python: Path, jobs: int, concurrencies: list[int]) -> dict:
    daemon.start()
    try:
        time.sleep(2)
        results = {"idle_rss_mib": memory_kib(server_pids(daemon.process.pid), "VmRSS") / 1024}
        for concurrency in concurrencies:
            print(f"  {daemon.name}: {jobs} jobs at concurrency {concurrency} ...", flush=True)
            pids, broker = server_pids(daemon.process.pid), broker_pids()
            before, jobs_before = cpu_seconds(pids), cpu_seconds(pids, children=True)
            broker_before = cpu_seconds(broker)
            out = daemon.workdir / f"result-{concurrency}.json"
            subprocess.run([str(client_python), str(DRIVER), BROKER, daemon.manager, str(daemon.staging), str(jobs),
                            str(concurrency), str(out)], check=True, timeout=1800)
            pids = server_pids(daemon.process.pid)
            data = json.loads(out.read_text())
            results[concurrency] = {
                "jobs_per_s": jobs / data["elapsed"], "p50_ms": percentile(data["latencies"], 0.5) * 1000,
                "p95_ms": percentile(data["latencies"], 0.95) * 1000,
                "cpu_per_job": (cpu_seconds(pids) - before) / jobs, "peak_rss_mib": memory_kib(pids, "VmHWM") / 1024,
                "client_cpu_per_job": data["client_cpu"] / jobs,
                "job_cpu_per_job": (cpu_seconds(pids, children=True) - jobs_before) / jobs,
                "broker_cpu_per_job": (cpu_seconds(broker) - broker_before) / jobs,
                "machine_cpu_per_job": data["machine_cpu"] / jobs}  # the driver's job phase
        return results
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--only", choices=("pulsar_lite", "pulsar"))
    parser.add_argument("--staging-root", default=tempfile.gettempdir(),
                        help="directory under which each daemon's staging and state directories are made")
    parser.add_argument("--lite-option", action="append", default=[], metavar="KEY=YAML",
                        help="an app.yml setting for pulsar_lite only (repeatable), e.g. daemon_cpus=off")
    args = parser.parse_args()
    lite_options = parse_lite_options(parser, args.lite_option)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    client_python = client_venv()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-amqp-bench-", dir=args.staging_root))
    daemons = []
    if args.only != "pulsar":
        daemons.append(Daemon("pulsar_lite", "benchlite", scratch / "lite", lambda d: [
            sys.executable, "-m", "pulsar_lite", "serve", "--no-web", "--config", str(d / "app.yml")],
            lite_options))
    if args.only != "pulsar_lite":
        pulsar = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        daemons.append(Daemon("pulsar 0.16.0", "benchpulsar", scratch / "pulsar", lambda d: [
            str(pulsar.parent / "pulsar-main"), "-c", str(d), "--app_conf_path", str(d / "app.yml")]))
    results = {d.name: run(d, client_python, args.jobs, concurrencies) for d in daemons}

    print(f"\n{args.jobs} jobs per run over AMQP ({BROKER.split('@')[-1]}), client pulsar-galaxy-lib 0.16.0, "
          f"{os.cpu_count()} CPUs\n")
    header = (f"{'server':<15}{'conc':>5}{'jobs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/job':>12}{'peak MiB':>10}"
              f"{'| client':>9}{'jobs':>6}{'broker':>8}{'machine':>9}")
    print(header + "\n" + "-" * len(header))
    for name, result in results.items():
        for c in concurrencies:
            r = result[c]
            print(f"{name:<15}{c:>5}{r['jobs_per_s']:>9.1f}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                  f"{r['cpu_per_job'] * 1000:>12.2f}{r['peak_rss_mib']:>10.1f}{r['client_cpu_per_job'] * 1000:>9.1f}"
                  f"{r['job_cpu_per_job'] * 1000:>6.1f}{r['broker_cpu_per_job'] * 1000:>8.1f}"
                  f"{r['machine_cpu_per_job'] * 1000:>9.1f}")
        print(f"{name:<15} idle RSS {result['idle_rss_mib']:.1f} MiB")
    print("(CPU ms/job: the server's own processes; client: the client driver; jobs: the job scripts the server "
          "ran; broker: RabbitMQ; machine: every CPU of the machine)")
    lite = results.get("pulsar_lite")
    if lite:
        low = min(concurrencies)
        print(f"\ntarget p50 <= 50 ms at concurrency {low}: {lite[low]['p50_ms']:.0f} ms "
              f"{'PASS' if lite[low]['p50_ms'] <= 50 else 'MISS'}")
    if len(results) == 2:
        pulsar = results["pulsar 0.16.0"]
        for c in concurrencies:
            ratio = lite[c]["jobs_per_s"] / pulsar[c]["jobs_per_s"]
            line = f"concurrency {c:>2}: jobs/s x{ratio:.2f}, CPU/job x{lite[c]['cpu_per_job'] / pulsar[c]['cpu_per_job']:.2f}"
            if c == max(concurrencies):
                line += f"   [target jobs/s >= x3: {'PASS' if ratio >= 3 else 'MISS'}]"
            print(line)
        top = max(concurrencies)
        r = lite[top]
        fixed = r["client_cpu_per_job"] + r["job_cpu_per_job"] + r["broker_cpu_per_job"]
        ceiling = cpu_ceiling(fixed)
        print(f"CPU ceiling at concurrency {top}: client + job scripts + broker use {fixed * 1000:.1f} ms per job of "
              f"these {os.cpu_count()} CPUs; with a server costing nothing the machine tops out near "
              f"{ceiling:.0f} jobs/s = x{ceiling / pulsar[top]['jobs_per_s']:.2f} Pulsar's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
