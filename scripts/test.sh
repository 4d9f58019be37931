#!/usr/bin/env bash
# Install pulsar_lite with its test dependencies into .venv, build the real Pulsar
# client virtualenvs (pulsar-galaxy-lib 0.15.16 and 0.16.0) under .cache/clients,
# and run the whole test suite. Arguments go to pytest.
EXTRAS=test
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
export PATH="$VENV/bin:$PATH"
"$VENV/bin/python" -m tests.clients
exec "$VENV/bin/python" -m pytest -ra "$@"
