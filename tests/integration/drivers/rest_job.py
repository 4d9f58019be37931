"""Drive one job through the real Pulsar client (pulsar-galaxy-lib), over REST. Runs in a client virtualenv,
never imports pulsar_lite.

    python rest_job.py '{"url": ..., "job_id": ..., "action": "launch"|"status"|"kill"|"wait"|"clean", ...}'

launch: setup + launch(command_line) with destination params ``destination`` (submit_* keys included);
wait: poll full_status until the status is in ``states`` (or ``timeout``), print it as JSON;
status: print full_status; kill: cancel; clean: clean.
"""
import json
import sys
import time

from pulsar.client.manager import build_client_manager

request = json.loads(sys.argv[1])
destination = {"url": request["url"], **request.get("destination", {})}
if request.get("token"):
    destination["private_token"] = request["token"]
client = build_client_manager().get_client(destination, request["job_id"])
action = request["action"]
if action == "launch":
    client.setup(tool_id="pulsar_lite_test", tool_version="1.0")
    client.launch(request["command_line"])
elif action == "kill":
    client.kill()
elif action == "clean":
    client.clean()
elif action in ("status", "wait"):
    deadline = time.time() + request.get("timeout", 60)
    while True:
        status = client.full_status()
        if action == "status" or status.get("status") in request["states"] or time.time() > deadline:
            break
        time.sleep(request.get("interval", 0.2))
    print(json.dumps(status))
else:
    sys.exit(f"unknown action {action}")
