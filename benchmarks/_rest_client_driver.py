"""Benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client).

argv: URL TOKEN JOBS CONCURRENCY POLL_SECONDS OUT_JSON [PROCESSES]
Each job: 3 small inputs (transfer), a command that writes 2 outputs, status
polling, outputs downloaded by the client's finish_job, then clean.
CONCURRENCY jobs are in flight at once, spread over PROCESSES client processes
(as Galaxy spreads jobs over its job handler processes), so that the client's own
interpreter lock does not cap the rate.
"""
import json
import multiprocessing
import os
import resource
import shutil
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.models import PulsarOutputs
from pulsar.client.staging.up import submit_job

from _job_files import job_description, machine_busy_seconds


def run_share(args):
    url, token, indices, threads, poll, prefix = args
    manager = build_client_manager()

    def one(index: int) -> float:
        started = time.time()
        description, outputs, (out1, out2) = job_description(index)
        client = manager.get_client({"url": url, "private_token": token or None, "default_file_action": "transfer"},
                                    job_id=f"{prefix}{index}")
        job_id = submit_job(client, description)
        if job_id:
            client.job_id = job_id
        while True:
            status = client.raw_check_complete()
            if status["status"] in ("complete", "cancelled", "failed", "lost"):
                break
            time.sleep(poll)
        failed = finish_job(client=client, cleanup_job="always", job_completed_normally=True,
                            client_outputs=outputs, pulsar_outputs=PulsarOutputs.from_status_response(status))
        sizes = [os.path.getsize(out) if os.path.exists(out) else None for out in (out1, out2)]
        if failed or status["status"] != "complete" or not all(sizes):
            raise RuntimeError(f"job {client.job_id} (index {index}) did not complete properly: {status['status']}, "
                               f"failed collections {failed}, output sizes {sizes}, status {status}")
        elapsed = time.time() - started
        shutil.rmtree(os.path.dirname(out1), ignore_errors=True)  # the job's client-side files
        return elapsed

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, indices))


def main():
    url, token, jobs, concurrency, poll, out_path = sys.argv[1:7]
    processes = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    jobs, concurrency, poll = int(jobs), int(concurrency), float(poll)
    processes = max(1, min(processes, concurrency))
    prefix = uuid.uuid4().hex[:8]
    shares = [(url, token, list(range(p, jobs, processes)), concurrency // processes + (p < concurrency % processes),
               poll, prefix) for p in range(processes)]
    def cpu():
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    cpu_before, machine_before = cpu(), machine_busy_seconds()
    began = time.time()
    if processes == 1:
        latencies = run_share(shares[0])
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            latencies = [lat for share in pool.map(run_share, shares) for lat in share]
            pool.close()
            pool.join()
    elapsed = time.time() - began
    client_cpu, machine_cpu = cpu() - cpu_before, machine_busy_seconds() - machine_before
    with open(out_path, "w") as handle:  # CPU of the job phase only (not the client's start-up)
        json.dump({"elapsed": elapsed, "latencies": latencies, "client_cpu": client_cpu,
                   "machine_cpu": machine_cpu}, handle)


if __name__ == "__main__":
    main()
