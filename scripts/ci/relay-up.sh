#!/usr/bin/env bash
# relay-up.sh — a real pulsar-relay (PyPI) on Redis, for the relay face's tests. Idempotent.
#
#   Redis        127.0.0.1:${RELAY_REDIS_PORT:-6391}, password-protected, append-only file (a restart of
#                Redis or of the relay loses no message), data in $STATE/redis
#   pulsar-relay http://127.0.0.1:${RELAY_PORT:-9731} (uvicorn, one worker), storage_backend=valkey,
#                installed from PyPI into $RELAY_VENV (default .cache/relay); admin user
#                ${RELAY_ADMIN:-admin} / ${RELAY_ADMIN_PASSWORD:-pulsar-lite-ci-admin}
#
# RELAY_RATE_LIMIT=off (default) starts it with slowapi's limiter off (RATELIMIT_ENABLED=false): on one
# machine every party (the daemon, every client, the tests) shares one address, and the relay allows one
# address 5 logins and 120 publishes a minute. RELAY_RATE_LIMIT=on keeps the relay's own limits.
#
# The tests find it through PULSAR_LITE_TEST_RELAY_URL (default the URL above) and the admin login above.
# relay-up.sh stop: stop both.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
RELAY_VERSION=${RELAY_VERSION:-0.2.1}
PORT=${RELAY_PORT:-9731}
REDIS_PORT=${RELAY_REDIS_PORT:-6391}
REDIS_PASSWORD=${RELAY_REDIS_PASSWORD:-pulsar-lite-ci-redis}
ADMIN=${RELAY_ADMIN:-admin}
ADMIN_PASSWORD=${RELAY_ADMIN_PASSWORD:-pulsar-lite-ci-admin}
RATE_LIMIT=${RELAY_RATE_LIMIT:-off}
VENV=${RELAY_VENV:-$ROOT/.cache/relay}
STATE=${RELAY_STATE:-$VENV/state}
PYTHON=${PYTHON:-python3}
die() { echo "relay-up: ERROR: $*" >&2; [ -f "$STATE/relay.log" ] && tail -n 20 "$STATE/relay.log" >&2; exit 1; }
listening() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_pid() {  # the process whose pid is in file $1, if it is still the one we started
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; fi
  rm -f "$1"
}
if [ "${1:-}" = stop ]; then
  stop_pid "$STATE/relay.pid"; stop_pid "$STATE/redis.pid"; exit 0
fi

mkdir -p "$STATE/redis"
# -- Redis (Debian's redis-server) --------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "redis-server is not installed (apt-get install redis-server)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 -y -qq install --no-install-recommends redis-server >/tmp/relay-apt.log 2>&1 \
    || { tail -n 20 /tmp/relay-apt.log >&2; die "apt-get install redis-server failed"; }
fi
if ! listening "$REDIS_PORT"; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --requirepass "$REDIS_PASSWORD" --dir "$STATE/redis" \
    --appendonly yes --appendfsync everysec --save "" --daemonize yes --pidfile "$STATE/redis.pid" \
    --logfile "$STATE/redis.log" || die "redis-server did not start"
  for _ in $(seq 100); do listening "$REDIS_PORT" && break; sleep 0.1; done
  listening "$REDIS_PORT" || die "redis-server does not listen on $REDIS_PORT"
fi

# -- pulsar-relay from PyPI, in its own virtualenv --------------------------------------------------
MARKER="$VENV/.relay-$RELAY_VERSION"
if [ ! -f "$MARKER" ]; then
  "$PYTHON" -m venv "$VENV" || die "cannot create $VENV (apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pulsar-relay==$RELAY_VERSION" \
    || die "pip install pulsar-relay==$RELAY_VERSION failed"
  touch "$MARKER"
fi

# -- the relay ----------------------------------------------------------------------------------------
if listening "$PORT"; then
  echo "relay-up: pulsar-relay already listens on 127.0.0.1:$PORT"
  exit 0
fi
cd "$STATE"   # it reads ./config.toml or ./config.yaml if present: none here, only the environment below
env PULSAR_STORAGE_BACKEND=valkey PULSAR_VALKEY_HOST=127.0.0.1 PULSAR_VALKEY_PORT="$REDIS_PORT" \
    PULSAR_VALKEY_PASSWORD="$REDIS_PASSWORD" PULSAR_JWT_SECRET_KEY="pulsar-lite-ci-jwt-secret-0123456789abcdef" \
    PULSAR_BOOTSTRAP_ADMIN_USERNAME="$ADMIN" PULSAR_BOOTSTRAP_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    PULSAR_ALLOWED_ORIGINS="[\"http://127.0.0.1:$PORT\"]" PULSAR_TRUSTED_HOSTS='["127.0.0.1","localhost"]' \
    RATELIMIT_ENABLED=$([ "$RATE_LIMIT" = off ] && echo false || echo true) \
    setsid "$VENV/bin/uvicorn" pulsar_relay.main:app --host 127.0.0.1 --port "$PORT" --log-level warning \
    >>"$STATE/relay.log" 2>&1 < /dev/null &
echo $! > "$STATE/relay.pid"
for _ in $(seq 300); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$(cat "$STATE/relay.pid")" 2>/dev/null || die "pulsar-relay exited"
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 || die "pulsar-relay does not answer on $PORT"
echo "relay-up: pulsar-relay $RELAY_VERSION on http://127.0.0.1:$PORT (Redis 127.0.0.1:$REDIS_PORT, rate limit $RATE_LIMIT)"
