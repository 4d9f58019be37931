"""A kill the daemon handles before the job's setup, with the real pulsar-galaxy-lib 0.16.0 client and RabbitMQ.

Queues are not ordered against each other: a setup requeued after a failed try, or redelivered after the
daemon died before acknowledging it, comes after a kill Galaxy sent meanwhile. The test makes that order
certain by waiting until the daemon has handled the kill before the client publishes the setup.
"""
import json
import subprocess
import time

import pytest

from tests.amqp import RABBIT_URL, delete_queues, ensure_client_kombu, prefixed_names, rabbit_available, unique, \
    wait_for_queues
from tests.conftest import need

pytestmark = pytest.mark.integration

#: kill, then (once the file ``go`` exists) setup and launch, as Galaxy's MQ runner calls the client;
#: prints the status updates the client received for the job
KILL_FIRST_DRIVER = r'''
import json, os, sys, time
from pulsar.client.manager import build_client_manager

config = json.loads(sys.argv[1])
manager = build_client_manager(amqp_url=config["url"], amqp_key_prefix=config["prefix"])
updates = []
manager.ensure_has_status_update_callback(updates.append)
client = manager.get_client({"jobs_directory": config["jobs_directory"]}, config["job_id"])
client.kill()
print("KILL SENT", flush=True)
deadline = time.time() + 60
while not os.path.exists(config["go"]) and time.time() < deadline:
    time.sleep(0.05)
client.launch(config["command"], job_config=client.setup("kill_first", "1.0"))
while time.time() < deadline and not any(u.get("complete") == "true" for u in updates):
    time.sleep(0.05)
time.sleep(0.5)  # anything published after the final update would show up too
manager.shutdown()
print(json.dumps([u for u in updates if u.get("job_id") == config["job_id"]]), flush=True)
'''


def test_a_job_killed_before_its_setup_is_handled_never_runs(client_python_016, daemon_factory, tmp_path):
    need(rabbit_available(), f"RabbitMQ is not reachable at {RABBIT_URL}")
    need(ensure_client_kombu(client_python_016), "cannot install kombu into the client virtualenv")
    prefix = unique("plk")
    job_id = unique("killed")
    ran = tmp_path / "ran"
    daemon = daemon_factory({"message_queue_url": RABBIT_URL, "amqp_key_prefix": prefix})
    driver = None
    try:
        daemon.start()
        wait_for_queues([f"{prefix}_setup", f"{prefix}_kill", f"{prefix}_status_update"])
        config = {"url": RABBIT_URL, "prefix": prefix, "job_id": job_id, "jobs_directory": str(daemon.staging),
                  "go": str(tmp_path / "go"), "command": f"touch {ran}; echo ran > ../metadata/tool_stdout"}
        driver = subprocess.Popen([str(client_python_016), "-c", KILL_FIRST_DRIVER, json.dumps(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while f"job {job_id} [_default_]: kill for an unknown job" not in daemon.log():
            assert time.time() < deadline and driver.poll() is None, daemon.log()[-3000:]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        out, err = driver.communicate(timeout=90)
        assert driver.returncode == 0, f"{err[-4000:]}\n--- server log\n{daemon.log()[-4000:]}"
        updates = json.loads(out.strip().splitlines()[-1])
        assert [(u["status"], u["complete"]) for u in updates] == [("cancelled", "true")], daemon.log()[-4000:]
        assert not ran.exists()
        assert daemon.record(job_id)["state"] == "cancelled"
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.communicate()
        daemon.stop()
        delete_queues(prefixed_names(prefix))
