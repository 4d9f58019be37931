#!/usr/bin/env bash
# sshd-up.sh — an OpenSSH server on 127.0.0.1:${SSHD_PORT:-2222} for queued_cli's SecureShell tests.
# Idempotent; root only; no systemd needed.
#
# It makes a dedicated login, pulsar-ssh, with a generated ed25519 key (private key in
# /etc/pulsar-lite-ci/id_ed25519, readable by root only) and a known_hosts file holding this server's
# host key (/etc/pulsar-lite-ci/known_hosts), so the tests run with strict host key checking.
#
# The login shares the uid of the daemon under test (root, here): in production the daemon and the
# jobs it submits over ssh run as one service account, whose files (job scripts, pushed inputs, mode
# 0600) the jobs must read and write. A login of its own name and key, on the daemon's uid, is that
# same arrangement on one machine.
set -euo pipefail
PORT=${SSHD_PORT:-2222}
USER_NAME=pulsar-ssh
DIR=/etc/pulsar-lite-ci
die() { echo "sshd-up: ERROR: $*" >&2; [ -f /var/log/pulsar-lite-sshd.log ] && tail -n 20 /var/log/pulsar-lite-sshd.log >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

if ! command -v /usr/sbin/sshd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 -y -qq install --no-install-recommends openssh-server >/tmp/sshd-apt.log 2>&1 \
    || { tail -n 20 /tmp/sshd-apt.log >&2; die "apt-get install openssh-server failed"; }
fi
# rsync/scp staging's tests need rsync (and ss, from iproute2, to cut a connection)
if ! command -v rsync >/dev/null 2>&1 || ! command -v ss >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 -y -qq install --no-install-recommends rsync iproute2 >/tmp/sshd-apt.log 2>&1 \
    || { tail -n 20 /tmp/sshd-apt.log >&2; die "apt-get install rsync iproute2 failed"; }
fi
ssh-keygen -A >/dev/null
install -d -m 0755 /run/sshd
install -d -m 0700 "$DIR"

if ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --non-unique --uid 0 --gid 0 --no-create-home --home-dir /var/lib/$USER_NAME --shell /bin/bash "$USER_NAME" \
    || die "cannot create the $USER_NAME login"
fi
usermod -p '*' "$USER_NAME"   # no password, but not a locked account (sshd refuses those)
install -d -m 0700 /var/lib/$USER_NAME /var/lib/$USER_NAME/.ssh
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "pulsar-lite-ci" -f "$DIR/id_ed25519"
install -m 0600 "$DIR/id_ed25519.pub" /var/lib/$USER_NAME/.ssh/authorized_keys

cat > "$DIR/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/pulsar-lite-sshd.pid
AuthorizedKeysFile /var/lib/$USER_NAME/.ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $USER_NAME
UsePAM no
StrictModes no
MaxSessions 50
MaxStartups 50:30:100
LogLevel INFO
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$DIR/sshd_config" || die "sshd_config is invalid"

alive() { [ -s /run/pulsar-lite-sshd.pid ] && [ -d "/proc/$(cat /run/pulsar-lite-sshd.pid)" ]; }
if alive; then kill -HUP "$(cat /run/pulsar-lite-sshd.pid)"; sleep 0.3
else /usr/sbin/sshd -f "$DIR/sshd_config" -E /var/log/pulsar-lite-sshd.log || die "sshd did not start"; fi
for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

echo "[127.0.0.1]:$PORT $(cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2)" > "$DIR/known_hosts"
ssh -o BatchMode=yes -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes -i "$DIR/id_ed25519" \
    -p "$PORT" -l "$USER_NAME" 127.0.0.1 true || die "key login as $USER_NAME failed"
echo "sshd-up: ready on 127.0.0.1:$PORT (login $USER_NAME, key $DIR/id_ed25519, known_hosts $DIR/known_hosts)"
