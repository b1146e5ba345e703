#!/usr/bin/env bash
# A real one-node SLURM cluster in a folder, for the tests and for trying `pose-classifier batch --engine slurm`
# on one machine. Everything (config, munge key and socket, state, logs, pid files) lives in DIR; nothing in
# /etc is touched. The daemons are stopped by the pids they wrote there.
#
#   scripts/slurm_local.sh start DIR   # installs the Debian packages when absent (root only), starts munged,
#                                      # slurmctld and slurmd, waits until `sinfo` shows the node idle
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch / squeue / scancel / pose-classifier batch --engine slurm
#   scripts/slurm_local.sh stop DIR    # cancels the cluster's jobs, stops the three daemons by their pids
#
# Exit status of start: 0 running; 3 SLURM cannot run here (not root and not installed, apt failed, a daemon
# did not start), the reason on stderr (tests skip on 3); 2 usage.
# Variables: SLURM_PORT_BASE (slurmctld port, slurmd = +1; default: two free ports), SLURM_WAIT_S (30).
set -uo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
ACTION="$1"
mkdir -p "$2" || exit 2
DIR="$(cd "$2" && pwd)"
CONF="$DIR/slurm.conf"
cant() { echo "slurm_local: cannot start SLURM here: $*" >&2; exit 3; }

pid_of() { [ -f "$DIR/$1.pid" ] && cat "$DIR/$1.pid" 2>/dev/null; }
# A pid is ours only while its command line names this folder (guards against pid reuse).
ours() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF "$DIR"; }

stop() {
  if [ -f "$CONF" ] && command -v scancel >/dev/null; then
    SLURM_CONF="$CONF" timeout 10 scancel --full --quiet --user "$(id -un)" 2>/dev/null || true
  fi
  for daemon in slurmd slurmctld munged; do
    local pid; pid="$(pid_of "$daemon")"
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
      ours "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$DIR/$daemon.pid"
  done
  return 0
}

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
    && command -v munged >/dev/null && return 0
  [ "$(id -u)" -eq 0 ] || cant "SLURM is not installed and installing it needs root"
  command -v apt-get >/dev/null || cant "SLURM is not installed and there is no apt-get"
  echo "slurm_local: installing slurmctld slurmd slurm-client munge" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y slurmctld slurmd slurm-client munge >"$DIR/apt.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$DIR/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurmctld slurmd slurm-client munge >>"$DIR/apt.log" 2>&1 \
      || cant "apt-get install failed (see $DIR/apt.log): $(tail -1 "$DIR/apt.log")"
  fi
}

free_ports() {  # two consecutive free TCP ports
  python3 - <<'PY'
import socket
for base in range(20000, 60000, 37):
    socks = []
    try:
        for port in (base, base + 1):
            s = socket.socket(); s.bind(("127.0.0.1", port)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}

start() {
  [ "$(id -u)" -eq 0 ] || cant "the daemons run as root here (SlurmUser=root) and this is uid $(id -u)"
  install_packages
  stop  # a previous cluster in the same folder
  local host cpus mem_mib port
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem_mib="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)"
  port="${SLURM_PORT_BASE:-$(free_ports)}"
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log"
  chmod 700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
    chmod 400 "$DIR/munge/munge.key"
  fi
  cat > "$CONF" <<EOF
# one-node SLURM written by scripts/slurm_local.sh
ClusterName=posetest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=60
KillWait=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    2>"$DIR/log/munged.err" || cant "munged did not start: $(tail -2 "$DIR/log/munged.err" "$DIR/log/munged.log" 2>/dev/null | tr '\n' ' ')"
  slurmctld -f "$CONF" 2>"$DIR/log/slurmctld.err" || { stop; cant "slurmctld did not start: $(tail -2 "$DIR/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"; }
  slurmd -f "$CONF" 2>"$DIR/log/slurmd.err" || { stop; cant "slurmd did not start: $(tail -2 "$DIR/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"; }
  local deadline=$((SECONDS + ${SLURM_WAIT_S:-30})) state=""
  while [ $SECONDS -lt $deadline ]; do
    state="$(SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | head -1)"
    [ "$state" = "idle" ] && break
    sleep 0.5
  done
  if [ "$state" != "idle" ]; then
    local why; why="$(tail -3 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    stop
    cant "the node did not become idle within ${SLURM_WAIT_S:-30} s (state '${state:-none}'): $why"
  fi
  echo "slurm_local: node $host idle ($cpus CPUs); export SLURM_CONF=$CONF" >&2
  echo "$CONF"
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
