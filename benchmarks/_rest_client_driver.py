"""Benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client).

argv: URL TOKEN JOBS CONCURRENCY POLL_SECONDS OUT_JSON
Each job: 3 small inputs (transfer), a command that writes 2 outputs, status
polling, outputs downloaded by the client's finish_job, then clean.
"""
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager
from pulsar.client.staging.inputs import CLIENT_INPUT_PATH_TYPES, ClientInput, ClientInputs
from pulsar.client.staging.models import ClientJobDescription, ClientOutputs, PulsarOutputs
from pulsar.client.staging.down import finish_job
from pulsar.client.staging.up import submit_job

url, token, jobs, concurrency, poll, out_path = sys.argv[1:7]
jobs, concurrency, poll = int(jobs), int(concurrency), float(poll)
manager = build_client_manager()
prefix = uuid.uuid4().hex[:8]


class Tool:
    id = "bench_tool"
    version = "1.0"

    def __init__(self, tool_dir):
        self.tool_dir = tool_dir


def one(index: int) -> float:
    started = time.time()
    base = tempfile.mkdtemp(prefix="bench-")
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
    command = f"cat {inputs[0]} {inputs[1]} > {out1}; cat {inputs[2]} > {out2}"
    client = manager.get_client({"url": url, "private_token": token or None, "default_file_action": "transfer"},
                                job_id=f"{prefix}{index}")
    outputs = ClientOutputs(working_directory=work, metadata_directory=meta, output_files=[out1, out2])
    description = ClientJobDescription(
        command_line=command, tool=Tool(tool), config_files=[],
        client_inputs=ClientInputs([ClientInput(p, CLIENT_INPUT_PATH_TYPES.INPUT_PATH) for p in inputs]),
        client_outputs=outputs, working_directory=work, metadata_directory=meta)
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
