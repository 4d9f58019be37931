"""A big site: thousands of jobs held in a real scheduler, pulsar_lite beside the real Pulsar 0.16.0.

    .venv/bin/python benchmarks/scheduler_scale.py --scheduler slurm --jobs 10000 --pulsar-jobs 1000
    .venv/bin/python benchmarks/scheduler_scale.py --scheduler drmaa --jobs 2000 --pulsar-jobs 1000
    .venv/bin/python benchmarks/scheduler_scale.py --scheduler condor --jobs 2000 --pulsar-jobs 1000

Run it alone: it takes the scheduler over (Slurm's partition is set DOWN, Grid Engine's all.q disabled, so
that every job waits; at the end it removes every job of the account and puts the queue back). Each daemon
in turn (pulsar_lite with ``--jobs``, then Pulsar with ``--pulsar-jobs``, the most it holds here in a
reasonable time) gets its jobs from the real client (pulsar-galaxy-lib 0.16.0, launch only: nobody polls)
and is measured:

1. **Submission**: jobs/s from the first launch to the last job the scheduler lists.
2. **Steady state**, ``--window`` seconds, no client: the daemon's CPU (% of one CPU, its scheduler
   commands included) and, for pulsar_lite, its status rounds (``/metrics``: rounds, their wall time) and the
   scheduler commands they ran (wrappers first on PATH; bindings calls are the rounds themselves).
   Target: <= 10 % of one CPU at 10,000 jobs.
3. **Client status**: ``--status-samples`` status requests (what the client sends: GET
   /jobs/<id>/status) for random jobs, one at a time: p50/p95. Target: p95 <= 50 ms.
4. **kill -9 and restart**: the daemon is killed (SIGKILL to its process group) and started again; time to
   the first answer, and until every job's status has been answered, each with its true state (queued: it
   waits in the scheduler), 8 requests at a time. Then one more window: nothing submitted twice (the
   scheduler lists exactly as many jobs as were launched, and no submit command ran after the restart).
   Target: every job answered within 10 s of the restart.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rest_jobs import CACHE, TOKEN, client_venv, percentile, venv
from schedulers import COMMANDS, LITE, MANAGERS, PULSAR, Lite, Pulsar, finish

WAITING = {"condor": {"submit_requirements": "False"}}  # no machine matches: idle
SUBMIT = {"slurm": "sbatch", "drmaa": "qsub", "condor": "condor_submit"}


# -- the scheduler ------------------------------------------------------------------------------------------
def hold_queue(scheduler: str, hold: bool) -> None:
    """Every new job waits (the queue stops starting jobs), or the queue runs again."""
    if scheduler == "slurm":
        subprocess.run(["scontrol", "update", "PartitionName=debug", f"State={'DOWN' if hold else 'UP'}"],
                       check=True)
    elif scheduler == "drmaa":
        subprocess.run(["qmod", "-d" if hold else "-e", "all.q"], capture_output=True, check=False)


def listed(scheduler: str) -> int:
    """Jobs the scheduler holds (pending or running), every user's: the benchmark runs alone."""
    if scheduler == "slurm":
        out = subprocess.run(["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], capture_output=True, text=True).stdout
    elif scheduler == "drmaa":
        out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True).stdout
        return sum(1 for line in out.splitlines()[2:] if line.split() and line.split()[0].isdigit())
    else:
        out = subprocess.run(["/srv/condor-client/bin/condor_q", "-allusers", "-af", "ClusterId"], capture_output=True,
                             text=True, env=dict(os.environ, CONDOR_CONFIG="/srv/condor-client/condor_config")).stdout
    return len([line for line in out.splitlines() if line.strip()])


def remove_all(scheduler: str) -> None:
    if scheduler == "slurm":
        subprocess.run(["scancel", "--user", "root"], check=False)
    elif scheduler == "drmaa":
        subprocess.run(["qdel", "-u", "root"], capture_output=True, check=False)
    else:
        subprocess.run(["/srv/condor-client/bin/condor_rm", "-all"], capture_output=True, check=False,
                       env=dict(os.environ, CONDOR_CONFIG="/srv/condor-client/condor_config"))
    deadline = time.time() + 300
    while listed(scheduler) and time.time() < deadline:
        time.sleep(2)


# -- a daemon -------------------------------------------------------------------------------------------------
def get(url: str, timeout: float = 30) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def status(daemon, job: str) -> str:
    code, body = get(f"{daemon.url}jobs/{job}/status?private_token={TOKEN}")
    return json.loads(body).get("status", f"HTTP {code}") if code == 200 else f"HTTP {code}"


def rounds(daemon) -> tuple[float, float]:
    """pulsar_lite's status rounds so far: (count, seconds), from /metrics."""
    _, body = get(f"{daemon.url}metrics")
    count = total = 0.0
    for line in body.decode().splitlines():
        match = re.match(r'pulsar_lite_scheduler_poll_seconds_(count|sum)\{manager="_default_"\} (\S+)', line)
        if match:
            if match.group(1) == "count":
                count = float(match.group(2))
            else:
                total = float(match.group(2))
    return count, total


def kill9(daemon) -> None:
    os.killpg(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait()


def measure(daemon, scheduler: str, jobs: list[str], client_python: Path, args) -> dict:
    result = {"jobs": len(jobs)}
    before = listed(scheduler)
    began = time.time()
    finish(_launch(client_python, daemon, jobs, scheduler))
    while listed(scheduler) - before < len(jobs):
        if time.time() - began > args.submit_timeout:
            raise RuntimeError(f"{daemon.name}: {listed(scheduler) - before} of {len(jobs)} jobs in the scheduler "
                               f"after {args.submit_timeout} s")
        time.sleep(2)
    result["submit_per_s"] = len(jobs) / (time.time() - began)
    print(f"  {daemon.name}: {len(jobs)} jobs in the scheduler, {result['submit_per_s']:.0f} jobs/s", flush=True)
    time.sleep(args.interval * 3)  # settle: the last submissions' first rounds
    result.update(window(daemon, scheduler, args))
    # client status latency
    latencies, wrong = [], 0
    for job in random.sample(jobs, min(args.status_samples, len(jobs))):
        start = time.perf_counter()
        state = status(daemon, job)
        latencies.append(time.perf_counter() - start)
        wrong += state != "queued"
    result.update(status_p50=percentile(latencies, 0.5), status_p95=percentile(latencies, 0.95), status_wrong=wrong)
    # kill -9, restart
    submits_before = daemon.calls(0, time.time() + 1, "submit", scheduler)
    kill9(daemon)
    restarted = time.time()
    daemon.start()  # returns at the first answer (a status request)
    result["first_answer_s"] = time.time() - restarted
    answered: dict[str, float] = {}
    states: dict[str, str] = {}
    lock = threading.Lock()

    def answer(job):
        while True:  # a 5xx (still starting) is asked again, for up to a minute after the restart
            state = status(daemon, job)
            if not state.startswith("HTTP 5") or time.time() - restarted > 60:
                break
            time.sleep(0.05)
        with lock:
            answered[job] = time.time() - restarted
            states[job] = state
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(answer, jobs))
    result["all_answered_s"] = max(answered.values())
    result["restart_wrong"] = sum(1 for s in states.values() if s != "queued")
    time.sleep(args.interval * 3)
    result["after_restart"] = window(daemon, scheduler, args)
    result["listed_after"] = listed(scheduler) - before
    result["submits_after_restart"] = daemon.calls(0, time.time() + 1, "submit", scheduler) - submits_before
    return result


def _launch(client_python: Path, daemon, jobs: list[str], scheduler: str):
    out = daemon.workdir / f"launch-{len(jobs)}.json"
    config = {"url": daemon.url, "token": TOKEN, "jobs": jobs, "command": "sleep 3600", "poll": 3600,
              "timeout": 3600, "out": str(out), "ends": str(daemon.workdir), "threads": 8, "launch_only": True,
              "destination": WAITING.get(scheduler, {})}
    driver = Path(__file__).resolve().parent / "_scheduler_client_driver.py"
    process = subprocess.Popen([str(client_python), str(driver), json.dumps(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    process.out = out
    return process


def window(daemon, scheduler: str, args) -> dict:
    cpu_before, cmd_before = daemon.cpu()
    rounds_before = rounds(daemon) if isinstance(daemon, Lite) else (0.0, 0.0)
    start = time.time()
    time.sleep(args.window)
    end = time.time()
    cpu_after, cmd_after = daemon.cpu()
    out = {"cpu_pct": (cpu_after - cpu_before + cmd_after - cmd_before) / (end - start) * 100,
           "cmd_cpu_pct": (cmd_after - cmd_before) / (end - start) * 100,
           "commands_per_interval": daemon.calls(start, end, "status", scheduler) / (end - start) * args.interval}
    if isinstance(daemon, Lite):
        count, total = rounds(daemon)
        n = count - rounds_before[0]
        out.update(rounds=n, round_s=(total - rounds_before[1]) / n if n else float("nan"))
    return out


def report(name: str, r: dict, target_jobs: int) -> list[str]:
    lines = [f"{name}: {r['jobs']} jobs waiting in the scheduler (submitted at {r['submit_per_s']:.0f} jobs/s)"]
    lines.append(f"  steady: daemon CPU {r['cpu_pct']:.1f} % of one CPU (its scheduler commands {r['cmd_cpu_pct']:.1f} %),"
                 f" {r['commands_per_interval']:.2f} status commands/interval"
                 + (f", {r['rounds']:.0f} rounds of {r['round_s'] * 1000:.0f} ms" if "rounds" in r else ""))
    lines.append(f"  client status: p50 {r['status_p50'] * 1000:.1f} ms, p95 {r['status_p95'] * 1000:.1f} ms "
                 f"({r['status_wrong']} not 'queued')")
    lines.append(f"  kill -9, restart: first answer {r['first_answer_s']:.2f} s, every job answered "
                 f"{r['all_answered_s']:.2f} s ({r['restart_wrong']} not 'queued'); after it: CPU "
                 f"{r['after_restart']['cpu_pct']:.1f} %; jobs in the scheduler {r['listed_after']} of {r['jobs']}, "
                 f"submit commands after the restart {r['submits_after_restart']}")
    if name == LITE and r["jobs"] >= target_jobs:
        checks = [("every round <= 10 % of one CPU", max(r["cpu_pct"], r["after_restart"]["cpu_pct"]) <= 10),
                  ("status p95 <= 50 ms", r["status_p95"] <= 0.05),
                  ("all answered <= 10 s after restart", r["all_answered_s"] <= 10),
                  ("nothing submitted twice", r["listed_after"] == r["jobs"] and r["submits_after_restart"] == 0)]
        lines += [f"  target: {what}: {'PASS' if ok else 'MISS'}" for what, ok in checks]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", default="slurm", choices=sorted(COMMANDS))
    parser.add_argument("--jobs", type=int, default=None, help="pulsar_lite's jobs (slurm 10000, others 2000)")
    parser.add_argument("--pulsar-jobs", type=int, default=1000, help="Pulsar 0.16.0's jobs (0: not run)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--status-samples", type=int, default=500)
    parser.add_argument("--submit-timeout", type=float, default=1800)
    args = parser.parse_args()
    jobs = args.jobs or (10000 if args.scheduler == "slurm" else 2000)
    client_python = client_venv()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-scale-"))
    app = dict(MANAGERS[args.scheduler], held_job_grace=86400)
    runs = [(LITE, jobs)] + ([(PULSAR, args.pulsar_jobs)] if args.pulsar_jobs else [])
    print(f"{args.scheduler}: interval {args.interval:g} s, window {args.window:g} s, scratch {scratch}", flush=True)
    results = {}
    remove_all(args.scheduler)
    hold_queue(args.scheduler, True)
    try:
        for name, count in runs:
            if name == LITE:
                daemon = Lite(LITE, scratch / "lite", args.scheduler, args.interval, app)
            else:
                packages = ["pulsar-app[web]==0.16.0", "kombu"] + (["drmaa"] if args.scheduler == "drmaa" else [])
                python = venv(CACHE / "bench" / "pulsar-0.16.0", *packages)
                pulsar_app = {k: v for k, v in app.items() if k != "held_job_grace"}
                daemon = Pulsar(PULSAR, scratch / "pulsar", args.scheduler, args.interval, pulsar_app, python)
            daemon.start()
            try:
                results[name] = measure(daemon, args.scheduler, [f"{name[:1]}{i}" for i in range(count)],
                                        client_python, args)
            finally:
                daemon.stop()
                remove_all(args.scheduler)
    finally:
        hold_queue(args.scheduler, False)
    print()
    for name, _ in runs:
        print("\n".join(report(name, results[name], jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
