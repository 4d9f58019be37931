#!/usr/bin/env python3
"""REST job throughput: pulsar_lite against the real Pulsar 0.16.0, same machine, same run.

Both servers get the same app configuration (queued_python, num_concurrent_jobs 16) and
are driven by the real client (pulsar-galaxy-lib 0.16.0, `_rest_client_driver.py`): N trivial
jobs, each with 3 small inputs pushed by the client (transfer) and 2 outputs downloaded,
at each concurrency. Printed per server: jobs/s, p50/p95 latency (submit -> outputs
downloaded -> cleaned), server CPU seconds per job (utime+stime of the server processes
themselves; job processes are excluded), idle memory (PSS, so a forked supervisor and its worker
are not counted twice) and peak RSS of the server processes, and the CPU the client and the job
scripts used (the machine's CPU is shared by all of them).

The servers run side by side and the runs are interleaved (round 1: each server at each
concurrency, then round 2, ...; --repeat rounds, each metric's median printed): this machine's
speed drifts by a quarter within an hour, and a drift must not land on one server only.

    python benchmarks/rest_jobs.py [--jobs 200] [--concurrency 1,16] [--only pulsar_lite|pulsar]
                                   [--staging-root DIR] [--client-tmp DIR] [--settle SECONDS]

The servers' staging and state go under --staging-root (default: the system temporary directory);
its filesystem is printed, as it matters: on ext4 without a journal every file a server creates
costs a scan over the inodes freed in the last minute (README.md). The client's own files (Galaxy's
side: inputs it uploads, outputs it downloads) go to --client-tmp, /dev/shm by default, so that the
load generator's file churn does not tax the disk and CPUs the servers are measured on.

Virtualenvs are made on first use under .cache/ (Pulsar: pulsar-app[web]==0.16.0;
client: pulsar-galaxy-lib==0.16.0). Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

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


#: the client virtualenv's packages: the same list as the test suite's (tests/conftest.py), so both
#: recognise the virtualenv under .cache/clients/ and neither rebuilds it under the other
CLIENT_PACKAGES = ("pulsar-galaxy-lib==0.16.0", "galaxy-tool-util", "pycurl", "kombu")


def client_venv() -> Path:
    return venv(CACHE / "clients" / "0.16.0", *CLIENT_PACKAGES)


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


def cpu_seconds(pids: list[int], children: bool = False) -> float:
    """utime+stime of ``pids`` (or, with ``children``, of the processes they ran and reaped: job scripts)."""
    first = 13 if children else 11
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[first]) + int(fields[first + 1])) / CLK
    return total


def context_switches(pids: list[int]) -> dict[str, int]:
    """Voluntary and involuntary context switches of every thread of ``pids``, per thread
    ({"<tid>": (voluntary, involuntary)}; a thread that ends between two readings drops out of both)."""
    counts = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/task/{tid}/status").read_text()
                              .splitlines() if "ctxt_switches" in line)
            except (OSError, ValueError):
                continue
            counts[tid] = (int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"]))
    return counts


def switches_between(before: dict, after: dict) -> int:
    """Context switches of the threads seen at both readings, plus those of threads started in between."""
    return sum(sum(now) - sum(before.get(tid, (0, 0))) for tid, now in after.items())


def cpu_ceiling(fixed_seconds_per_job: float) -> float:
    """Jobs/s this machine's CPUs allow when the client, job scripts (and broker) cost this much per
    job and the server nothing."""
    return (os.cpu_count() or 1) / fixed_seconds_per_job if fixed_seconds_per_job else float("inf")


def memory_kib(pids: list[int], field: str, source: str = "status") -> int:
    """Sum of a kB ``field`` of /proc/<pid>/``source`` (status: VmRSS, VmHWM; smaps_rollup: Pss, the
    proportional set size, where a forked supervisor and its worker do not count shared pages twice)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def filesystem(path: Path) -> str:
    """``path``'s filesystem type and device, and for ext4 whether it has a journal (without one, the
    kernel scans the inodes freed in the last minute at every inode allocation: see README.md)."""
    best, fstype, device = "", "?", "?"
    target = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        after = fields[fields.index("-") + 1:]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype, device = mount_point, after[0], after[1]
    if fstype == "ext4":
        try:
            header = subprocess.run(["dumpe2fs", "-h", device], capture_output=True, text=True).stdout
            fstype += " with journal" if "has_journal" in header else " without journal"
        except OSError:
            pass
    return f"{fstype} on {device}"


def default_client_tmp() -> str:
    """Where the client keeps its (Galaxy-side) files: tmpfs when there is one, so that the load
    generator's own file churn does not tax the disk and CPUs the servers are measured on."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else tempfile.gettempdir()


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
    def __init__(self, name, workdir, web_server: str = "paste", options: dict | None = None):
        super().__init__(name, workdir)
        self.web_server = web_server
        if options:  # --lite-option: app.yml keys for pulsar_lite only
            path = workdir / "app.yml"
            path.write_text(json.dumps({**json.loads(path.read_text()), **options}))

    def command(self):
        return [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.workdir / "app.yml"),
                "--port", str(self.port), "--server", self.web_server]


class Pulsar(Server):
    def __init__(self, name, workdir, python: Path):
        super().__init__(name, workdir)
        self.python = python
        (workdir / "server.ini").write_text(
            f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\n\n"
            f"[app:main]\napp_config = %(here)s/app.yml\n")

    def command(self):
        return [str(self.python.parent / "pulsar-serve"), str(self.workdir / "server.ini")]


def parse_lite_options(parser: argparse.ArgumentParser, options: list[str]) -> dict:
    """--lite-option KEY=YAML arguments as app.yml settings."""
    settings = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            parser.error(f"--lite-option {option!r}: expected KEY=VALUE")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def run_one(server: Server, client_python: Path, jobs: int, concurrency: int, poll: float,
            client_processes: int = 1, client_tmp: str | None = None) -> dict:
    pids = server_pids(server.process.pid)
    cpu_before, jobs_before = cpu_seconds(pids), cpu_seconds(pids, children=True)
    switches_before = context_switches(pids)
    out = server.workdir / f"result-{concurrency}.json"
    subprocess.run([str(client_python), str(DRIVER), server.url, TOKEN, str(jobs), str(concurrency), str(poll),
                    str(out), str(client_processes)], check=True, timeout=1800,
                   env=dict(os.environ, TMPDIR=client_tmp or tempfile.gettempdir()),
                   stdout=subprocess.DEVNULL)  # the results come in a file; the client library prints "{}"
    pids = server_pids(server.process.pid)
    cpu = cpu_seconds(pids) - cpu_before
    job_cpu = cpu_seconds(pids, children=True) - jobs_before
    switches = switches_between(switches_before, context_switches(pids))
    result = json.loads(out.read_text())
    latencies = result["latencies"]
    client = result["client_cpu"]
    return {
        "jobs_per_s": jobs / result["elapsed"],
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "cpu_per_job": cpu / jobs,
        "client_cpu_per_job": client / jobs,
        "job_cpu_per_job": job_cpu / jobs,
        "machine_cpu_per_job": result["machine_cpu"] / jobs,  # the driver's job phase
        "peak_rss_mib": memory_kib(pids, "VmHWM") / 1024,
        "switches_per_job": switches / jobs,
    }


def median_run(runs: list[dict]) -> dict:
    """Each metric's median over the runs, and the range of jobs/s and CPU per job."""
    merged = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    merged["peak_rss_mib"] = max(run["peak_rss_mib"] for run in runs)
    for key in ("jobs_per_s", "cpu_per_job"):
        merged[key + "_range"] = (min(run[key] for run in runs), max(run[key] for run in runs))
    return merged


def idle_memory(server: Server) -> dict:
    pids = server_pids(server.process.pid)
    return {"idle_rss_mib": memory_kib(pids, "Pss", "smaps_rollup") / 1024,
            "idle_rss_sum_mib": memory_kib(pids, "VmRSS") / 1024}


def measure_interleaved(servers: list[Server], client_python: Path, jobs: int, concurrencies: list[int],
                        poll: float, client_processes: int = 1, client_tmp: str | None = None, repeat: int = 1,
                        settle: float = 0) -> dict:
    """Every server runs side by side (idle while another is driven); each round drives each server once at
    each concurrency, so a change in the machine's speed during the run (seen here: 25 % within an hour)
    touches every server alike. {server name: {"idle_rss_mib", "idle_rss_sum_mib", concurrency: median_run}}."""
    results: dict[str, dict] = {}
    runs: dict[str, dict[int, list[dict]]] = {s.name: {c: [] for c in concurrencies} for s in servers}
    try:
        for server in servers:
            server.start()
        time.sleep(3)
        for server in servers:
            results[server.name] = idle_memory(server)
        for round_ in range(repeat):
            for concurrency in concurrencies:
                for server in servers:
                    print(f"  round {round_ + 1} of {repeat}: {server.name}, {jobs} jobs at concurrency "
                          f"{concurrency} ...", flush=True)
                    time.sleep(settle)
                    runs[server.name][concurrency].append(run_one(
                        server, client_python, jobs, concurrency, poll,
                        client_processes if concurrency > 1 else 1, client_tmp))
    finally:
        for server in servers:
            server.stop()
    for name, by_concurrency in runs.items():
        for concurrency, done in by_concurrency.items():
            results[name][concurrency] = median_run(done)
    return results


LITE = "pulsar_lite"
LITE_GRANIAN = "lite+granian"
PULSAR = "pulsar 0.16.0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--poll", type=float, default=0.05, help="client status poll interval, seconds")
    parser.add_argument("--only", choices=("pulsar_lite", "granian", "pulsar"),
                        help="one server: pulsar_lite with paste, with granian, or Pulsar")
    parser.add_argument("--client-processes", type=int, default=1,
                        help="client processes sharing the concurrency (Galaxy's job handlers)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of --jobs jobs per server and concurrency; each metric's median is printed "
                             "(with the range of jobs/s and CPU per job)")
    parser.add_argument("--staging-root", default=tempfile.gettempdir(),
                        help="directory under which each server's staging and state directories are made "
                             "(default: the system temporary directory)")
    parser.add_argument("--client-tmp", default=default_client_tmp(),
                        help="where the client keeps its Galaxy-side files (default: /dev/shm when writable)")
    parser.add_argument("--settle", type=float, default=None,
                        help="seconds to wait before each run, so that the previous run's deletions "
                             "do not slow this one's inode allocations (default: 65 on ext4 without a "
                             "journal, else 5)")
    parser.add_argument("--lite-option", action="append", default=[], metavar="KEY=YAML",
                        help="an app.yml setting for pulsar_lite's runs only (repeatable), e.g. web_threads=4")
    args = parser.parse_args()
    lite_options = parse_lite_options(parser, args.lite_option)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    client_python = client_venv()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-bench-", dir=args.staging_root))
    staging_fs = filesystem(scratch)
    settle = args.settle if args.settle is not None else (65 if "without journal" in staging_fs else 5)
    print(f"server staging and state under {scratch} ({staging_fs}); client files in {args.client_tmp} "
          f"({filesystem(Path(args.client_tmp))}); {settle:.0f} s settle before each run", flush=True)
    servers = []
    if args.only in (None, "pulsar_lite"):
        servers.append(PulsarLite(LITE, scratch / "pulsar_lite", options=lite_options))
    if args.only in (None, "granian"):
        servers.append(PulsarLite(LITE_GRANIAN, scratch / "pulsar_lite_granian", web_server="granian",
                                  options=lite_options))
    if args.only in (None, "pulsar"):
        pulsar_python = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        servers.append(Pulsar(PULSAR, scratch / "pulsar", pulsar_python))
    results = measure_interleaved(servers, client_python, args.jobs, concurrencies, args.poll,
                                  args.client_processes, args.client_tmp, args.repeat, settle)

    print(f"\n{args.jobs} jobs per run, median of {args.repeat} runs, client pulsar-galaxy-lib 0.16.0, poll {args.poll}s, "
          f"{args.client_processes} client process(es), {os.cpu_count()} CPUs")
    print(f"staging: {staging_fs}; client files: {args.client_tmp}\n")
    header = (f"{'server':<15}{'conc':>5}{'jobs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms/job':>12}{'cs/job':>8}"
              f"{'peak MiB':>10}{'| client':>9}{'jobs':>6}{'machine':>9}   range over the runs")
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        for concurrency in concurrencies:
            r = result[concurrency]
            print(f"{name:<15}{concurrency:>5}{r['jobs_per_s']:>9.1f}{r['p50_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                  f"{r['cpu_per_job'] * 1000:>12.2f}{r['switches_per_job']:>8.0f}{r['peak_rss_mib']:>10.1f}"
                  f"{r['client_cpu_per_job'] * 1000:>9.1f}{r['job_cpu_per_job'] * 1000:>6.1f}"
                  f"{r['machine_cpu_per_job'] * 1000:>9.1f}"
                  f"   {r['jobs_per_s_range'][0]:.0f}-{r['jobs_per_s_range'][1]:.0f} jobs/s, "
                  f"{r['cpu_per_job_range'][0] * 1000:.2f}-{r['cpu_per_job_range'][1] * 1000:.2f} ms")
        print(f"{name:<15} idle memory {result['idle_rss_mib']:.1f} MiB PSS "
              f"({result['idle_rss_sum_mib']:.1f} MiB sum of RSS)")
    print("(CPU ms/job: the server's own processes; cs/job: their threads' context switches, voluntary and "
          "involuntary; client: the client driver; jobs: the job scripts the server ran; machine: every CPU of the "
          "machine)")
    if PULSAR in results:
        pulsar = results[PULSAR]
        top = max(concurrencies)
        for name in (LITE, LITE_GRANIAN):
            if name not in results:
                continue
            lite = results[name]
            print(f"\n{name} / Pulsar, and targets")
            for concurrency in concurrencies:
                ratio = lite[concurrency]["jobs_per_s"] / pulsar[concurrency]["jobs_per_s"]
                cpu = lite[concurrency]["cpu_per_job"] / pulsar[concurrency]["cpu_per_job"]
                digits = 3 if concurrency == top else 2  # enough to show which side of a target it is
                line = f"  concurrency {concurrency:>2}: jobs/s x{ratio:.{digits}f}, CPU/job x{cpu:.{digits}f}"
                if concurrency == top:
                    line += (f"   [target jobs/s >= x3: {'PASS' if ratio >= 3 else 'MISS'}; "
                             f"CPU/job <= x0.25: {'PASS' if cpu <= 0.25 else 'MISS'}]")
                print(line)
            idle = lite["idle_rss_mib"]
            print(f"  idle PSS {idle:.1f} MiB vs {pulsar['idle_rss_mib']:.1f} MiB "
                  f"[target <= 64 MiB: {'PASS' if idle <= 64 else 'MISS'}]")
        r = pulsar[top]
        # pulsar_lite's job scripts (lighter than Pulsar's); Pulsar's own when it ran alone (--only pulsar)
        scripts = next((results[name][top] for name in (LITE_GRANIAN, LITE) if name in results), r)
        fixed = r["client_cpu_per_job"] + scripts["job_cpu_per_job"]
        ceiling = cpu_ceiling(fixed)
        print(f"\nCPU ceiling at concurrency {top}: the client ({r['client_cpu_per_job'] * 1000:.1f} ms/job) and the "
              f"job scripts share these {os.cpu_count()} CPUs with the server; with a server costing nothing the "
              f"machine tops out near {ceiling:.0f} jobs/s = x{ceiling / r['jobs_per_s']:.2f} Pulsar's rate")
        # the jobs/s target as a CPU budget: at 3x Pulsar's rate, with every CPU busy, each job may cost the
        # machine this much; what the measured runs spent, part by part
        budget = (os.cpu_count() or 1) / (3 * r["jobs_per_s"])
        print(f"x3 Pulsar's rate at concurrency {top} ({3 * r['jobs_per_s']:.0f} jobs/s) leaves the machine "
              f"{budget * 1000:.1f} ms of CPU per job; spent per job:")
        for name in (LITE, LITE_GRANIAN):
            if name in results:
                x = results[name][top]
                rest = x["machine_cpu_per_job"] - x["client_cpu_per_job"] - x["job_cpu_per_job"] - x["cpu_per_job"]
                print(f"  {name:<14}{x['machine_cpu_per_job'] * 1000:6.1f} ms = client {x['client_cpu_per_job'] * 1000:.1f}"
                      f" + job scripts {x['job_cpu_per_job'] * 1000:.1f} + server {x['cpu_per_job'] * 1000:.1f}"
                      f" + the rest {rest * 1000:.1f} (kernel threads, interrupts, other processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
