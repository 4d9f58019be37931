#!/usr/bin/env python3
"""Pull-staging transfer speed: 1 GiB pulled and 1 GiB pushed over loopback.

Part 1, the transfer functions. Compared in the same run against:
* the loopback limit: nginx (Debian package) serving / accepting the same file, driven by curl;
* Pulsar 0.16.0's own staging transfer functions (``pulsar.client.transport.get_file`` /
  ``post_file``, what its server calls for remote_transfer; requests-based, as a plain
  ``pip install pulsar-app`` has no pycurl), run in Pulsar's virtualenv;
* pulsar_lite's ``pulsar_lite.staging.transfer.download`` / ``upload`` (libcurl).

Downloads are written to disk; uploads are multipart POSTs (field ``file``) that nginx
reads completely and streams on to a sink that discards them (``BodySink``: on this kind of virtual
machine a receiver writing into fresh memory runs at the speed of the host's page faults, 0.3 to
1.2 GB/s for the same curl POST). Loopback speed on this kind of machine swings from run to
run by a factor of two (the same curl POST: 0.46 to 1.14 GB/s in a row), so every party is measured
--runs times (default 5), interleaved (run 1 of each party, then run 2 of each, ...) so that a slow
spell of the machine hits all of them alike. Printed: GB/s of the best run and the median run, % of
the loopback limit (best against best, median against median), and the RSS growth of the
transferring process (worst run).

Part 2, whole jobs (skip with --skip-jobs). Each daemon (pulsar_lite, and Pulsar 0.16.0 served as
benchmarks/rest_jobs.py serves it) runs real jobs submitted over REST by the real client
(pulsar-galaxy-lib 0.16.0) with default_file_action "remote_transfer": the daemon pulls one input
from a Galaxy-style job-files API, the job copies it (``cp``) to an output, and the daemon pushes
that output back before the job reports complete (checked). The job-files API is the same nginx: GET
answers with the file named by the ``path`` query argument, POST reads the whole multipart body
(into the sink) and answers 200. Speeds are measured at the origin, from nginx's
access log ($request_time with $bytes_sent / $request_length), the same way for both daemons and
for curl, which gives the loopback limit of this part. curl follows the job's sequence (GET the
input to disk, cp it, POST the copy at once); the POST of the same copy at rest (synced first) is
printed as well. Both daemons run side by side; each of the --runs rounds runs curl's sequence and
then one job on each daemon. RSS growth is the peak (VmHWM, reset before each job) of the daemon's
processes minus their idle VmRSS (worst job).

    python benchmarks/transfer.py [--size-mib 1024] [--only pulsar_lite] [--skip-jobs] [--skip-functions]
                                  [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
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
        # uploads: nginx reads the whole body and streams it on (unbuffered) to a sink that discards it
        location = /upload {{
            proxy_request_buffering off;
            proxy_pass http://127.0.0.1:{sink};
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
            proxy_request_buffering off;
            proxy_pass http://127.0.0.1:{sink};
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


class BodySink:
    """The upstream that nginx streams POST bodies to: reads each request's Content-Length bytes into
    one reused buffer, discards them and answers 200.

    Why not a file: on this kind of virtual machine, memory the guest freed is handed back to the host
    within seconds (virtio-balloon free page reporting), and the first write to such a page faults in
    the host. A receiver that writes each upload to a fresh file (tmpfs or page cache) then runs at
    whatever speed the pages it happens to get allow: measured here, the same curl POST of 1 GiB into
    a tmpfs file ran at 1.20 GB/s right after 2 GiB had been freed and at 0.31 GB/s 20 s later, with
    nginx's CPU time spent copying into the new pages. That noise is about the receiver's memory, not
    about the sender being measured, and it lands on whichever party happens to get cold pages.
    """

    def __init__(self):
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _handler():
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                sock, head = self.request, b""
                while b"\r\n\r\n" not in head:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                header, rest = head.split(b"\r\n\r\n", 1)
                match = re.search(rb"(?im)^content-length:\s*(\d+)", header)
                remaining = (int(match.group(1)) if match else 0) - len(rest)
                buffer = memoryview(bytearray(1 << 20))
                while remaining > 0:
                    got = sock.recv_into(buffer, min(len(buffer), remaining))
                    if not got:
                        return
                    remaining -= got
                sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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


def curl_job_sequence(log: OriginLog, endpoint: str, source: Path, root: Path) -> dict:
    """One round of curl against the job-files API, measured at the origin like the daemons.

    It follows the job's own sequence: GET the input to disk, ``cp`` it to an output, POST that
    output at once; then the same output is synced and POSTed again (at rest)."""
    inputs, output = root / "out" / "curl-input.bin", root / "out" / "curl-output.bin"
    target = str(root / "client-curl" / "dataset_2.dat")

    def post(path: Path) -> float:
        mark = log.mark()
        subprocess.run(["curl", "-sf", "-F", f"file=@{path}", endpoint + "&" + urllib.parse.urlencode(
            {"path": target, "file_type": "output"})], check=True, stdout=subprocess.DEVNULL)
        return log.transfer(mark, "POST", target)["seconds"]

    os.sync()
    mark = log.mark()
    subprocess.run(["curl", "-sf", "-o", str(inputs), endpoint + "&" + urllib.parse.urlencode(
        {"path": str(source), "file_type": "input"})], check=True, stdout=subprocess.DEVNULL)
    pull = log.transfer(mark, "GET", str(source))["seconds"]
    subprocess.run(["cp", str(inputs), str(output)], check=True)
    push = post(output)
    os.sync()
    at_rest = post(output)
    inputs.unlink()
    output.unlink()
    return {"pull_s": pull, "push_s": push, "push_at_rest_s": at_rest}


def run_job(server: Server, client_python: Path, log: OriginLog, endpoint: str, source: Path, size: int,
            run: int) -> dict:
    """One remote_transfer job on a running ``server``: origin-side transfers, RSS growth, outcome."""
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
    # the client cleaned the job up (cleanup_job always); a failed one may have left its files
    shutil.rmtree(server.workdir / "staging" / f"transfer-bench-{run}", ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return job


def summary(jobs: list[dict]) -> dict:
    """Best and median seconds of each direction over the good jobs, worst RSS growth, outcomes."""
    good = [j for j in jobs if j["ok"]] or jobs
    pulls = [j["pull"]["seconds"] for j in good]
    pushes = [j["push"]["seconds"] for j in good]
    return {"jobs": jobs, "ok": all(j["ok"] for j in jobs),
            "status": ", ".join(f"{n} {s}" for s, n in Counter(j["status"] for j in jobs).items()),
            "pull_s": min(pulls), "pull_median_s": statistics.median(pulls),
            "push_s": min(pushes), "push_median_s": statistics.median(pushes),
            "rss_growth_mib": max(j["rss_growth_mib"] for j in jobs),
            "seconds": statistics.median(j["seconds"] for j in good)}


def jobs_part(args, root: Path, port: int, source: Path, size: int) -> int:
    log = OriginLog(root / "origin.log")
    endpoint = f"http://127.0.0.1:{port}/api/jobs/1/files?job_key=bench-job-key"
    client_python = client_venv()
    servers = []
    if args.only != "pulsar":
        servers.append(Lite("pulsar_lite", root / "daemon-lite"))
    if args.only != "pulsar_lite":
        pulsar = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        servers.append(Pulsar("pulsar 0.16.0", root / "daemon-pulsar", pulsar))
    rounds: list[dict] = []
    jobs: dict[str, list[dict]] = {server.name: [] for server in servers}
    try:
        for server in servers:
            server.start()
        time.sleep(3)
        for run in range(args.runs):
            print(f"  round {run + 1} of {args.runs}: curl, then a whole job on "
                  f"{' and '.join(s.name for s in servers)} ...", flush=True)
            rounds.append(curl_job_sequence(log, endpoint, source, root))
            for server in servers:
                jobs[server.name].append(run_job(server, client_python, log, endpoint, source, size, run))
    finally:
        for server in servers:
            server.stop()
    limit = {key: min(r[key] for r in rounds) for key in rounds[0]}
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    results = {name: summary(runs) for name, runs in jobs.items()}

    print(f"\nWhole jobs: remote_transfer, {args.size_mib} MiB input pulled, job `cp`, {args.size_mib} MiB output "
          f"pushed;\nclient pulsar-galaxy-lib 0.16.0 over REST; speeds measured at the origin (nginx access log); "
          f"{args.runs} interleaved rounds (curl, then one job per daemon)\n")
    header = (f"{'':<26}{'pull GB/s':>10}{'median':>8}{'% limit':>9}{'push GB/s':>11}{'median':>8}{'% limit':>9}"
              f"{'RSS growth MiB':>16}{'job s':>7}  status")
    print(header + "\n" + "-" * len(header))

    def row(name, pull, pull_median, push, push_median, pull_ref, push_ref, rest=""):
        pull_pct = f"{100 * pull_ref[0] / pull:.0f}/{100 * pull_ref[1] / pull_median:.0f}%" if pull else ""
        print(f"{name:<26}{_rate(size, pull):>10}{_rate(size, pull_median):>8}{pull_pct:>9}"
              f"{_rate(size, push):>11}{_rate(size, push_median):>8}"
              f"{100 * push_ref[0] / push:>4.0f}/{100 * push_ref[1] / push_median:.0f}%{rest}")

    pull_ref = (limit["pull_s"], median["pull_s"])
    push_ref = (limit["push_s"], median["push_s"])
    row("loopback (nginx + curl)", limit["pull_s"], median["pull_s"], limit["push_s"], median["push_s"],
        pull_ref, push_ref, f"{'':>16}{'':>7}  GET, cp, POST as a job")
    row("  push of a file at rest", 0, 0, limit["push_at_rest_s"], median["push_at_rest_s"], pull_ref, push_ref,
        f"{'':>16}{'':>7}  the same copy, synced first")
    for name, r in results.items():
        row(name, r["pull_s"], r["pull_median_s"], r["push_s"], r["push_median_s"], pull_ref, push_ref,
            f"{r['rss_growth_mib']:>16.1f}{r['seconds']:>7.1f}  {r['status']}{'' if r['ok'] else ' (NOT OK)'}")
    print("(GB/s: payload bytes / time the origin spent on the request, best run and median run; % limit: "
          "best / best and median / median, of the loopback row, where curl pushes a just-written copy as the "
          "daemons push the job's just-written output; RSS growth: the worst job's peak of the daemon's processes "
          "minus their idle RSS; job s: submit -> complete as the client saw it, median)")
    for name, r in results.items():
        for job in r["jobs"]:
            if not job["ok"]:
                print(f"\n{name}: a job did not complete with both transfers: states {job['states']}, "
                      f"failures {job['failures']}, pull {job['pull']}, push {job['push']}\n"
                      f"stderr: {job['stderr']}\nserver log tail:\n{job.get('log', '')}")
    lite = results.get("pulsar_lite")
    if lite:
        pull, push = limit["pull_s"] / lite["pull_s"], limit["push_s"] / lite["push_s"]
        pull_median, push_median = median["pull_s"] / lite["pull_median_s"], median["push_s"] / lite["push_median_s"]
        at_rest = limit["push_at_rest_s"] / lite["push_s"]
        growth = lite["rss_growth_mib"]
        ok = lite["ok"]
        print(f"\ntargets (whole job, pulsar_lite, best runs): job complete {'PASS' if ok else 'MISS'}, "
              f"pull >= 80% of loopback {_verdict(ok and pull >= 0.8)} ({100 * pull:.0f}%; medians "
              f"{100 * pull_median:.0f}%), push >= 80% {_verdict(ok and push >= 0.8)} ({100 * push:.0f}%; medians "
              f"{100 * push_median:.0f}%; of curl's best push of the copy at rest: {100 * at_rest:.0f}%), "
              f"RSS growth < 32 MiB {_verdict(growth < 32)}")
    return 0 if all(r["ok"] for r in results.values()) else 1


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e9:.2f}" if seconds else ""


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def timed(command: list[str]) -> float:
    os.sync()  # no write-back of an earlier run in this measurement
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--only", choices=("pulsar_lite", "pulsar"))
    parser.add_argument("--skip-functions", action="store_true", help="skip part 1 (the transfer functions)")
    parser.add_argument("--skip-jobs", action="store_true", help="skip part 2 (whole remote_transfer jobs)")
    parser.add_argument("--runs", type=int, default=5,
                        help="interleaved runs of every party (curl, pulsar_lite, Pulsar) in each part; the best "
                             "and the median are printed (default 5)")
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
    sink = BodySink()  # POST bodies end here (see BodySink: why not in a file)
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port, maps=path_maps(root),
                                                       sink=sink.port))
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
        sink.close()
        shutil.rmtree(root, ignore_errors=True)
    return status


DURABLE = "  durable (curl + sync)"


def functions_part(args, root: Path, source: Path, block: bytes, get_url: str, post_url: str) -> dict:
    """Each party's get and post, ``args.runs`` interleaved rounds: {party: {"get": [s, ...], "post": [...],
    "rss_get": worst MiB, "rss_post": worst MiB}}."""
    out = root / "out" / "curl.bin"
    parties = {
        "loopback (nginx + curl)": {
            "get": lambda: timed(["curl", "-sf", "-o", str(out), get_url]),
            "post": lambda: timed(["curl", "-sf", "-F", f"file=@{source}", post_url])},
        # pulsar_lite makes a staged input durable (fsync) before the job may read it; curl alone leaves it
        # in the page cache. The same download followed by an fsync of the file (coreutils `sync FILE`):
        DURABLE: {"get": lambda: timed(["sh", "-c", f"curl -sf -o '{out}' '{get_url}' && sync '{out}'"])},
    }
    runners = []
    if args.only != "pulsar":
        runners.append(("pulsar_lite", sys.executable, "lite"))
    if args.only != "pulsar_lite":
        pulsar = venv(CACHE / "bench" / "pulsar-0.16.0", "pulsar-app[web]==0.16.0", "kombu")
        runners.append(("pulsar 0.16.0", str(pulsar), "pulsar"))
    rss: dict[str, dict[str, float]] = defaultdict(lambda: {"get": 0.0, "post": 0.0})  # worst growth, MiB

    def measured(name, python, mode, direction, url, path):
        def run():
            os.sync()
            reply = subprocess.run([python, "-c", MEASURE, mode, direction, url, str(path)], check=True,
                                   capture_output=True, text=True)
            data = json.loads(reply.stdout.strip().splitlines()[-1])
            rss[name][direction] = max(rss[name][direction], data["rss_growth_kib"] / 1024)
            return data["seconds"]
        return run

    for name, python, mode in runners:
        parties[name] = {"get": measured(name, python, mode, "get", get_url, root / "out" / f"{mode}.bin"),
                         "post": measured(name, python, mode, "post", post_url, source)}
    times: dict[str, dict[str, list[float]]] = {name: {"get": [], "post": []} for name in parties}
    for run in range(args.runs):
        print(f"  transfer functions, round {run + 1} of {args.runs} ...", flush=True)
        for direction in ("get", "post"):
            for name, measures in parties.items():
                if direction in measures:
                    times[name][direction].append(measures[direction]())
        for name, python, mode in runners:
            downloaded = root / "out" / f"{mode}.bin"
            if downloaded.read_bytes()[:1 << 20] != block:
                raise RuntimeError(f"{name}: downloaded file differs")
            downloaded.unlink()
    times[DURABLE]["post"] = times["loopback (nginx + curl)"]["post"]
    out.unlink()
    return {name: {"get": t["get"], "post": t["post"], "rss_get": rss[name]["get"], "rss_post": rss[name]["post"]}
            for name, t in times.items()}


def print_functions(args, results: dict, size: int) -> None:
    best = {name: {d: min(r[d]) for d in ("get", "post")} for name, r in results.items()}
    median = {name: {d: statistics.median(r[d]) for d in ("get", "post")} for name, r in results.items()}
    print(f"\nTransfer functions: {args.size_mib} MiB over loopback, {os.cpu_count()} CPUs, "
          f"{args.runs} interleaved runs each\n")
    header = (f"{'':<26}{'pull GB/s':>10}{'median':>8}{'% limit':>9}{'push GB/s':>11}{'median':>8}{'% limit':>9}"
              f"{'RSS growth MiB':>16}")
    print(header + "\n" + "-" * len(header))
    ref = best["loopback (nginx + curl)"], median["loopback (nginx + curl)"]
    for name, r in results.items():
        cells = []
        for d in ("get", "post"):
            pct = f"{100 * ref[0][d] / best[name][d]:.0f}/{100 * ref[1][d] / median[name][d]:.0f}%"
            cells.append(f"{_rate(size, best[name][d]):>{10 if d == 'get' else 11}}"
                         f"{_rate(size, median[name][d]):>8}{pct:>9}")
        print(f"{name:<26}{''.join(cells)}{max(r['rss_get'], r['rss_post']):>16.1f}")
    print("(best run and median run; % limit: best / best and median / median, of the loopback row; RSS growth: "
          "worst run)")
    lite = best.get("pulsar_lite")
    if lite:
        pull, push = ref[0]["get"] / lite["get"], ref[0]["post"] / lite["post"]
        pull_median = ref[1]["get"] / median["pulsar_lite"]["get"]
        push_median = ref[1]["post"] / median["pulsar_lite"]["post"]
        growth = max(results["pulsar_lite"]["rss_get"], results["pulsar_lite"]["rss_post"])
        durable = best[DURABLE]["get"] / lite["get"]
        print(f"\ntargets (best runs): pull >= 80% of loopback {_verdict(pull >= 0.8)} ({100 * pull:.0f}%; medians "
              f"{100 * pull_median:.0f}%; of the durable loopback: {100 * durable:.0f}%), push >= 80% "
              f"{_verdict(push >= 0.8)} ({100 * push:.0f}%; medians {100 * push_median:.0f}%), "
              f"RSS growth < 32 MiB {_verdict(growth < 32)}")


if __name__ == "__main__":
    sys.exit(main())
