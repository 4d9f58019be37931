"""One job whose input and output move by rsync or scp over ssh (remote_rsync_transfer / remote_scp_transfer),
submitted as Galaxy's Pulsar runner does (pulsar-galaxy-lib's ``submit_job`` with the destination's ssh_key,
ssh_user, ssh_host, ssh_port); prints the final full status as JSON. Runs in a client virtualenv.

    python ssh_job.py '{"url", "job_id", "action", "directory", "ssh_key", "ssh_user", "ssh_host", "ssh_port"}'
"""
import json
import os
import sys
import time

from pulsar.client.manager import build_client_manager
from pulsar.client.test import check

request = json.loads(sys.argv[1])
destination = {"url": request["url"], "default_file_action": request["action"], "ssh_key": request["ssh_key"],
               "ssh_user": request["ssh_user"], "ssh_host": request["ssh_host"], "ssh_port": request["ssh_port"]}
client = build_client_manager().get_client(destination, request["job_id"])
directory = request["directory"]  # Galaxy's side: its datasets and job directory
working, metadata, tools = (os.path.join(directory, name) for name in ("working", "metadata", "tools"))
for path in (working, metadata, tools, os.path.join(directory, "files")):
    os.makedirs(path, exist_ok=True)
source = os.path.join(directory, "files", "dataset_1.dat")
target = os.path.join(directory, "files", "dataset_2.dat")
with open(source, "w") as handle:
    handle.write("moved over ssh\n" * 1000)
inputs = check.ClientInputs([check.ClientInput(source, check.CLIENT_INPUT_PATH_TYPES.INPUT_PATH)])
outputs = check.ClientOutputs(working_directory=working, metadata_directory=metadata, work_dir_outputs=[],
                              output_files=[target])
description = check.ClientJobDescription(command_line=f"tr a-z A-Z < {source} > {target}",
                                         tool=check.MockTool(tools), client_inputs=inputs, client_outputs=outputs,
                                         working_directory=working, metadata_directory=metadata)
check.submit_job(client, description)
deadline = time.time() + 120
while True:
    status = client.full_status()
    if status.get("status") in ("complete", "failed", "cancelled", "lost") or time.time() > deadline:
        break
    time.sleep(0.2)
print(json.dumps(status))
