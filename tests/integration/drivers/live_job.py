"""Submit one job as Galaxy's Pulsar runner does (pulsar-galaxy-lib's ``submit_job``: remote staging with an
action mapper and client outputs), with remote_transfer to a job-files endpoint; wait for its end and print the
final full status as JSON. Runs in a client virtualenv, never imports pulsar_lite.

    python live_job.py '{"url": ..., "job_id": ..., "files_endpoint": ..., "directory": ..., "command_line": ...}'
"""
import json
import os
import sys
import time

from pulsar.client.manager import build_client_manager
try:  # 0.16.0
    from pulsar.client.staging.models import ClientJobDescription, ClientOutputs
except ImportError:  # 0.15.16
    from pulsar.client.staging import ClientJobDescription, ClientOutputs
from pulsar.client.staging.up import submit_job
from pulsar.client.test.check import MockTool

request = json.loads(sys.argv[1])
destination = {"url": request["url"], "default_file_action": "remote_transfer",
               "files_endpoint": request["files_endpoint"]}
client = build_client_manager().get_client(destination, request["job_id"])
directory = request["directory"]  # Galaxy's job directory
working, metadata, tools = (os.path.join(directory, name) for name in ("working", "metadata", "tools"))
for path in (working, metadata, tools, os.path.join(directory, "outputs")):
    os.makedirs(path, exist_ok=True)
outputs = ClientOutputs(working_directory=working, metadata_directory=metadata, work_dir_outputs=[], output_files=[])
description = ClientJobDescription(command_line=request["command_line"], tool=MockTool(tools), client_outputs=outputs,
                                   working_directory=working, metadata_directory=metadata)
submit_job(client, description)
deadline = time.time() + request.get("timeout", 120)
while True:
    status = client.full_status()
    if status.get("status") in ("complete", "failed", "cancelled", "lost") or time.time() > deadline:
        break
    time.sleep(0.2)
print(json.dumps(status))
