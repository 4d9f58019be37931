"""Pull staging with the real clients: the server pulls inputs from a Galaxy job-files API and pushes outputs back."""
import pytest

from ..conftest import run_check_api
from .jobfiles import job_files_server

pytestmark = pytest.mark.integration


def test_pulsar_check_remote_transfer(client_python, daemon_factory, tmp_path):
    daemon = daemon_factory({"managers": {"_default_": {"num_concurrent_jobs": 2}}}).start()
    client_tmp = tmp_path / "client"
    client_tmp.mkdir()
    with job_files_server(str(client_tmp)) as base:
        endpoint = f"{base}/api/jobs/123456/files?job_key=secret-key"
        result = run_check_api(client_python, url=daemon.url, default_file_action="remote_transfer",
                               files_endpoint=endpoint, env={"TMPDIR": str(client_tmp)})
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:], daemon.log()[-4000:])
    log = daemon.log()
    assert "staged in" in log and "staged out" in log
    assert "secret-key" not in log
