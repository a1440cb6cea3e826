#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's packages (munge, slurmctld, slurmd),
# with a generated config: what the tests of `--executor slurm` submit to, and a way to try it.
# Needs root and `apt-get install slurm-wlm munge`.
#
#   scripts/slurm-local.sh          # start it (again: a no-op while it runs); waits until idle
#   scripts/slurm-local.sh stop     # stop it
#
# The node has this machine's CPUs and 90 % of its memory, in one partition, `local`; a job
# without --mem gets its CPUs' share of the memory. There is no accounting database: finished
# jobs are read with `scontrol show job` for a few minutes.
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/lib/fovea-slurm}
CONF=/etc/slurm/slurm.conf

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/slurm-local.sh [start|stop]" >&2; exit 2 ;;
esac

for tool in munged mungekey slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null || { echo "no $tool: apt-get install slurm-wlm munge" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "scripts/slurm-local.sh needs root" >&2; exit 2; }

if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "slurm: already running"; exit 0
fi
stop

# munge: the key, its folders, the daemon (as the munge user)
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
runuser -u munge -- munged

# slurm: a config for this one node
node=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log" /etc/slurm
cat > "$CONF" <<CONF
ClusterName=fovea-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
KillWait=30
DefMemPerCPU=$((mem / cpus))
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld
slurmd

for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^idle'; then
    echo "slurm: one node ($node, $cpus CPUs, $mem MiB) in partition local"
    exit 0
  fi
  sleep 0.5
done
echo "slurm did not come up; see $STATE/log" >&2
sinfo >&2 || true
exit 1
