"""Build the real Pulsar client virtualenvs, Galaxy's and cwl-tes's, that the tests drive (``python -m tests.clients``)."""
import subprocess
import sys

from tests.conftest import CLIENT_VERSIONS, ensure_client_venv, ensure_galaxy_venv
from tests.cwltes import ensure_cwl_tes_venv

if __name__ == "__main__":
    for version in CLIENT_VERSIONS:
        print(f"pulsar-galaxy-lib {version}: {ensure_client_venv(version)}", flush=True)
    print(f"galaxy-app (job_conf samples): {ensure_galaxy_venv()}", flush=True)
    try:
        print(f"cwl-tes (TES client test): {ensure_cwl_tes_venv()}", flush=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        # a 2019 release with old pins: its test says why it cannot run (and fails in CI), the rest goes on
        detail = getattr(exc, "stderr", "") or ""
        print(f"cwl-tes could not be installed: {exc}\n{detail[-2000:]}", file=sys.stderr, flush=True)
    sys.exit(0)
