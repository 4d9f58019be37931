"""Benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client).

argv: URL TOKEN JOBS CONCURRENCY POLL_SECONDS OUT_JSON
Each job: 3 small inputs (transfer), a command that writes 2 outputs, status
polling, outputs downloaded by the client's finish_job, then clean.
"""
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.models import PulsarOutputs
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job

from _job_files import job_description

url, token, jobs, concurrency, poll, out_path = sys.argv[1:7]
jobs, concurrency, poll = int(jobs), int(concurrency), float(poll)
manager = build_client_manager()
prefix = uuid.uuid4().hex[:8]


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
    if failed or status["status"] != "complete" or not os.path.getsize(out1) or not os.path.getsize(out2):
        raise RuntimeError(f"job {index} did not complete properly: {status['status']} {failed}")
    return time.time() - started


began = time.time()
with ThreadPoolExecutor(concurrency) as pool:
    latencies = list(pool.map(one, range(jobs)))
elapsed = time.time() - began
with open(out_path, "w") as handle:
    json.dump({"elapsed": elapsed, "latencies": latencies}, handle)
