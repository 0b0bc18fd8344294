#!/usr/bin/env bash
# A real SLURM cluster on this one machine, for tests/test_slurm.py (Debian 12, as root, no
# systemd): one node, all traffic on 127.0.0.1, one fake GPU (a gres backed by /dev/null, so a job
# that asks for it gets CUDA_VISIBLE_DEVICES=0), and accounting through slurmdbd + MariaDB so that
# `sacct`, the status command of snakemake-executor-plugin-slurm, works as on a production cluster.
#
#   .ci/local_slurm.sh start   install what is missing (apt), configure, start, check with srun
#   .ci/local_slurm.sh stop    cancel the jobs left, stop the daemons
#
# Both are idempotent: daemons are found through their PID files; a running cluster is left alone
# unless its configuration changed. Daemon logs: /var/log/slurm/.
set -euo pipefail

NODE=$(hostname -s)
PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server)
DB_PASSWORD=slurm  # MariaDB runs with --skip-networking: only local processes reach it
CONFIG_CHANGED=0

log() { echo "[local_slurm ${SECONDS}s] $*"; }
die() {
  log "ERROR: $*"
  tail -n 5 /var/log/slurm/*.log 2>/dev/null
  exit 1
}

running() {  # running NAME PIDFILE: the PID file names a live (not zombie) process called NAME
  local pid
  pid=$(cat "$2" 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
    [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND until it succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "no $what"
    sleep 0.2
  done
}

start_daemon() {  # start_daemon NAME PIDFILE COMMAND...: COMMAND forks into the background
  running "$1" "$2" && return
  rm -f "$2"
  "${@:3}"
  log "started $1"
}

stop_daemon() {  # stop_daemon NAME PIDFILE
  if running "$1" "$2"; then
    log "stopping $1"
    local pid
    pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 150); do running "$1" "$2" || break; sleep 0.2; done
    if running "$1" "$2"; then kill -9 "$pid"; fi
  fi
  rm -f "$2"
}

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  # Keeps the packages' scripts from starting daemons: there is no init system; start() does it.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm /usr/sbin/policy-rc.d
}

update() {  # update PATH MODE OWNER < CONTENT
  local new
  new=$(mktemp)
  cat >"$new"
  if cmp -s "$new" "$1"; then
    rm "$new"
  else
    install -D -m "$2" -o "$3" "$new" "$1" && rm "$new"
    CONFIG_CHANGED=1
    log "wrote $1"
  fi
}

configure() {
  install -d -o munge -g munge /run/munge
  install -d -o mysql -g mysql /run/mysqld
  install -d -o slurm -g slurm /run/slurm /var/log/slurm /var/lib/slurm/slurm{ctld,d}
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key

  # The node as `slurmd -C` sees it, offering 90% of the memory to jobs. `slurmd -C` reads no
  # configuration; every other SLURM command needs slurm.conf, or it looks in DNS for a
  # configuration server ("configless" mode).
  local node memory
  node=$(slurmd -C | head -1)
  memory=${node##*RealMemory=}
  memory=${memory%% *}
  node=${node/RealMemory=$memory/RealMemory=$((memory * 9 / 10))}

  update /etc/slurm/slurm.conf 0644 root <<EOF
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=slurm
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
MailProg=/bin/true
# No cgroups in a container: processes are tracked through /proc, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Memory limits without cgroups: each job's processes are sampled every second, and a job over
# its --mem is killed (state FAILED; with cgroups, as on a production cluster, OUT_OF_MEMORY).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Starts each batch job at once instead of gathering them for up to 3 s.
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
GresTypes=gpu
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # A gres GPU needs a character device; /dev/null stands in for one.
  update /etc/slurm/gres.conf 0644 root <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
EOF
  update /etc/slurm/slurmdbd.conf 0600 slurm <<EOF
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
}

start_database() {
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  if ! running mariadbd /run/mysqld/mysqld.pid; then
    setsid mariadbd --user=mysql --skip-networking --pid-file=/run/mysqld/mysqld.pid \
      >>/var/log/slurm/mariadb.log 2>&1 </dev/null &
    log "started mariadbd"
  fi
  wait_for 60 MariaDB mariadb-admin ping
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS slurm@localhost IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO slurm@localhost;"
}

node_ready() { sinfo -h -n "$NODE" -o %T | grep -Eqx 'idle|mixed|allocated'; }

start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  install_packages
  configure
  if [ "$CONFIG_CHANGED" = 1 ]; then
    stop_daemon slurmd /run/slurm/slurmd.pid
    stop_daemon slurmctld /run/slurm/slurmctld.pid
    stop_daemon slurmdbd /run/slurm/slurmdbd.pid
  fi
  start_daemon munged /run/munge/munged.pid runuser -u munge -- munged
  wait_for 20 munge bash -c 'munge -n | unmunge'
  start_database
  start_daemon slurmdbd /run/slurm/slurmdbd.pid slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  start_daemon slurmctld /run/slurm/slurmctld.pid slurmctld
  wait_for 60 slurmctld scontrol ping
  start_daemon slurmd /run/slurm/slurmd.pid slurmd -N "$NODE"
  wait_for 60 "idle node $NODE" node_ready
  [ "$(timeout 30 srun --gpus=1 printenv CUDA_VISIBLE_DEVICES)" = 0 ] ||
    die "srun --gpus=1 did not get the fake GPU"
  log "cluster ready: $(sinfo -h -o '%P %D nodes, %c CPUs, %m MB, %G')"
}

stop() {
  if running slurmctld /run/slurm/slurmctld.pid && [ -n "$(squeue -h -o %A)" ]; then
    log "cancelling jobs"
    scancel --partition=debug || true
  fi
  stop_daemon slurmd /run/slurm/slurmd.pid
  stop_daemon slurmctld /run/slurm/slurmctld.pid
  stop_daemon slurmdbd /run/slurm/slurmdbd.pid
  stop_daemon mariadbd /run/mysqld/mysqld.pid
  stop_daemon munged /run/munge/munged.pid
}

case "${1:-}" in
  start | stop) "$1" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
