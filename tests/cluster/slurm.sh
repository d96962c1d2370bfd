#!/usr/bin/env bash
# A real single-node SLURM (with accounting) for the cluster test, started without systemd.
#   tests/cluster/slurm.sh install        apt-get the Debian packages (root)
#   tests/cluster/slurm.sh up DIR         start munged, mariadbd, slurmdbd, slurmctld, slurmd;
#                                         register cluster + account; write DIR/env
#   tests/cluster/slurm.sh down DIR       stop every daemon by the PID in its pid file
# DIR holds configs, state, logs and pid files. Source DIR/env to use the cluster
# (it sets SLURM_CONF). Account for jobs: omix; partition: debug.
set -euo pipefail

cmd=${1:?usage: slurm.sh install|up DIR|down DIR}

wait_for() {  # wait_for SECONDS CMD...: retry CMD until it succeeds
  local t=$1; shift
  for _ in $(seq $((t * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "slurm.sh: timed out waiting for: $*" >&2; return 1
}

case "$cmd" in
install)
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm.sh: need root and apt-get to install SLURM" >&2; exit 3
  fi
  if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null \
      || ! command -v mariadbd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm slurm-client munge slurmdbd mariadb-server >/dev/null
  fi
  ;;
up)
  D=$(realpath -m "${2:?DIR}")
  mkdir -p "$D"/{state,spool,log,mysql,run}
  host=$(hostname -s)
  node=$(slurmd -C | head -n 1 | sed -E "s/NodeName=[^ ]+/NodeName=$host/")
  # munge
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge \
    /var/log/munge /var/lib/munge
  mkdir -p "$D/munge" && chown munge:munge "$D/munge"
  runuser -u munge -- /usr/sbin/munged --pid-file="$D/munge/munged.pid" \
    --socket=/run/munge/munge.socket.2 --log-file="$D/munge/munged.log" --force
  wait_for 10 munge -n
  # mariadb, its own data directory under DIR
  mkdir -p "$D/mysqlrun" && chown -R mysql:mysql "$D/mysql" "$D/mysqlrun"
  mariadb-install-db --user=mysql --datadir="$D/mysql" --auth-root-authentication-method=socket \
    >"$D/log/mariadb-install.log" 2>&1
  setsid /usr/sbin/mariadbd --user=mysql --datadir="$D/mysql" --socket="$D/mysqlrun/mysql.sock" \
    --pid-file="$D/mysqlrun/mariadbd.pid" --bind-address=127.0.0.1 --port=3307 \
    </dev/null >"$D/log/mariadbd.log" 2>&1 &
  wait_for 30 mariadb --socket="$D/mysqlrun/mysql.sock" -e "select 1"
  mariadb --socket="$D/mysqlrun/mysql.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' \
    IDENTIFIED BY 'omixci'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; \
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'omixci'; \
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  cat >"$D/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6829
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=omixci
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$D/slurmdbd.conf"
  cat >"$D/slurm.conf" <<CONF
ClusterName=omixci
SlurmctldHost=$host
SlurmctldPort=6827
SlurmdPort=6828
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6829
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$D/slurm.conf"
  # job steps (srun inside sbatch jobs) look for /etc/slurm/slurm.conf whatever the submitter's
  # environment held: point it at ours, never over a real configuration
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    echo "slurm.sh: /etc/slurm/slurm.conf exists and is not ours; not touching it" >&2; exit 4
  fi
  mkdir -p /etc/slurm && ln -sfn "$D/slurm.conf" /etc/slurm/slurm.conf
  /usr/sbin/slurmdbd -f "$D/slurmdbd.conf" 2>"$D/log/slurmdbd.err" \
    || SLURMDBD_CONF="$D/slurmdbd.conf" /usr/sbin/slurmdbd
  wait_for 30 sacctmgr -i show cluster
  sacctmgr -i add cluster omixci >/dev/null || true
  sacctmgr -i add account omix Cluster=omixci Description=ci Organization=ci >/dev/null || true
  sacctmgr -i add user root Account=omix Cluster=omixci >/dev/null || true
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF"
  wait_for 30 bash -c "sinfo -h -o %T | grep -Eq '^(idle|mixed)'"
  echo "export SLURM_CONF=$D/slurm.conf" >"$D/env"
  echo "slurm.sh: cluster omixci up (partition debug, account omix; SLURM_CONF=$D/slurm.conf)"
  ;;
down)
  D=$(realpath -m "${2:?DIR}")
  for f in "$D"/run/slurmd.pid "$D"/run/slurmctld.pid "$D"/run/slurmdbd.pid \
      "$D"/mysqlrun/mariadbd.pid "$D"/munge/munged.pid; do
    if [ -s "$f" ]; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$D/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
  ;;
*) echo "usage: slurm.sh install|up DIR|down DIR" >&2; exit 2 ;;
esac
