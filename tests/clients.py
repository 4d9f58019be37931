"""Build the real Pulsar client virtualenvs and Galaxy's the tests drive (``python -m tests.clients``)."""
import sys

from tests.conftest import CLIENT_VERSIONS, ensure_client_venv, ensure_galaxy_venv

if __name__ == "__main__":
    for version in CLIENT_VERSIONS:
        print(f"pulsar-galaxy-lib {version}: {ensure_client_venv(version)}", flush=True)
    print(f"galaxy-app (job_conf samples): {ensure_galaxy_venv()}", flush=True)
    sys.exit(0)
