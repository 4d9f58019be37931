#!/usr/bin/env python3
"""Pull-staging transfer speed: 1 GiB pulled and 1 GiB pushed over loopback.

Compared in the same run against:
* the loopback limit: nginx (Debian package) serving / accepting the same file, driven by curl;
* Pulsar 0.16.0's own staging transfer functions (``pulsar.client.transport.get_file`` /
  ``post_file``, what its server calls for remote_transfer; requests-based, as a plain
  ``pip install pulsar-app`` has no pycurl), run in Pulsar's virtualenv;
* pulsar_lite's ``pulsar_lite.staging.transfer.download`` / ``upload`` (libcurl).

Downloads are written to disk; uploads are multipart POSTs (field ``file``) that nginx
reads completely into a temporary file. Printed: GB/s (best of two runs each), % of the loopback limit, and
the RSS growth of the transferring process.

    python benchmarks/transfer.py [--size-mib 1024] [--only pulsar_lite]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest_jobs import CACHE, free_port, venv  # noqa: E402

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location = /ok {{ return 200 "ok"; }}
        location = /upload {{
            client_max_body_size 0;
            client_body_in_file_only clean;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://127.0.0.1:{port}/ok;
        }}
    }}
}}
"""

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
    port = free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    server = subprocess.Popen([nginx, "-c", str(root / "nginx.conf")], stderr=subprocess.DEVNULL)
    time.sleep(1)
    base = f"http://127.0.0.1:{port}"
    get_url, post_url = f"{base}/big.bin?job_key=x&path=/gx/big.bin", f"{base}/upload?job_key=x&path=/gx/out.bin"
    results: dict[str, dict] = {}
    try:
        out = root / "out" / "curl.bin"
        results["loopback (nginx + curl)"] = {
            "get": best_of(2, lambda: timed(["curl", "-sf", "-o", str(out), get_url])),
            "post": best_of(2, lambda: timed(["curl", "-sf", "-F", f"file=@{source}", post_url])),
            "rss_get": 0, "rss_post": 0}
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
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)

    limit = results["loopback (nginx + curl)"]
    print(f"\n{args.size_mib} MiB over loopback, {os.cpu_count()} CPUs\n")
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
        print(f"\ntargets: pull >= 80% of loopback {'PASS' if pull >= 0.8 else 'MISS'}, push >= 80% "
              f"{'PASS' if push >= 0.8 else 'MISS'}, RSS growth < 32 MiB {'PASS' if growth < 32 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
