"""The cost of /metrics: the REST benchmark's jobs with and without Prometheus scraping every second.

    .venv/bin/python benchmarks/metrics_cost.py [--jobs 600] [--concurrency 16] [--rounds 4] [--server paste]

One pulsar_lite daemon; in interleaved rounds the real client (pulsar-galaxy-lib 0.16.0) runs the REST
benchmark's jobs (rest_jobs.py: 3 inputs, 2 outputs each) while a scraper fetches /metrics every
``--interval`` seconds, or not. Server CPU per job (its own processes, the scrapes included) is compared.
Target: < 3 % more with scraping.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from rest_jobs import LITE, PulsarLite, client_venv, cpu_seconds, default_client_tmp, run_one, server_pids


def scraper(url: str, interval: float, stop: threading.Event, counts: list) -> None:
    while not stop.wait(interval):
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        counts[0] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--server", choices=("paste", "granian"), default="paste")
    args = parser.parse_args()
    client_python = client_venv()
    scratch = Path(tempfile.mkdtemp(prefix="pulsar-lite-metrics-"))
    server = PulsarLite(LITE, scratch / "lite", web_server=args.server)
    server.start()
    results = {"without": [], "with": []}
    scrapes = [0]
    try:
        run_one(server, client_python, 50, args.concurrency, 0.05, 1, default_client_tmp())  # warm-up
        for round_no in range(args.rounds):
            for mode in (("without", "with") if round_no % 2 == 0 else ("with", "without")):
                stop = threading.Event()
                thread = None
                if mode == "with":
                    thread = threading.Thread(target=scraper, args=(server.url + "metrics", args.interval, stop,
                                                                     scrapes), daemon=True)
                    thread.start()
                result = run_one(server, client_python, args.jobs, args.concurrency, 0.05, 1, default_client_tmp())
                stop.set()
                if thread:
                    thread.join()
                results[mode].append(result)
                print(f"  round {round_no} {mode:>7} scraping: {result['cpu_per_job'] * 1000:.2f} ms CPU/job, "
                      f"{result['jobs_per_s']:.1f} jobs/s", flush=True)
                time.sleep(2)
        # what one scrape costs, measured alone (the rounds above are noisier than the effect)
        pids = server_pids(server.process.pid)
        before = cpu_seconds(pids)
        for _ in range(200):
            with urllib.request.urlopen(server.url + "metrics", timeout=10) as response:
                response.read()
        per_scrape = (cpu_seconds(server_pids(server.process.pid)) - before) / 200
    finally:
        server.stop()
    without = statistics.median(r["cpu_per_job"] for r in results["without"])
    with_ = statistics.median(r["cpu_per_job"] for r in results["with"])
    print(f"\n{args.jobs} jobs x {args.rounds} rounds each, concurrency {args.concurrency}, {args.server}; "
          f"{scrapes[0]} scrapes of /metrics (every {args.interval:g} s while jobs ran)")
    print(f"  server CPU per job without scraping: {without * 1000:.2f} ms (median)")
    print(f"  server CPU per job with scraping:    {with_ * 1000:.2f} ms (median)")
    print(f"  difference: {(with_ / without - 1) * 100:+.1f} % [target < +3 %: "
          f"{'PASS' if with_ / without - 1 < 0.03 else 'MISS'}]")
    rate = statistics.median(r["jobs_per_s"] for r in results["without"])
    share = per_scrape / args.interval / (rate * without)
    print(f"  one scrape alone: {per_scrape * 1000:.2f} ms of server CPU; at one per {args.interval:g} s beside "
          f"{rate:.0f} jobs/s x {without * 1000:.2f} ms: {share * 100:.2f} % more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
