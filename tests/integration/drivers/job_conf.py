"""Load a Galaxy job_conf sample with Galaxy's own job configuration code, and run one job through each Pulsar
destination with pulsar-galaxy-lib, the client Galaxy builds from the destination's parameters. Runs inside the
galaxy-app virtualenv, never imports pulsar_lite.

    python job_conf.py '{"job_conf": path, "url": daemon URL, "token": ..., "amqp_url": ..., "key_prefix": ...,
                         "jobs_directory": daemon staging}'
Prints one JSON line: {"destinations": {id: {"runner", "params", "status", "returncode"}}}.
"""
import json
import sys
import time
import uuid

from galaxy.app_unittest_utils.galaxy_mock import MockApp, MockAppConfig
from galaxy.job_metrics import JobMetrics
from galaxy.jobs import JobConfiguration
from pulsar.client.manager import build_client_manager

request = json.loads(sys.argv[1])
config = MockAppConfig(job_config_file=request["job_conf"], default_job_resubmission_condition=None,
                       job_resource_params_file="/nonexistent", track_jobs_in_database=True, use_tasked_jobs=False)
app = MockApp(config=config)
app.job_metrics = JobMetrics()
job_config = JobConfiguration(app)
plugins = {plugin["id"]: plugin for plugin in job_config.runner_plugins}
report = {}
for destination_id, destinations in job_config.destinations.items():
    destination = destinations[0]
    plugin = plugins[destination.runner]
    if "pulsar" not in plugin["load"].lower():
        continue
    params = dict(destination.params)
    kwds = dict(plugin.get("kwds") or {})
    job_id = f"jc{uuid.uuid4().hex[:10]}"
    mq = "amqp_url" in kwds
    if mq:  # the live broker and daemon instead of the sample's placeholders
        kwds.update(amqp_url=request["amqp_url"], amqp_key_prefix=request["key_prefix"])
        params["jobs_directory"] = request["jobs_directory"]
        manager = build_client_manager(**{k: v for k, v in kwds.items() if k != "galaxy_url"})
    else:
        params.update(url=request["url"], private_token=request["token"])
        manager = build_client_manager()
    client = manager.get_client(params, job_id)  # what Galaxy's Pulsar runner does with a destination
    setup = client.setup(tool_id="job_conf_sample", tool_version="1.0")
    client.launch(f"echo ran > {setup['outputs_directory']}/out", job_config=setup)
    status = None
    if not mq:
        deadline = time.time() + 60
        while time.time() < deadline:
            status = client.full_status()
            if status["status"] in ("complete", "failed", "cancelled", "lost"):
                break
            time.sleep(0.2)
        if request.get("clean", True):
            client.clean()
    report[destination_id] = {"runner": plugin["load"], "params": {k: v for k, v in params.items()
                                                                   if k.startswith("submit_")},
                              "job_id": job_id, "status": status and status["status"],
                              "returncode": status and status.get("returncode")}
    if mq:
        manager.shutdown()
print(json.dumps({"destinations": report}))
