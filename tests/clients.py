"""Build the real Pulsar client virtualenvs the tests drive (``python -m tests.clients``)."""
import sys

from tests.conftest import CLIENT_VERSIONS, ensure_client_venv

if __name__ == "__main__":
    for version in CLIENT_VERSIONS:
        print(f"pulsar-galaxy-lib {version}: {ensure_client_venv(version)}", flush=True)
    sys.exit(0)
