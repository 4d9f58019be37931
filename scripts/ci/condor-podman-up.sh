#!/usr/bin/env bash
# condor-podman-up.sh - lets the HTCondor test pool's jobs run OCI containers, so TES tasks can be tested on
# HTCondor end to end. Run after condor-up.sh and podman-up.sh (root, Debian 12).
#
# The pool runs in a Debian trixie chroot (condor-up.sh) as the unprivileged user ciuser, and the chroot has no
# container engine of its own. This script installs the podman-remote client in the chroot and serves this
# host's rootful podman on a socket inside it:
#   host path   $CONDOR_CHROOT/run/podman-ci/podman.sock
#   chroot path /run/podman-ci/podman.sock   (CONTAINER_HOST=unix:///run/podman-ci/podman.sock, podman-remote)
# Containers then run on this host's podman with this host's images; a bind mount names a host path, which is
# the same path inside the chroot for the directories the tests share with the pool.
#
# TEST RIG ONLY: the socket is root's podman, and the pool's job owner may use it; that makes every pool job
# root on this host. A real site runs podman (or apptainer) on its execute nodes instead.
#
# Idempotent: a socket that answers is left alone. Exit codes: 2 prerequisites, 3 package, 4 service.
set -euo pipefail

R="${CONDOR_CHROOT:-/srv/trixie}"
JOB_UID="${CONDOR_UID:-2001}"
INNER=/run/podman-ci/podman.sock           # the socket's path inside the chroot
DIR="$R${INNER%/*}"
SOCK="$R$INNER"
SERVICE="podman system service --time=0 unix://$SOCK"
IMAGE="${PL_IMAGE:-localhost/pl-test:latest}"

log() { echo "condor-podman-up: $*"; }
die() { local rc=$1; shift; echo "condor-podman-up: ERROR: $*" >&2; exit "$rc"; }

[ "$(id -u)" = 0 ] || die 2 "must run as root"
[ -x "$R/usr/bin/apt-get" ] || die 2 "no HTCondor chroot at $R (bash scripts/ci/condor-up.sh first)"
command -v podman >/dev/null || die 2 "podman is not installed (bash scripts/ci/podman-up.sh first)"

if [ ! -x "$R/usr/bin/podman-remote" ]; then
  chroot "$R" apt-get -qq update >/dev/null || die 3 "apt-get update in the chroot failed"
  DEBIAN_FRONTEND=noninteractive chroot "$R" apt-get -y -qq install --no-install-recommends podman-remote \
    >/tmp/condor-podman-apt.log 2>&1 || { tail -n 20 /tmp/condor-podman-apt.log >&2; die 3 "podman-remote install failed"; }
  chroot "$R" apt-get clean; rm -rf "$R"/var/lib/apt/lists/*
  log "installed podman-remote in $R"
fi

# podman-remote as a pool job runs it: the job owner, inside the chroot
remote() { chroot --userspec="$JOB_UID" "$R" env -i HOME=/tmp podman-remote --url "unix://$INNER" "$@"; }
answers() { remote version >/dev/null 2>&1; }

# A service started from a directory deleted since (a CI clone removed) answers, but every conmon it starts
# fails ("Failed to get working directory": containers cannot be created); restart it from /.
service=$(pgrep -f "$SERVICE" | head -n 1 || true)
if [ -n "$service" ] && [ "$(readlink "/proc/$service/cwd")" != / ]; then
  log "restarting the podman service (its working directory is $(readlink "/proc/$service/cwd"))"
  kill "$service" 2>/dev/null || true
  sleep 1
fi

if ! answers; then
  mkdir -p "$DIR"
  pkill -f "$SERVICE" 2>/dev/null || true
  rm -f "$SOCK"
  cd /
  setsid nohup $SERVICE >/var/log/condor-podman-service.log 2>&1 </dev/null &
  for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.2; done
  [ -S "$SOCK" ] || die 4 "podman system service did not create $SOCK (see /var/log/condor-podman-service.log)"
  chown "$JOB_UID" "$SOCK"
  chmod 0755 "$DIR"
  answers || die 4 "the pool's job owner cannot use $SOCK"
fi
if podman image exists "$IMAGE"; then  # a container through the socket, as a pool job runs one
  remote run --rm --network=none "$IMAGE" true >/tmp/condor-podman-smoke.log 2>&1 \
    || { cat /tmp/condor-podman-smoke.log >&2; die 4 "the pool's job owner cannot run a container through $SOCK"; }
fi
log "ready: pool jobs reach this host's podman with CONTAINER_HOST=unix://$INNER podman-remote"
