"""AMQP benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client, with kombu).

argv: AMQP_URL MANAGER JOBS_DIRECTORY JOBS CONCURRENCY OUT_JSON
Each job: 3 small inputs and 2 outputs staged by the server (remote_copy), submitted with
the client's submit_job over the message queue; latency = submit -> final status_update.
"""
import json
import os
import resource
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.up import submit_job

from _job_files import job_description, machine_busy_seconds

url, manager_name, jobs_directory, jobs, concurrency, out_path = sys.argv[1:7]
jobs, concurrency = int(jobs), int(concurrency)
manager = build_client_manager(amqp_url=url, manager=manager_name)
prefix = uuid.uuid4().hex[:8]
finished: dict[str, threading.Event] = {}
final: dict[str, dict] = {}


def on_update(body):
    if body.get("status") in ("complete", "failed", "lost", "cancelled"):
        final[body["job_id"]] = body
        event = finished.get(body["job_id"])
        if event:
            event.set()


manager.ensure_has_status_update_callback(on_update)
time.sleep(1)


def one(index: int) -> float:
    description, outputs, (out1, out2) = job_description(index)
    job_id = f"{prefix}{index}"
    finished[job_id] = threading.Event()
    client = manager.get_client({"jobs_directory": jobs_directory, "default_file_action": "remote_copy"},
                                job_id=job_id)
    started = time.time()
    submit_job(client, description)
    if not finished[job_id].wait(300):
        raise RuntimeError(f"job {job_id}: no final status")
    latency = time.time() - started
    if final[job_id]["status"] != "complete" or not os.path.getsize(out1) or not os.path.getsize(out2):
        raise RuntimeError(f"job {job_id} ended {final[job_id]['status']}")
    shutil.rmtree(os.path.dirname(out1), ignore_errors=True)  # the job's client-side files
    return latency


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


cpu_before, machine_before = cpu(), machine_busy_seconds()
began = time.time()
with ThreadPoolExecutor(concurrency) as pool:
    latencies = list(pool.map(one, range(jobs)))
elapsed = time.time() - began
client_cpu = cpu() - cpu_before  # the job phase only, not interpreter start-up
machine_cpu = machine_busy_seconds() - machine_before
manager.shutdown()
with open(out_path, "w") as handle:
    json.dump({"elapsed": elapsed, "latencies": latencies, "client_cpu": client_cpu, "machine_cpu": machine_cpu},
              handle)
