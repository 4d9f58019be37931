"""Cluster managers against the real Pulsar 0.16.0, on the same scheduler, in the same run.

    .venv/bin/python benchmarks/schedulers.py [--scheduler slurm|condor|drmaa] [--jobs 1,20,100] [--interval 2]

Both daemons serve REST and run the same manager type on the same scheduler (slurm: ``queued_cli``;
condor: ``queued_condor``; drmaa: ``queued_drmaa`` on Grid Engine) with ``min_polling_interval`` =
``--interval``. How queries are counted: every scheduler command either daemon runs goes through a
logging wrapper put first on its PATH (Slurm: ``squeue``, ``sacct``, ``scontrol``, ``sbatch``,
``scancel``; Grid Engine: ``qstat``, ``qacct``, ``qdel``; HTCondor: the CLI wrappers Pulsar submits
with). Calls through Python bindings (htcondor2's ``Schedd.query``, DRMAA's ``jobStatus``) pass no
wrapper: pulsar_lite's are its status rounds, counted from its debug log; Pulsar makes one per client
status request (HTCondor: it reads the job's user log instead, no schedd query). The real client
(pulsar-galaxy-lib 0.16.0) submits the jobs and polls each job's status as Galaxy's job handler does.
Three measurements per daemon, in interleaved rounds:

1. **Status queries per polling interval** with 1, 20 and 100 jobs in flight (jobs that sleep while a
   window is measured; the client polls each job every ``--client-poll`` seconds, 2 by default, like
   Galaxy). Target: at most one per interval per manager, whatever the number of jobs.
2. **Latency**: from a job's end to the client seeing it ``complete``, with the client polling every 0.1 s
   so that it measures the daemon, not the client. Two ends: the job's last act (it writes the time), and
   the moment the scheduler stops listing the job as active (``_scheduler_watch``: Grid Engine, for one,
   takes most of a second after the job's last act to say it ended). Target, on the scheduler's end: p95
   <= one polling interval + 0.5 s.
3. **Idle**: 100 jobs waiting in the queue (Slurm: the partition is set DOWN; HTCondor: requirements no
   machine meets; Grid Engine: a user hold), no client requests: each daemon's CPU and scheduler
   queries over ``--idle`` seconds.

CPU is utime+stime of the daemon's processes; "cmd CPU" is what its scheduler commands cost (its reaped
children: with queued_cli the jobs run under the scheduler, not as the daemon's children).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _scheduler_watch import ID_EXPRESSION, PERIOD, EndWatch
from rest_jobs import CACHE, TOKEN, Server, client_venv, cpu_seconds, percentile, server_pids, venv

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "_scheduler_client_driver.py"
LITE, PULSAR = "pulsar_lite", "pulsar 0.16.0"
COMMANDS = {
    "slurm": {"status": ("squeue", "sacct", "scontrol"), "submit": ("sbatch",), "delete": ("scancel",)},
    "condor": {"status": ("condor_q", "condor_history"), "submit": ("condor_submit",), "delete": ("condor_rm",)},
    "drmaa": {"status": ("qstat", "qacct"), "submit": ("qsub",), "delete": ("qdel",)},
}
MANAGERS = {
    "slurm": {"type": "queued_cli", "job_plugin": "Slurm"},
    "condor": {"type": "queued_condor"},
    "drmaa": {"type": "queued_drmaa"},
}
CONDOR_BIN = "/srv/condor-client/bin"
DRMAA_ENV = {"DRMAA_LIBRARY_PATH": "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0", "SGE_ROOT": "/var/lib/gridengine",
             "SGE_CELL": "default", "GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=4096"}
IDMAP = HERE.parent / "scripts" / "ci" / "condor_idmap_mount.py"


def scheduler_env(scheduler: str) -> dict:
    if scheduler == "condor":
        return {"CONDOR_CONFIG": "/srv/condor-client/condor_config",
                "PATH": f"{CONDOR_BIN}:{os.environ['PATH']}"}
    if scheduler == "drmaa":
        return dict(DRMAA_ENV)
    return {}


def wrappers(directory: Path, log: Path, scheduler: str) -> Path:
    """Logging wrappers in front of the scheduler's commands: each call appends '<time> <command>' to log."""
    directory.mkdir(parents=True)
    search = f"{CONDOR_BIN}:{os.environ['PATH']}" if scheduler == "condor" else None
    for names in COMMANDS[scheduler].values():
        for name in names:
            real = shutil.which(name, path=search)
            if real is None:
                sys.exit(f"{name} is not installed: bring the scheduler up first (scripts/ci/)")
            path = directory / name
            path.write_text(f'#!/bin/bash\necho "$EPOCHREALTIME {name}" >> {log}\nexec {real} "$@"\n')
            path.chmod(0o755)
    return directory


class Daemon(Server):
    def __init__(self, name, workdir, scheduler: str, interval: float, app: dict, extra: dict | None = None):
        super().__init__(name, workdir)
        self.scheduler = scheduler
        self.log = workdir / "commands.log"
        self.log.touch()
        # beside the workdir, not in it: HTCondor's tools run in the pool's chroot, where the workdir is
        # mounted at the same path and a wrapper found first on PATH there would call itself
        self.bin = wrappers(workdir.parent / f"bin-{workdir.name}", self.log, scheduler)
        self.mount = None
        if scheduler == "condor":  # the job directories at the same path in the pool's chroot, as its job owner
            self.mount = Path("/srv/trixie" + str(workdir))
            subprocess.run(["python3", str(IDMAP), "mount", str(workdir), str(self.mount)], check=True)
        (workdir / "app.yml").write_text(json.dumps({
            "staging_directory": str(workdir / "staging"), "persistence_directory": str(workdir / "persisted"),
            "private_token": TOKEN, **(extra or {}),
            "managers": {"_default_": {**app, "min_polling_interval": interval}}}))

    def start(self) -> None:
        saved = dict(os.environ)
        os.environ.update(scheduler_env(self.scheduler))
        os.environ["PATH"] = f"{self.bin}:{os.environ['PATH']}"
        try:
            super().start()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def stop(self) -> None:
        super().stop()
        if self.mount is not None:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)

    def rounds(self, since: float, until: float) -> int:
        """pulsar_lite's own status rounds (its debug log), for schedulers asked through bindings."""
        count = 0
        for line in (self.workdir / "server.log").read_text(errors="replace").splitlines():
            if "status query for" not in line:
                continue
            stamp = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
            if since <= stamp < until:
                count += 1
        return count

    def calls(self, since: float, until: float, kind: str, scheduler: str) -> int:
        names = COMMANDS[scheduler][kind]
        count = 0
        for line in self.log.read_text().splitlines():
            stamp, _, name = line.partition(" ")
            if name in names and since <= float(stamp) < until:
                count += 1
        return count

    def cpu(self) -> tuple[float, float]:
        pids = server_pids(self.process.pid)
        return cpu_seconds(pids), cpu_seconds(pids, children=True)


class Lite(Daemon):
    def command(self):
        return [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.workdir / "app.yml"),
                "--port", str(self.port)]


class Pulsar(Daemon):
    def __init__(self, name, workdir, scheduler, interval, app, python: Path):
        super().__init__(name, workdir, scheduler, interval, app)
        if scheduler == "condor":  # Pulsar's queued_condor needs nothing but its CLI
            app.pop("held_job_grace", None)
        self.python = python
        (workdir / "server.ini").write_text(f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\n\n"
                                            f"[app:main]\napp_config = %(here)s/app.yml\n")

    def command(self):
        return [str(self.python.parent / "pulsar-serve"), str(self.workdir / "server.ini")]


def drive(client_python: Path, daemon: Daemon, jobs: list[str], command: str, poll: float, ends: Path,
          timeout: float, destination: dict | None = None) -> subprocess.Popen:
    out = daemon.workdir / f"driver-{time.time():.0f}-{len(jobs)}.json"
    config = {"url": daemon.url, "token": TOKEN, "jobs": jobs, "command": command, "poll": poll, "timeout": timeout,
              "out": str(out), "ends": str(ends), "threads": 8, "destination": destination or {}}
    process = subprocess.Popen([str(client_python), str(DRIVER), json.dumps(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    process.out = out
    return process


def finish(process: subprocess.Popen) -> dict:
    _, err = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f"client driver failed: {err[-2000:]}")
    return json.loads(process.out.read_text())


def cancel_all(daemon: Daemon, jobs: list[str]) -> None:
    for job in jobs:
        request = urllib.request.Request(f"{daemon.url}jobs/{job}/cancel?private_token={TOKEN}", method="PUT")
        urllib.request.urlopen(request, timeout=30).read()


def in_flight(client_python, daemon, scheduler, count, args, scratch, round_no) -> dict:
    """``count`` jobs in the scheduler (running, or pending behind them) while a window is measured: status
    queries per interval and the daemon's CPU per job; then they are cancelled."""
    jobs = [f"f{round_no}n{count}j{i}" for i in range(count)]
    cpu_before, cmd_before = daemon.cpu()
    driver = drive(client_python, daemon, jobs, "sleep 600", args.client_poll, scratch, 900)
    time.sleep(6)  # every job submitted
    window_start = time.time()
    time.sleep(args.window)
    window_end = time.time()
    cancel_all(daemon, jobs)
    finish(driver)
    cpu_after, cmd_after = daemon.cpu()
    statuses = queries(daemon, window_start, window_end, count, args)
    return {"per_interval": statuses / args.window * args.interval, "cpu_per_job": (cpu_after - cpu_before) / count,
            "cmd_cpu_per_job": (cmd_after - cmd_before) / count}


def queries(daemon: Daemon, since: float, until: float, jobs: int, args) -> float:
    """Scheduler status queries the daemon made in [since, until): its commands (wrappers), plus for calls
    through bindings pulsar_lite's status rounds or, for Pulsar, one per client status request."""
    commands = daemon.calls(since, until, "status", daemon.scheduler)
    if daemon.scheduler == "slurm":
        return commands
    if isinstance(daemon, Lite):
        return commands + daemon.rounds(since, until)
    return commands + jobs * (until - since) / args.client_poll  # Pulsar: one per status request


def latency(client_python, daemon, count, args, scratch, round_no) -> dict:
    ends = daemon.workdir / f"ends-{round_no}"  # where its jobs can write (HTCondor: shared into the pool)
    ends.mkdir()
    jobs = [f"l{round_no}j{i}" for i in range(count)]
    # staggered ends: the jobs do not all end in the same polling interval; each writes its end time and its id
    # in the scheduler
    command = (f"sleep $((RANDOM % 4 + 2)).$((RANDOM % 10)); echo $EPOCHREALTIME {ID_EXPRESSION[daemon.scheduler]} "
               f"> {{end}}")
    with EndWatch(daemon.scheduler, scheduler_env(daemon.scheduler)) as watch:
        result = finish(drive(client_python, daemon, jobs, command, 0.1, ends, 300))
        time.sleep(PERIOD * 2)
    delays, after_scheduler = [], []
    if not any(ends.iterdir()):
        raise RuntimeError(f"{daemon.name}: no job of the latency run wrote its end time to {ends}")
    for job, seen in result["seen"].items():
        end_file = ends / job
        if seen["status"] == "complete" and end_file.exists():
            stamp, _, scheduler_id = end_file.read_text().strip().partition(" ")
            delays.append(seen["at"] - float(stamp))
            if scheduler_id in watch.ended:
                after_scheduler.append(seen["at"] - watch.ended[scheduler_id])
    if not after_scheduler:
        raise RuntimeError(f"{daemon.name}: the scheduler watch saw no job end ({watch.errors} failed listings)")
    return {"p50": percentile(delays, 0.5), "p95": percentile(delays, 0.95), "n": len(delays),
            "sched_p50": percentile(after_scheduler, 0.5), "sched_p95": percentile(after_scheduler, 0.95),
            "sched_n": len(after_scheduler),
            "bad": [j for j, s in result["seen"].items() if s["status"] != "complete"] + result["missing"]}


def idle(client_python, daemons, scheduler, args, scratch) -> dict:
    """100 jobs waiting in each daemon, nobody asking: CPU and queries over args.idle s."""
    if scheduler == "slurm":
        subprocess.run(["scontrol", "update", "PartitionName=debug", "State=DOWN"], check=True)
    wait = {"condor": {"submit_requirements": "False"}, "drmaa": {"submit_native_specification": "-h"}}
    results = {}
    try:
        drivers = {d.name: drive(client_python, d, [f"idle{i}" for i in range(100)], "true", 3600, scratch, 5,
                                 destination=wait.get(scheduler))
                   for d in daemons}  # launch, then one status round, then stop polling (timeout 5 s)
        for d in daemons:
            finish(drivers[d.name])
        time.sleep(args.interval * 2)
        before = {d.name: d.cpu() for d in daemons}
        start = time.time()
        time.sleep(args.idle)
        end = time.time()
        for d in daemons:
            cpu, cmd = d.cpu()
            results[d.name] = {"cpu_pct": (cpu - before[d.name][0]) / (end - start) * 100,
                               "cmd_cpu_pct": (cmd - before[d.name][1]) / (end - start) * 100,
                               "queries_per_interval": queries(d, start, end, 0, args) / (end - start)
                               * args.interval}
    finally:
        if scheduler == "slurm":
            subprocess.run(["scontrol", "update", "PartitionName=debug", "State=UP"], check=True)
        for d in daemons:
            cancel_all(d, [f"idle{i}" for i in range(100)])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", default="slurm", choices=sorted(COMMANDS))
    parser.add_argument("--jobs", default="1,20,100", help="jobs in flight per measurement")
    parser.add_argument("--interval", type=float, default=2.0, help="min_polling_interval of both daemons")
    parser.add_argument("--client-poll", type=float, default=2.0, help="seconds between a job's status polls")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which queries are counted")
    parser.add_argument("--latency-jobs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=("pulsar_lite", "pulsar"))
    args = parser.parse_args()
    counts = [int(c) for c in args.jobs.split(",")]
    client_python = client_venv()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-sched-"))
    app = MANAGERS[args.scheduler]
    daemons = []
    if args.only in (None, "pulsar_lite"):
        daemons.append(Lite(LITE, scratch / "lite", args.scheduler, args.interval, app, {"log_level": "DEBUG"}))
    if args.only in (None, "pulsar"):
        packages = ["pulsar-app[web]==0.16.0", "kombu"] + (["drmaa"] if args.scheduler == "drmaa" else [])
        python = venv(CACHE / "bench" / "pulsar-0.16.0", *packages)
        daemons.append(Pulsar(PULSAR, scratch / "pulsar", args.scheduler, args.interval, app, python))
    try:
        for daemon in daemons:
            daemon.start()
    except Exception:
        for daemon in daemons:
            daemon.stop()
        raise
    print(f"{args.scheduler}: interval {args.interval:g} s, client polls each job every {args.client_poll:g} s, "
          f"{args.rounds} interleaved rounds, scratch {scratch}", flush=True)
    flight: dict[str, dict[int, list[dict]]] = {d.name: {c: [] for c in counts} for d in daemons}
    lat: dict[str, list[dict]] = {d.name: [] for d in daemons}
    try:
        for round_no in range(args.rounds):
            for count in counts:
                for daemon in daemons:
                    flight[daemon.name][count].append(in_flight(client_python, daemon, args.scheduler, count, args,
                                                                scratch, round_no))
                    r = flight[daemon.name][count][-1]
                    print(f"  round {round_no} {daemon.name:<14} {count:>3} jobs: {r['per_interval']:.2f} status "
                          f"queries/interval, {r['cpu_per_job'] * 1000:.1f} ms CPU/job", flush=True)
            for daemon in daemons:
                lat[daemon.name].append(latency(client_python, daemon, args.latency_jobs, args, scratch, round_no))
        idle_result = idle(client_python, daemons, args.scheduler, args, scratch)
    finally:
        for daemon in daemons:
            daemon.stop()

    print(f"\n{'daemon':<15}{'jobs':>5}{'queries/interval':>18}{'CPU ms/job':>12}{'cmd CPU ms/job':>16}")
    for daemon in daemons:
        for count in counts:
            runs = flight[daemon.name][count]
            print(f"{daemon.name:<15}{count:>5}{statistics.median(r['per_interval'] for r in runs):>18.2f}"
                  f"{statistics.median(r['cpu_per_job'] for r in runs) * 1000:>12.1f}"
                  f"{statistics.median(r['cmd_cpu_per_job'] for r in runs) * 1000:>16.1f}")
    print(f"\n{'daemon':<15}job's last act / scheduler says ended -> client sees complete  (client polls every 0.1 s)")
    for daemon in daemons:
        runs = lat[daemon.name]
        target = args.interval + 0.5
        p95 = max(r["sched_p95"] for r in runs)
        mark = f"[target p95 <= {target:g} s: {'PASS' if p95 <= target else 'MISS'}]" if daemon.name == LITE else ""
        bad = sum(len(r["bad"]) for r in runs)
        print(f"{daemon.name:<15}   from the job's last act: p50 {statistics.median(r['p50'] for r in runs):.2f} s, "
              f"p95 {max(r['p95'] for r in runs):.2f} s, {bad} job(s) not complete")
        print(f"{'':<15}   from the scheduler's end: p50 {statistics.median(r['sched_p50'] for r in runs):.2f} s, "
              f"p95 {p95:.2f} s ({sum(r['sched_n'] for r in runs)} jobs)  {mark}")
    print(f"\nidle, 100 jobs waiting, {args.idle:g} s:")
    for name, r in idle_result.items():
        print(f"  {name:<14} daemon CPU {r['cpu_pct']:.2f} %, scheduler commands {r['cmd_cpu_pct']:.2f} % of a CPU, "
              f"{r['queries_per_interval']:.2f} status queries/interval")
    if LITE in flight:
        worst = max(statistics.median(r["per_interval"] for r in flight[LITE][c]) for c in counts)
        print(f"\npulsar_lite status queries per interval, worst over {counts} jobs: {worst:.2f} "
              f"[target <= 1: {'PASS' if worst <= 1.0 + 1e-9 else 'MISS'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
