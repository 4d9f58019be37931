#!/usr/bin/env bash
# Install pulsar_lite into .venv (first run only) and start the daemon.
# Without arguments: built-in configuration, REST on 127.0.0.1:8913, state under ./var/.
# Any arguments go to `pulsar-lite serve` (e.g. --config app.yml --port 8914).
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
exec "$VENV/bin/pulsar-lite" serve "$@"
