"""Scheduler benchmark driver, run inside a pulsar-galaxy-lib virtualenv (the real client).

argv: JSON {"url", "token", "jobs": [ids], "command": template with {job} and {end}, "poll": seconds,
            "timeout": seconds, "out": path, "threads": N, "launch_only": bool}
Launches every job (setup + launch, ``threads`` at a time), then polls each job's status every ``poll``
seconds, as Galaxy's job handler does, until every job is final. Records, per job, when the client first
saw it final. Writes the result as JSON to ``out``.
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from pulsar.client.manager import build_client_manager

FINAL = ("complete", "failed", "cancelled", "lost")
config = json.loads(sys.argv[1])
manager = build_client_manager()
destination = {"url": config["url"], "private_token": config["token"], **config.get("destination", {})}
clients = {job: manager.get_client(destination, job_id=job) for job in config["jobs"]}


def launch(job):
    client = clients[job]
    client.setup(tool_id="bench", tool_version="1.0")
    client.launch(config["command"].format(job=job, end=f"{config['ends']}/{job}"))


launched_at = time.time()
with ThreadPoolExecutor(config.get("threads", 8)) as pool:
    list(pool.map(launch, config["jobs"]))
launched = time.time()
if config.get("launch_only"):  # launch, and leave the jobs to the daemon (nobody polls)
    with open(config["out"], "w") as handle:
        json.dump({"launched_at": launched_at, "launched": launched, "seen": {}, "missing": []}, handle)
    sys.exit(0)
seen = {}
deadline = time.time() + config["timeout"]
pending = list(config["jobs"])
while pending and time.time() < deadline:
    round_started = time.time()
    for job in list(pending):
        status = clients[job].get_status()
        if status in FINAL:
            seen[job] = {"status": status, "at": time.time()}
            pending.remove(job)
    time.sleep(max(0.0, min(config["poll"] - (time.time() - round_started), deadline - time.time())))
with open(config["out"], "w") as handle:
    json.dump({"launched_at": launched_at, "launched": launched, "seen": seen, "missing": pending}, handle)
