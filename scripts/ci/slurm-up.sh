#!/usr/bin/env bash
# slurm-up.sh — bring up a REAL one-node Slurm 22.05 (Debian bookworm packages)
# on this machine, as root, without systemd. Idempotent: if the cluster already
# answers with an idle/mixed/allocated node, it exits 0 without changes.
#
#   bash slurm-up.sh                      # slurmctld + slurmd + munge (no sacct)
#   SLURM_ACCOUNTING=1 bash slurm-up.sh   # + mariadb + slurmdbd, so sacct works
#
# (pulsar_lite's copy: the node also declares RealMemory, SLURM_NODE_MEMORY MB, default all of it)
# Node: NodeName=$(hostname -s) NodeAddr=127.0.0.1, partition "debug" (default),
# CPUs=$SLURM_NODE_CPUS (default: nproc, but at least 24, with SlurmdParameters=config_overrides
# so slurmd accepts more CPUs than the machine has: tests can run 20 `sleep` jobs at once on a
# 2-core machine). Finished jobs stay visible to `scontrol show job` / `squeue -t all`
# for MinJobAge seconds (SLURM_MIN_JOB_AGE, default 3600) and are always appended
# to /var/log/slurm/jobcomp.log (jobcomp/filetxt: JobState=... ExitCode=...).
# Exits non-zero with a message on stderr if anything fails.
set -euo pipefail

ACCT=${SLURM_ACCOUNTING:-0}
MIN_JOB_AGE=${SLURM_MIN_JOB_AGE:-3600}
H=$(hostname -s)
NCPU=${SLURM_NODE_CPUS:-$(( $(nproc) > 24 ? $(nproc) : 24 ))}
# memory the node offers (MB), so that jobs may ask for some (--mem); pulsar_lite's tests do
MEM=${SLURM_NODE_MEMORY:-$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))}
LOG=/var/log/slurm

die() { echo "slurm-up: ERROR: $*" >&2; for f in $LOG/slurmctld.log $LOG/slurmd.log $LOG/slurmdbd.log; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }
t0=$(date +%s)
[ "$(id -u)" = 0 ] || die "must run as root"

alive() { # pidfile -> 0 if a live (non-zombie) process
  local p; [ -s "$1" ] || return 1; p=$(cat "$1"); [ -d "/proc/$p" ] || return 1
  ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null
}
node_ok() { local st; st=$(timeout 10 sinfo -h -n "$H" -o %T 2>/dev/null | head -n1) || return 1
  case "$st" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac; }

# ---- already up? ---------------------------------------------------------------
if command -v sinfo >/dev/null 2>&1 && alive /run/slurmctld.pid && alive /run/slurmd.pid && node_ok \
   && grep -q "RealMemory=${MEM} " /etc/slurm/slurm.conf 2>/dev/null && grep -q "^MaxJobCount=50000" /etc/slurm/slurm.conf; then
  if [ "$ACCT" != 1 ] || timeout 10 sacct -n -X -S now-1minutes >/dev/null 2>&1; then
    echo "slurm-up: already running (node $H $(sinfo -h -o %T), CPUs $(sinfo -h -o %c | head -n1))"; exit 0
  fi
fi

# ---- install -------------------------------------------------------------------
pkgs="slurm-wlm slurmctld slurmd slurm-client munge"
[ "$ACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
missing=""
for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  # postinst scripts try to start services via invoke-rc.d; without systemd this is
  # harmless (policy-rc.d denies it or it fails softly); we start daemons ourselves.
  apt-get -o DPkg::Lock::Timeout=600 -qq update >/dev/null || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 -y -qq install --no-install-recommends $missing >/tmp/slurm-apt.log 2>&1 \
    || { tail -n 20 /tmp/slurm-apt.log >&2; die "apt-get install$missing failed"; }
fi

install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd $LOG

# ---- munge ---------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
  else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! alive /run/munge/munged.pid; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged || die "munged failed to start (see /var/log/munge/munged.log)"
fi
for i in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null 2>&1 || die "munge round-trip failed"

# ---- optional accounting: mariadb + slurmdbd -----------------------------------
if [ "$ACCT" = 1 ]; then
  install -d -o mysql -g mysql /run/mysqld
  if ! mariadb-admin ping >/dev/null 2>&1; then
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/mysql-slurm.log 2>&1 < /dev/null &
    touch /run/mysqld/.started-by-slurm-up   # so slurm-down.sh stops only a mariadbd we started
    for i in $(seq 120); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
    mariadb-admin ping >/dev/null 2>&1 || { tail -n 20 /var/log/mysql-slurm.log >&2; die "mariadbd did not come up"; }
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" || die "mariadb grant failed"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  if ! alive /run/slurmdbd.pid; then /usr/sbin/slurmdbd || die "slurmdbd failed to start"; fi
  for i in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.5; done
  (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null || die "slurmdbd not listening on 6819"
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# ---- slurm.conf ------------------------------------------------------------------
cat > /etc/slurm/slurm.conf <<EOF
# Minimal one-node Slurm for CI, written by slurm-up.sh
ClusterName=ci
SlurmctldHost=${H}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# no cgroups needed
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# trust the CPU count below, not the hardware (more slots than cores, for sleep-only test jobs)
SlurmdParameters=config_overrides
$ACCT_LINES
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
# room for benchmarks/scheduler_scale.py's 10,000 waiting jobs beside an hour of ended ones (default 10000)
MaxJobCount=50000
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=${H} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${H} Default=YES MaxTime=INFINITE State=UP
EOF

# ---- slurmctld + slurmd ------------------------------------------------------------
# (re)start so the config above is the one in force
for pf in /run/slurmd.pid /run/slurmctld.pid; do
  if alive $pf; then p=$(cat $pf); kill "$p"; for i in $(seq 50); do [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status 2>/dev/null || break; sleep 0.2; done; fi
done
/usr/sbin/slurmctld || die "slurmctld failed to start"
/usr/sbin/slurmd || die "slurmd failed to start"
for i in $(seq 120); do node_ok && break; sleep 0.5; done
node_ok || { sinfo -N -l >&2 || true; die "node $H did not become idle"; }
if [ "$ACCT" = 1 ]; then
  for i in $(seq 60); do sacctmgr -n list cluster format=cluster 2>/dev/null | grep -qw ci && break; sleep 0.5; done
  sacctmgr -n list cluster format=cluster 2>/dev/null | grep -qw ci || die "cluster 'ci' not registered in slurmdbd"
fi
echo "slurm-up: ready in $(( $(date +%s) - t0 ))s: node $H $(sinfo -h -o %T), CPUs $(sinfo -h -o %c | head -n1), accounting=$ACCT"
