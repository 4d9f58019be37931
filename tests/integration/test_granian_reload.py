"""Found by review 4 (fixed): SIGHUP (the unit's ExecReload, `systemctl reload`) on a daemon served by granian. granian answers
SIGHUP by starting a new worker beside the old one: the new worker's store cannot claim the job state the old
one holds (StateInUse), and the engine restarts. Run under flock /tmp/pl-heavy.lock (a real daemon)."""
import os
import signal
import time
import urllib.request


def test_sighup_under_granian_keeps_the_one_worker_serving(daemon_factory):
    daemon = daemon_factory({"web_server": "granian",
                             "managers": {"_default_": {"type": "queued_python", "num_concurrent_jobs": 1}}}).start()
    os.kill(daemon.process.pid, signal.SIGHUP)
    time.sleep(8)
    log = daemon.log_path.read_text()

    with urllib.request.urlopen(daemon.url + "healthz", timeout=5) as response:
        assert response.status == 200
    assert "is in use by another pulsar_lite daemon" not in log, log[-3000:]
    assert log.count("serving (granian)") == 1, log[-3000:]
