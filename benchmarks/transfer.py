#!/usr/bin/env python3
"""Pull-staging transfer speed: 1 GiB pulled and 1 GiB pushed over loopback.

Part 1, the transfer functions. Compared in the same run against:
* the loopback limit: nginx (Debian package) serving / accepting the same file, driven by curl;
* Pulsar 0.16.0's own staging transfer functions (``pulsar.client.transport.get_file`` /
  ``post_file``, what its server calls for remote_transfer; requests-based, as a plain
  ``pip install pulsar-app`` has no pycurl), run in Pulsar's virtualenv;
* pulsar_lite's ``pulsar_lite.staging.transfer.download`` / ``upload`` (libcurl).

Downloads are written to disk; uploads are multipart POSTs (field ``file``) that nginx
reads completely into a temporary file. Printed: GB/s (best of two runs each), % of the loopback limit, and
the RSS growth of the transferring process.

Part 2, whole jobs (skip with --skip-jobs). Each daemon (pulsar_lite, and Pulsar 0.16.0 served as
benchmarks/rest_jobs.py serves it) runs real jobs submitted over REST by the real client
(pulsar-galaxy-lib 0.16.0) with default_file_action "remote_transfer": the daemon pulls one input
from a Galaxy-style job-files API, the job copies it (``cp``) to an output, and the daemon pushes
that output back before the job reports complete (checked). Two jobs per daemon (--job-runs): the
best run of each direction is printed, as for curl, and the worst RSS growth. The job-files API is
the same nginx: GET answers with the file named by the ``path`` query argument, POST reads the whole
multipart body into a temporary file (on /dev/shm) and answers 200. Speeds are measured at the
origin, from nginx's access log ($request_time with $bytes_sent / $request_length), the same way for
both daemons and for curl, which gives the loopback limit of this part (best of two). curl follows
the job's sequence (GET the input to disk, cp it, POST the copy at once), since a file written a
moment ago posts slower here than one at rest; the POST of the copy at rest is printed as well.
RSS growth is the peak (VmHWM, reset before each job) of the daemon's processes minus their idle
VmRSS.

    python benchmarks/transfer.py [--size-mib 1024] [--only pulsar_lite] [--skip-jobs] [--skip-functions]
                                  [--job-runs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest_jobs import (  # noqa: E402
    CACHE, TOKEN, Pulsar, Server, client_venv, free_port, memory_kib, server_pids, venv)

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    log_format origin '$msec $request_time $request_method $status $bytes_sent $request_length $request_uri';
    sendfile on;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{maps}
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        client_max_body_size 0;
        location = /ok {{ return 200 "ok"; }}
        location = /upload {{
            client_body_in_file_only clean;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://127.0.0.1:{port}/ok;
        }}
        # Galaxy's job-files API (/api/jobs/<id>/files?job_key=..&path=<client path>), for whole jobs
        location /api/jobs/ {{
            if ($request_method = POST) {{ rewrite ^ /_post last; }}
            rewrite ^ /_files$job_file? last;
        }}
        location /_files/ {{
            internal;
            alias {root}/;
            access_log {root}/origin.log origin;
        }}
        location = /_post {{
            internal;
            client_body_temp_path {post_body};  # tmpfs: no disk write-back slows the origin down
            client_body_in_file_only clean;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://127.0.0.1:{port}/ok;
            access_log {root}/origin.log origin;
        }}
    }}
}}
"""


def path_maps(root: Path, levels: int = 24) -> str:
    """nginx maps from the URL-encoded ``path`` query argument to a file under ``root``.

    nginx does not decode query arguments, and the client encodes "/" as %2F: each map decodes
    one %2F. The last one keeps only paths under ``root`` (anything else maps to a missing file).
    """
    lines, previous = [], "$arg_path"
    for level in range(levels):
        lines.append(f'    map {previous} $jf{level} {{ "~*^(?<jf{level}h>.*?)%2F(?<jf{level}t>.*)$" '
                     f'"$jf{level}h/$jf{level}t"; default {previous}; }}')
        previous = f"$jf{level}"
    lines.append(f'    map {previous} $job_file {{ "~^{re.escape(str(root))}(?<jf_rel>/.*)$" $jf_rel; '
                 f'default /-missing; }}')
    return "\n".join(lines)


MEASURE = r"""
import json, os, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
mode, direction, url, path = sys.argv[1:5]
if mode == "lite":
    from pulsar_lite.staging import RetryPolicy, transfer
    policy = RetryPolicy()
    run = (lambda: transfer.download(url, path, retry=policy)) if direction == "get" else \
          (lambda: transfer.upload(url, path, retry=policy))
else:
    from pulsar.client.transport import get_file, post_file
    run = (lambda: get_file(url, path)) if direction == "get" else (lambda: post_file(url, path))
base = rss("VmRSS")
start = time.time()
run()
elapsed = time.time() - start
print(json.dumps({"seconds": elapsed, "rss_growth_kib": rss("VmHWM") - base}))
"""


JOB_DRIVER = r"""
# Run by the client's Python (pulsar-galaxy-lib 0.16.0): one remote_transfer job, input -> cp -> output.
import json, os, sys, time
from pulsar.client.manager import build_client_manager
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
from pulsar.client.staging.up import submit_job

url, token, endpoint, source, base, job_id, out_json = sys.argv[1:8]


class Tool:
    id = "transfer_bench"
    version = "1.0"

    def __init__(self, tool_dir):
        self.tool_dir = tool_dir


work, meta, tool, outs = (os.path.join(base, d) for d in ("working", "metadata", "tool", "outputs"))
for d in (work, meta, tool, outs):
    os.makedirs(d)
output = os.path.join(outs, "dataset_2.dat")
outputs = ClientOutputs(working_directory=work, metadata_directory=meta, output_files=[output])
description = ClientJobDescription(
    command_line=f"cp {source} {output}", tool=Tool(tool), config_files=[],
    client_inputs=ClientInputs([ClientInput(source, CLIENT_INPUT_PATH_TYPES.INPUT_PATH)]),
    client_outputs=outputs, working_directory=work, metadata_directory=meta)
client = build_client_manager().get_client(
    {"url": url, "private_token": token, "default_file_action": "remote_transfer", "files_endpoint": endpoint},
    job_id=job_id)
started = time.time()
returned = submit_job(client, description)
if returned:
    client.job_id = returned
states = []
while True:
    status = client.raw_check_complete()
    if not states or states[-1] != status["status"]:
        states.append(status["status"])
    if status["status"] in ("complete", "failed", "cancelled", "lost"):
        break
    time.sleep(0.1)
seconds = time.time() - started
failures = finish_job(client=client, cleanup_job="always", job_completed_normally=status["status"] == "complete",
                      client_outputs=outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
with open(out_json, "w") as handle:
    json.dump({"status": status["status"], "states": states, "seconds": seconds, "output": output,
               "returncode": status.get("returncode"), "stderr": (status.get("stderr") or "")[-2000:],
               "failures": [str(f) for f in failures or []]}, handle)
"""


class Lite(Server):
    def command(self):
        return [sys.executable, "-m", "pulsar_lite", "serve", "--config", str(self.workdir / "app.yml"),
                "--port", str(self.port)]


class OriginLog:
    """nginx's access log of the job-files API: one entry per request, read from a mark on."""

    def __init__(self, path: Path):
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def mark(self) -> int:
        return len(self.lines())

    def since(self, mark: int) -> list[dict]:
        entries = []
        for line in self.lines()[mark:]:
            end, seconds, method, status, sent, length, uri = line.split(" ", 6)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
            entries.append({"end": float(end), "seconds": float(seconds), "method": method, "status": int(status),
                            "bytes": int(sent) if method == "GET" else int(length),
                            "path": query.get("path", [""])[0]})
        return entries


    def transfer(self, mark: int, method: str, client_path: str, timeout: float = 5) -> dict:
        """origin_transfer() of the requests since ``mark``; nginx writes a request's line just after
        its response, so a client that has its answer may be a moment ahead of the log."""
        deadline = time.time() + timeout
        while True:
            found = origin_transfer(self.since(mark), method, client_path)
            if found["requests"] or time.time() > deadline:
                return found
            time.sleep(0.05)


def origin_transfer(entries: list[dict], method: str, client_path: str) -> dict:
    """Bytes and seconds the origin spent on ``method`` requests for one file (from the first
    request's start to the last one's end, so retries or ranges would count too)."""
    mine = [e for e in entries if e["method"] == method and e["path"] == client_path and e["status"] in (200, 206)]
    if not mine:
        return {"bytes": 0, "seconds": float("nan"), "requests": 0}
    start = min(e["end"] - e["seconds"] for e in mine)
    return {"bytes": sum(e["bytes"] for e in mine), "seconds": max(e["end"] for e in mine) - start,
            "requests": len(mine)}


def loopback_job_files(log: OriginLog, endpoint: str, source: Path, root: Path) -> dict:
    """curl against the job-files API, measured at the origin like the daemons, best of two each way.

    The limit follows the job's own sequence: GET the input to disk, ``cp`` it to an output, POST
    that output at once. A file written a moment ago (its write-back still under way) posts slower
    on this machine than one at rest, so the POST of a file at rest (synced first) is measured too.
    """
    pulls, pushes, at_rest = [], [], []
    inputs, output = root / "out" / "curl-input.bin", root / "out" / "curl-output.bin"
    target = str(root / "client-curl" / "dataset_2.dat")

    def post(path: Path) -> float:
        mark = log.mark()
        subprocess.run(["curl", "-sf", "-F", f"file=@{path}", endpoint + "&" + urllib.parse.urlencode(
            {"path": target, "file_type": "output"})], check=True, stdout=subprocess.DEVNULL)
        return log.transfer(mark, "POST", target)["seconds"]

    for _ in range(2):
        os.sync()
        mark = log.mark()
        subprocess.run(["curl", "-sf", "-o", str(inputs), endpoint + "&" + urllib.parse.urlencode(
            {"path": str(source), "file_type": "input"})], check=True, stdout=subprocess.DEVNULL)
        pulls.append(log.transfer(mark, "GET", str(source))["seconds"])
        subprocess.run(["cp", str(inputs), str(output)], check=True)
        pushes.append(post(output))
        os.sync()
        at_rest.append(post(output))
        inputs.unlink()
        output.unlink()
    return {"pull_s": min(pulls), "push_s": min(pushes), "push_at_rest_s": min(at_rest)}


def run_jobs(server: Server, client_python: Path, log: OriginLog, endpoint: str, source: Path, size: int,
             runs: int) -> dict:
    """``runs`` remote_transfer jobs, one after the other, on ``server``: origin-side speeds (best run
    for each direction), RSS growth (worst run), and each job's outcome."""
    server.start()
    try:
        time.sleep(3)
        jobs = []
        for run in range(runs):
            pids = server_pids(server.process.pid)
            for pid in pids:  # start VmHWM afresh at the idle RSS, so the peak is this job's (Linux >= 4.0)
                try:
                    Path(f"/proc/{pid}/clear_refs").write_text("5")
                except OSError:
                    pass
            idle = memory_kib(pids, "VmRSS")
            base = server.workdir / f"client-{run}"
            out_json = server.workdir / f"job-{run}.json"
            os.sync()
            mark = log.mark()
            with open(server.workdir / "client.out", "wb") as client_out:  # the client prints to stdout
                driver = subprocess.run([str(client_python), "-c", JOB_DRIVER, server.url, TOKEN, endpoint,
                                         str(source), str(base), f"transfer-bench-{run}", str(out_json)],
                                        timeout=3600, stdout=client_out, stderr=subprocess.PIPE, text=True)
            pids = sorted(set(pids) | set(server_pids(server.process.pid)))
            peak = memory_kib(pids, "VmHWM")
            if driver.returncode == 0:
                job = json.loads(out_json.read_text())
            else:
                job = {"status": "client error", "states": [], "failures": [driver.stderr[-1500:]], "stderr": "",
                       "seconds": float("nan"), "output": str(base / "outputs" / "dataset_2.dat")}
            job["pull"] = log.transfer(mark, "GET", str(source))
            job["push"] = log.transfer(mark, "POST", job["output"])
            job["rss_growth_mib"] = (peak - idle) / 1024
            job["ok"] = (job["status"] == "complete" and not job["failures"]
                         and job["pull"]["bytes"] >= size and job["push"]["bytes"] >= size)
            if not job["ok"]:
                job["log"] = (server.workdir / "server.log").read_text(errors="replace")[-3000:]
            jobs.append(job)
            # the client cleaned the job up (cleanup_job always); a failed one may have left its files
            shutil.rmtree(server.workdir / "staging" / f"transfer-bench-{run}", ignore_errors=True)
        good = [j for j in jobs if j["ok"]] or jobs
        return {"jobs": jobs, "ok": all(j["ok"] for j in jobs), "status": ", ".join(j["status"] for j in jobs),
                "pull_s": min(j["pull"]["seconds"] for j in good), "push_s": min(j["push"]["seconds"] for j in good),
                "rss_growth_mib": max(j["rss_growth_mib"] for j in jobs),
                "seconds": min(j["seconds"] for j in good)}
    finally:
        server.stop()


def jobs_part(args, root: Path, port: int, source: Path, size: int) -> int:
    log = OriginLog(root / "origin.log")
    endpoint = f"http://127.0.0.1:{port}/api/jobs/1/files?job_key=bench-job-key"
    client_python = client_venv()
    limit = loopback_job_files(log, endpoint, source, root)
    servers = []
    if args.only != "pulsar":
        servers.append(Lite("pulsar_lite", root / "daemon-lite"))
    if args.only != "pulsar_lite":
        pulsar = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        servers.append(Pulsar("pulsar 0.16.0", root / "daemon-pulsar", pulsar))
    results = {}
    for server in servers:
        print(f"  {args.job_runs} whole job(s) on {server.name} ...", flush=True)
        results[server.name] = run_jobs(server, client_python, log, endpoint, source, size, args.job_runs)

    print(f"\nWhole jobs: remote_transfer, {args.size_mib} MiB input pulled, job `cp`, {args.size_mib} MiB output "
          f"pushed;\nclient pulsar-galaxy-lib 0.16.0 over REST; speeds measured at the origin (nginx access log); "
          f"best of {args.job_runs} job(s) per daemon, best of 2 for curl\n")
    header = (f"{'':<26}{'pull GB/s':>10}{'% limit':>9}{'push GB/s':>11}{'% limit':>9}{'RSS growth MiB':>16}"
              f"{'job s':>8}  status")
    print(header + "\n" + "-" * len(header))
    print(f"{'loopback (nginx + curl)':<26}{size / limit['pull_s'] / 1e9:>10.2f}{100:>8.0f}%"
          f"{size / limit['push_s'] / 1e9:>11.2f}{100:>8.0f}%{'':>16}{'':>8}  GET, cp, POST as a job")
    print(f"{'  push of a file at rest':<26}{'':>10}{'':>9}{size / limit['push_at_rest_s'] / 1e9:>11.2f}"
          f"{100 * limit['push_s'] / limit['push_at_rest_s']:>8.0f}%{'':>16}{'':>8}  synced before the POST")
    for name, r in results.items():
        pull, push = r["pull_s"], r["push_s"]
        print(f"{name:<26}{size / pull / 1e9:>10.2f}{100 * limit['pull_s'] / pull:>8.0f}%"
              f"{size / push / 1e9:>11.2f}{100 * limit['push_s'] / push:>8.0f}%{r['rss_growth_mib']:>16.1f}"
              f"{r['seconds']:>8.1f}  {r['status']}{'' if r['ok'] else ' (NOT OK)'}")
    print("(GB/s: payload bytes / time the origin spent on the request; % limit: of the loopback row, where curl "
          "pushes a just-written copy as the daemons push the job's just-written output; RSS growth: peak of the "
          "daemon's processes during the job minus their idle RSS; job s: submit -> complete, as the client saw it)")
    for name, r in results.items():
        for job in r["jobs"]:
            if not job["ok"]:
                print(f"\n{name}: a job did not complete with both transfers: states {job['states']}, "
                      f"failures {job['failures']}, pull {job['pull']}, push {job['push']}\n"
                      f"stderr: {job['stderr']}\nserver log tail:\n{job.get('log', '')}")
    lite = results.get("pulsar_lite")
    if lite:
        pull, push = limit["pull_s"] / lite["pull_s"], limit["push_s"] / lite["push_s"]
        growth = lite["rss_growth_mib"]
        ok = lite["ok"]
        at_rest = limit["push_at_rest_s"] / lite["push_s"]
        print(f"\ntargets (whole job, pulsar_lite): job complete {'PASS' if ok else 'MISS'}, "
              f"pull >= 80% of loopback {'PASS' if ok and pull >= 0.8 else 'MISS'}, "
              f"push >= 80% {'PASS' if ok and push >= 0.8 else 'MISS'} "
              f"(vs curl pushing the file at rest: {100 * at_rest:.0f}%, {'PASS' if ok and at_rest >= 0.8 else 'MISS'}), "
              f"RSS growth < 32 MiB {'PASS' if growth < 32 else 'MISS'}")
    return 0 if all(r["ok"] for r in results.values()) else 1


def timed(command: list[str]) -> float:
    os.sync()  # no write-back of an earlier run in this measurement
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def best_of(runs: int, measure):
    return min(measure() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--only", choices=("pulsar_lite", "pulsar"))
    parser.add_argument("--skip-functions", action="store_true", help="skip part 1 (the transfer functions)")
    parser.add_argument("--skip-jobs", action="store_true", help="skip part 2 (whole remote_transfer jobs)")
    parser.add_argument("--job-runs", type=int, default=2,
                        help="jobs per daemon in part 2; the best is printed, as for curl (default 2)")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        print("nginx is needed for the loopback limit: apt-get install nginx-light", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="pulsar-lite-transfer-bench-"))
    os.chmod(root, 0o755)  # nginx workers run as an unprivileged user
    for sub in ("www", "body", "proxy", "fcgi", "uwsgi", "scgi", "out"):
        (root / sub).mkdir()
        os.chmod(root / sub, 0o777)
    size = args.size_mib * 1024 * 1024
    block = os.urandom(1024 * 1024)
    source = root / "www" / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(args.size_mib):
            handle.write(block)
    os.sync()
    # bodies POSTed to the job-files API go to tmpfs: a whole job leaves gigabytes of dirty pages
    # (the pulled input, the job's output) whose write-back must not slow the origin down
    post_body = Path(tempfile.mkdtemp(prefix="pulsar-lite-transfer-bench-",
                                      dir="/dev/shm" if os.path.isdir("/dev/shm") else root))
    os.chmod(post_body, 0o777)
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port, maps=path_maps(root),
                                                       post_body=post_body))
    server = subprocess.Popen([nginx, "-c", str(root / "nginx.conf")], stderr=subprocess.DEVNULL)
    time.sleep(1)
    base = f"http://127.0.0.1:{port}"
    get_url, post_url = f"{base}/big.bin?job_key=x&path=/gx/big.bin", f"{base}/upload?job_key=x&path=/gx/out.bin"
    results: dict[str, dict] = {}
    status = 0
    try:
        if not args.skip_functions:
            results = functions_part(args, root, source, block, get_url, post_url)
            print_functions(args, results, size)
        if not args.skip_jobs:
            status = jobs_part(args, root, port, source, size)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(post_body, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return status


DURABLE = "  durable (curl + sync)"


def functions_part(args, root: Path, source: Path, block: bytes, get_url: str, post_url: str) -> dict:
    results: dict[str, dict] = {}
    out = root / "out" / "curl.bin"
    results["loopback (nginx + curl)"] = {
        "get": best_of(2, lambda: timed(["curl", "-sf", "-o", str(out), get_url])),
        "post": best_of(2, lambda: timed(["curl", "-sf", "-F", f"file=@{source}", post_url])),
        "rss_get": 0, "rss_post": 0}
    # pulsar_lite makes a staged input durable (fsync) before the job may read it; curl alone leaves it
    # in the page cache. The same download followed by an fsync of the file (coreutils `sync FILE`):
    results[DURABLE] = {
        "get": best_of(2, lambda: timed(["sh", "-c", f"curl -sf -o '{out}' '{get_url}' && sync '{out}'"])),
        "post": results["loopback (nginx + curl)"]["post"], "rss_get": 0, "rss_post": 0}
    out.unlink()
    runners = []
    if args.only != "pulsar":
        runners.append(("pulsar_lite", sys.executable, "lite"))
    if args.only != "pulsar_lite":
        pulsar = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        runners.append(("pulsar 0.16.0", str(pulsar), "pulsar"))
    for name, python, mode in runners:
        entry = {}
        for direction, url, path in (("get", get_url, root / "out" / f"{mode}.bin"), ("post", post_url, source)):
            runs = []
            for _ in range(2):
                os.sync()
                reply = subprocess.run([python, "-c", MEASURE, mode, direction, url, str(path)], check=True,
                                       capture_output=True, text=True)
                runs.append(json.loads(reply.stdout.strip().splitlines()[-1]))
            data = min(runs, key=lambda r: r["seconds"])
            entry[direction], entry[f"rss_{direction}"] = data["seconds"], data["rss_growth_kib"] / 1024
        if (root / "out" / f"{mode}.bin").read_bytes()[:1 << 20] != block:
            raise RuntimeError(f"{name}: downloaded file differs")
        (root / "out" / f"{mode}.bin").unlink()
        results[name] = entry
    return results


def print_functions(args, results: dict, size: int) -> None:
    limit = results["loopback (nginx + curl)"]
    print(f"\nTransfer functions: {args.size_mib} MiB over loopback, {os.cpu_count()} CPUs\n")
    header = f"{'':<26}{'pull GB/s':>10}{'% limit':>9}{'push GB/s':>11}{'% limit':>9}{'RSS growth MiB':>16}"
    print(header + "\n" + "-" * len(header))
    for name, r in results.items():
        get_rate, post_rate = size / r["get"] / 1e9, size / r["post"] / 1e9
        print(f"{name:<26}{get_rate:>10.2f}{100 * limit['get'] / r['get']:>8.0f}%{post_rate:>11.2f}"
              f"{100 * limit['post'] / r['post']:>8.0f}%{max(r['rss_get'], r['rss_post']):>16.1f}")
    lite = results.get("pulsar_lite")
    if lite:
        pull, push = limit["get"] / lite["get"], limit["post"] / lite["post"]
        growth = max(lite["rss_get"], lite["rss_post"])
        durable = results[DURABLE]["get"] / lite["get"]
        print(f"\ntargets: pull >= 80% of loopback {'PASS' if pull >= 0.8 else 'MISS'} "
              f"(of the durable loopback: {100 * durable:.0f}%, {'PASS' if durable >= 0.8 else 'MISS'}), push >= 80% "
              f"{'PASS' if push >= 0.8 else 'MISS'}, RSS growth < 32 MiB {'PASS' if growth < 32 else 'MISS'}")


if __name__ == "__main__":
    sys.exit(main())
