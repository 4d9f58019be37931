#!/usr/bin/env bash
# ftp-up.sh — vsftpd on 127.0.0.1 for the TES FTP/FTPS staging tests. Idempotent; root only; no systemd needed.
#
#   127.0.0.1:${FTP_PORT:-2121}   FTP, explicit TLS (AUTH TLS) offered, not required
#   127.0.0.1:${FTPS_PORT:-2990}  implicit FTPS (TLS from the first byte: ftps:// URLs)
#
# Both serve one login, pulsar-ftp (a generated password, no shell), chrooted to its writable home
# /srv/pulsar-lite-ftp. The TLS certificate is self-signed for 127.0.0.1 (it is its own CA).
# What the tests need is written to /etc/pulsar-lite-ci/ftp.env (root only):
#   FTP_USER FTP_PASSWORD FTP_ROOT FTP_PORT FTPS_PORT FTP_CA
# vsftpd reads the login with a PAM service of its own (pam_unix only: the login has no shell, which
# Debian's /etc/pam.d/vsftpd would refuse with pam_shells).
set -euo pipefail
FTP_PORT=${FTP_PORT:-2121}
FTPS_PORT=${FTPS_PORT:-2990}
USER_NAME=pulsar-ftp
HOME_DIR=/srv/pulsar-lite-ftp
DIR=/etc/pulsar-lite-ci
die() { echo "ftp-up: ERROR: $*" >&2; for f in /var/log/pulsar-lite-vsftpd*.log; do [ -f "$f" ] && tail -n 20 "$f" >&2; done; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ ! -x /usr/sbin/vsftpd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null || die "apt-get update failed"
  # (the package's own service is not started: there is no systemd, and policy-rc.d may forbid it anyway)
  apt-get -o DPkg::Lock::Timeout=600 -y -qq install --no-install-recommends vsftpd openssl >/tmp/ftp-apt.log 2>&1 \
    || { tail -n 20 /tmp/ftp-apt.log >&2; die "apt-get install vsftpd failed"; }
fi
command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
install -d -m 0700 "$DIR"
install -d -m 0755 /var/run/vsftpd/empty

if ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --system --home-dir "$HOME_DIR" --no-create-home --shell /usr/sbin/nologin "$USER_NAME" \
    || die "cannot create the $USER_NAME login"
fi
install -d -m 0755 -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR"
if [ ! -s "$DIR/ftp.env" ]; then
  password=$(openssl rand -hex 16)
  umask 077
  printf 'FTP_USER=%s\nFTP_PASSWORD=%s\nFTP_ROOT=%s\nFTP_PORT=%s\nFTPS_PORT=%s\nFTP_CA=%s\n' \
    "$USER_NAME" "$password" "$HOME_DIR" "$FTP_PORT" "$FTPS_PORT" "$DIR/ftp-cert.pem" > "$DIR/ftp.env"
fi
password=$(sed -n 's/^FTP_PASSWORD=//p' "$DIR/ftp.env")
echo "$USER_NAME:$password" | chpasswd || die "cannot set the password of $USER_NAME"

if [ ! -s "$DIR/ftp-cert.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$DIR/ftp-key.pem" -out "$DIR/ftp-cert.pem" 2>/dev/null || die "cannot make the TLS certificate"
  chmod 0600 "$DIR/ftp-key.pem"; chmod 0644 "$DIR/ftp-cert.pem"
fi

cat > /etc/pam.d/pulsar-lite-ftp <<EOF
auth     required pam_unix.so
account  required pam_unix.so
session  required pam_permit.so
EOF

config() {  # $1 port, $2 implicit_ssl YES|NO, $3 pasv_min, $4 pasv_max
  cat <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$1
background=YES
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
userlist_enable=YES
userlist_deny=NO
userlist_file=$DIR/ftp-users
pam_service_name=pulsar-lite-ftp
chroot_local_user=YES
allow_writeable_chroot=YES
secure_chroot_dir=/var/run/vsftpd/empty
connect_from_port_20=NO
pasv_enable=YES
pasv_min_port=$3
pasv_max_port=$4
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
max_clients=100
max_per_ip=100
xferlog_enable=YES
vsftpd_log_file=/var/log/pulsar-lite-vsftpd-$1.log
ssl_enable=YES
implicit_ssl=$2
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=YES
ssl_ciphers=HIGH
rsa_cert_file=$DIR/ftp-cert.pem
rsa_private_key_file=$DIR/ftp-key.pem
EOF
}
echo "$USER_NAME" > "$DIR/ftp-users"
config "$FTP_PORT" NO 30000 30049 > "$DIR/vsftpd.conf"
config "$FTPS_PORT" YES 30050 30099 > "$DIR/vsftpd-implicit.conf"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for pair in "$FTP_PORT:$DIR/vsftpd.conf" "$FTPS_PORT:$DIR/vsftpd-implicit.conf"; do
  port=${pair%%:*}; conf=${pair#*:}
  # a running server keeps the configuration it started with: both files are the same at every run
  up "$port" && continue
  /usr/sbin/vsftpd "$conf" || die "vsftpd ($conf) did not start"
  for i in $(seq 50); do up "$port" && break; sleep 0.1; done
  up "$port" || die "vsftpd does not answer on 127.0.0.1:$port"
done

# a login, a listing and TLS on both, with curl when it is there
if command -v curl >/dev/null; then
  curl -sS --fail -u "$USER_NAME:$password" "ftp://127.0.0.1:$FTP_PORT/" -o /dev/null || die "FTP login failed"
  curl -sS --fail --ssl-reqd --cacert "$DIR/ftp-cert.pem" -u "$USER_NAME:$password" "ftp://127.0.0.1:$FTP_PORT/" \
    -o /dev/null || die "explicit FTPS (AUTH TLS) failed"
  curl -sS --fail --cacert "$DIR/ftp-cert.pem" -u "$USER_NAME:$password" "ftps://127.0.0.1:$FTPS_PORT/" \
    -o /dev/null || die "implicit FTPS failed"
fi
echo "ftp-up: ready on 127.0.0.1:$FTP_PORT (FTP, AUTH TLS offered) and 127.0.0.1:$FTPS_PORT (implicit FTPS);" \
     "login $USER_NAME, root $HOME_DIR, settings in $DIR/ftp.env"
