"""AMQP benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client, with kombu).

argv: AMQP_URL MANAGER JOBS_DIRECTORY JOBS CONCURRENCY OUT_JSON
Each job: 3 small inputs and 2 outputs staged by the server (remote_copy), submitted with
the client's submit_job over the message queue; latency = submit -> final status_update.
"""
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs
from pulsar.client.staging.up import submit_job

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


class Tool:
    id = "bench_tool"
    version = "1.0"

    def __init__(self, tool_dir):
        self.tool_dir = tool_dir


def one(index: int) -> float:
    base = tempfile.mkdtemp(prefix="bench-amqp-")
    inputs = []
    for k in range(3):
        path = os.path.join(base, f"dataset_{index}{k}.dat")
        with open(path, "w") as handle:
            handle.write(f"input {k} of job {index}\n" * 20)
        inputs.append(path)
    work, meta, tool = (os.path.join(base, d) for d in ("w", "m", "t"))
    for d in (work, meta, tool):
        os.makedirs(d)
    out1, out2 = os.path.join(base, "dataset_9001.dat"), os.path.join(base, "dataset_9002.dat")
    job_id = f"{prefix}{index}"
    finished[job_id] = threading.Event()
    client = manager.get_client({"jobs_directory": jobs_directory, "default_file_action": "remote_copy"},
                                job_id=job_id)
    outputs = ClientOutputs(working_directory=work, metadata_directory=meta, output_files=[out1, out2])
    description = ClientJobDescription(
        command_line=f"cat {inputs[0]} {inputs[1]} > {out1}; cat {inputs[2]} > {out2}", tool=Tool(tool),
        config_files=[], client_inputs=ClientInputs([ClientInput(p, CLIENT_INPUT_PATH_TYPES.INPUT_PATH) for p in inputs]),
        client_outputs=outputs, working_directory=work, metadata_directory=meta)
    started = time.time()
    submit_job(client, description)
    if not finished[job_id].wait(300):
        raise RuntimeError(f"job {job_id}: no final status")
    latency = time.time() - started
    if final[job_id]["status"] != "complete" or not os.path.getsize(out1) or not os.path.getsize(out2):
        raise RuntimeError(f"job {job_id} ended {final[job_id]['status']}")
    return latency


began = time.time()
with ThreadPoolExecutor(concurrency) as pool:
    latencies = list(pool.map(one, range(jobs)))
elapsed = time.time() - began
manager.shutdown()
with open(out_path, "w") as handle:
    json.dump({"elapsed": elapsed, "latencies": latencies}, handle)
