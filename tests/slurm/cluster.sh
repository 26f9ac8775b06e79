#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the job-script tests (tests/cli/test_slurm_jobs.sh)
# and CI: Debian's slurm-wlm and munge, slurmctld and slurmd on this host, one partition.
#   bash tests/slurm/cluster.sh start    install what is missing (as root), configure, start, wait until idle
#   bash tests/slurm/cluster.sh stop
# The configuration is a plain one: no cgroups (proctrack/linuxproc, task/affinity), so it runs in a
# container; MpiDefault=none as on many clusters, so the job scripts must ask srun for PMIx
# themselves; job requeue allowed. It writes /etc/slurm/slurm.conf and /etc/munge/munge.key only
# when they are missing or were written by this script.
set -euo pipefail
action=${1:-start}
marker="# written by frugal tests/slurm/cluster.sh"

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
}
if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "usage: $0 start|stop" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh start needs root (it installs and starts daemons)" >&2; exit 2; }

missing=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "cluster: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

stop
host=$(hostname -s)
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if id munge >/dev/null 2>&1; then
  runuser -u munge -- munged
else
  munged --force
fi

if [ ! -f /etc/slurm/slurm.conf ] || grep -qF "$marker" /etc/slurm/slurm.conf; then
  node=$(slurmd -C | head -n 1 | sed 's/ UpTime=.*//')  # NodeName=... CPUs=... RealMemory=...
  node=${node/NodeName=$(slurmd -C | sed -n 's/^NodeName=\([^ ]*\).*/\1/p')/NodeName=$host}
  cat > /etc/slurm/slurm.conf <<CONF
$marker
ClusterName=frugal
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
fi
slurmctld
slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|allocated"; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "cluster: the node did not become idle; logs:" >&2
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
sinfo >&2 || true
exit 1
