#!/usr/bin/env bash
# A one-node SLURM cluster on this host, for CI and for trying the SLURM profile locally.
#   workflow/scripts/local-slurm.sh start    install slurm-wlm + munge if absent (apt, root),
#                                            write slurm.conf for this host, start the daemons
#   workflow/scripts/local-slurm.sh stop     stop the daemons this script started
#   workflow/scripts/local-slurm.sh status   sinfo, or exit 1 when no cluster answers
# Idempotent: `start` on a running cluster only checks that the node is idle or allocated.
# No accounting database: Snakemake's SLURM executor polls with squeue, which needs finished
# jobs to stay visible for a while (MinJobAge).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
STATE=/var/lib/kdsd-local-slurm       # marker + pid files of what this script started
MARK="# written by kdsd workflow/scripts/local-slurm.sh"

die() { echo "local-slurm: error: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are missing and installing them needs root"
    echo "local-slurm: installing slurm-wlm and munge (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to overwrite it"
    fi
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # Leave 512 MB to the system; memory is not a consumable resource (CR_Core) anyway.
    mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 512 ))
    # Loopback addresses: no reliance on this host's name resolving (CI containers).
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    cat > "$CONF.tmp" <<EOF
$MARK
ClusterName=kdsd-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue must still show finished jobs when Snakemake polls (no sacct without accounting).
MinJobAge=600
ReturnToService=2
SlurmdTimeout=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

cluster_answers() { sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

start_daemon() {  # name, command...
    local name=$1; shift
    if pgrep -x "$name" >/dev/null; then return; fi
    "$@"
    touch "$STATE/started-$name"
}

start() {
    install_packages
    if cluster_answers; then echo "local-slurm: cluster already up"; sinfo; return; fi
    [ "$(id -u)" = 0 ] || die "starting the daemons needs root"
    write_conf
    mkdir -p /run/munge && chown munge:munge /run/munge
    start_daemon munged runuser -u munge -- munged
    start_daemon slurmctld slurmctld
    start_daemon slurmd slurmd
    for _ in $(seq 60); do
        cluster_answers && { echo "local-slurm: cluster up"; sinfo; return; }
        scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
        sleep 1
    done
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    die "the node did not become idle within 60 s (logs above)"
}

stop() {
    local name pid
    for name in slurmd slurmctld; do
        [ -f "$STATE/started-$name" ] || continue
        pid=$(cat "$STATE/$name.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        rm -f "$STATE/started-$name"
    done
    if [ -f "$STATE/started-munged" ]; then
        pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        rm -f "$STATE/started-munged"
    fi
    echo "local-slurm: stopped what this script started"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) cluster_answers && sinfo || { echo "local-slurm: no cluster answers" >&2; exit 1; } ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
