# Sourced by serve.sh and test.sh: make .venv (Python >= 3.11) with pulsar_lite installed.
# EXTRAS selects optional dependency groups, e.g. EXTRAS=test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PULSAR_LITE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "pulsar_lite needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing python3-venv (Debian)" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"; "$PYTHON" -m venv "$VENV"
        else
            echo "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2; exit 1
        fi
    fi
fi
SPEC="$ROOT${EXTRAS:+[$EXTRAS]}"
STAMP="$VENV/.pulsar_lite-installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$SPEC"
    touch "$STAMP"
fi
