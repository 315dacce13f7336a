#!/usr/bin/env bash
# slurm-cluster.sh: a real one-node Slurm 22.05 cluster from Debian 12's packages, on this
# machine, for hpc-tune's tests and demos. No systemd needed. `up` and `down` need root.
#
# Usage:
#   scripts/slurm-cluster.sh up      Install the packages if missing, write the configs, start
#                                    munged, mariadbd, slurmdbd, slurmctld and slurmd, and wait
#                                    until the node is idle and sacct answers. Idempotent: on a
#                                    cluster that is already up it only checks health (fast).
#   scripts/slurm-cluster.sh down    Stop slurmd, slurmctld, slurmdbd, mariadbd, munged.
#                                    Idempotent. Slurm's state (jobs, accounting) is kept.
#   scripts/slurm-cluster.sh status  Show which daemons run, sinfo and whether sacct answers.
#                                    Exit 0 if healthy, 1 if not.
#
# A second, three-node cluster on this same machine, beside the first (for node faults):
#   scripts/slurm-cluster.sh multi up|down|status
#                                    Like up/down/status, for ClusterName=hpctune3: nodes n1..n3
#                                    (NodeAddr=127.0.0.1, slurmd ports 17001-17003, one
#                                    `slurmd -N nX` each, 2 fake GPUs each), its own slurmctld
#                                    (port 6827) and config folder, sharing munged and slurmdbd
#                                    with the first cluster (`multi up` runs `up` first). Its
#                                    config is $HPC_TUNE_SLURM_DIR/multi/etc/slurm.conf: clients
#                                    choose it with SLURM_CONF (`multi conf` prints the path).
#                                    `multi down` stops only its slurmctld and slurmds.
#   scripts/slurm-cluster.sh node ACTION nX   Faults of node nX of the three-node cluster:
#       kill          kill -9 the whole node: its slurmd, its slurmstepds and every process of
#                     its jobs (a node that lost power)
#       kill-slurmd   kill -9 its slurmd only; its jobs' processes keep running
#       start         start its slurmd again (after kill or kill-slurmd; idempotent)
#       drain|down|resume   scontrol update State=DRAIN/DOWN/RESUME
#   scripts/slurm-cluster.sh slurmdbd stop|start
#                     Stop or start the SHARED slurmdbd (both clusters lose sacct meanwhile;
#                     slurmctld keeps accounting records and sends them when it is back).
#
# Environment:
#   HPC_TUNE_SLURM_DIR      state, logs, pid files, MariaDB data, fake GPU devices
#                           (default /var/lib/hpc-tune-slurm). Logs are in $DIR/log/.
#   HPC_TUNE_SLURM_TIMEOUT  seconds `up` waits for the cluster to become healthy (default 120).
#
# Slurm's config goes to /etc/slurm/ (slurm.conf, gres.conf, slurmdbd.conf), the default path,
# so plain sbatch/srun/squeue/sacct work for every user without SLURM_CONF.
#
# The cluster: ClusterName=hpctune; one node named `hostname -s` (NodeAddr=127.0.0.1) with the
# CPUs and memory `slurmd -C` reports and 4 fake GPUs (Gres=gpu:4 on character devices made with
# mknod, so Slurm sets CUDA_VISIBLE_DEVICES per job); partitions `debug` (Default, PriorityTier=1,
# GraceTime=10) and `high` (PriorityTier=10), which preempts debug jobs by requeue; both
# OverSubscribe=FORCE:4, so four 1-CPU jobs run at once on 2 cores. Accounting through slurmdbd
# and MariaDB, so sacct works.
# To start from scratch: `down`, then `rm -rf "$HPC_TUNE_SLURM_DIR"`, then `up`.
set -euo pipefail

DIR=${HPC_TUNE_SLURM_DIR:-/var/lib/hpc-tune-slurm}
TIMEOUT=${HPC_TUNE_SLURM_TIMEOUT:-120}
CLUSTER=hpctune
# The three-node cluster (`multi`): its own folder, name, slurmctld port and node ports.
MDIR=$DIR/multi
MCONF=$MDIR/etc/slurm.conf
MCLUSTER=hpctune3
MNODES=(n1 n2 n3)
MCTLD_PORT=6827
MNODE_PORT0=17001
ETC=/etc/slurm
PACKAGES=(munge mariadb-server mariadb-client slurmctld slurmd slurmdbd slurm-client)
MYSQL_SOCK=/run/mysqld/mysqld.sock   # Debian's default: the mariadb client and slurmdbd find it
DB_NAME=slurm_acct_db
DB_USER=slurm
# Daemons in start order; `down` stops them in reverse.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

log() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { printf '[slurm-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

require_root_debian() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"
    if ! [[ -r /etc/debian_version ]] || ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        die "needs Debian (12, bookworm) with apt-get and dpkg; this machine is not one"
    fi
}

# ---------------------------------------------------------------------------------------------
# Pid files and processes

# Daemon names: munged, mariadbd, slurmdbd, slurmctld, slurmd (the one-node cluster), and
# multi-slurmctld, multi-slurmd-nX (the three-node cluster).
pidfile() {
    case $1 in
        munged)          echo "$DIR/run/munge/munged.pid" ;;
        mariadbd)        echo "$DIR/run/mysql/mariadbd.pid" ;;
        multi-slurmctld) echo "$MDIR/run/slurmctld.pid" ;;
        multi-slurmd-*)  echo "$MDIR/run/slurmd-${1#multi-slurmd-}.pid" ;;
        *)               echo "$DIR/run/$1.pid" ;;
    esac
}

# The process name (comm) of a daemon.
comm_of() {
    case $1 in
        multi-slurmctld) echo slurmctld ;;
        multi-slurmd-*)  echo slurmd ;;
        *)               echo "$1" ;;
    esac
}

logfile() {
    case $1 in
        multi-slurmctld) echo "$MDIR/log/slurmctld.log" ;;
        multi-slurmd-*)  echo "$MDIR/log/slurmd-${1#multi-slurmd-}.log" ;;
        *)               echo "$DIR/log/$1.log" ;;
    esac
}

# running NAME: print the pid of daemon NAME and succeed if it is alive.
# The pid file is trusted only if /proc/PID/comm is NAME. Without a valid pid file, a process
# named NAME counts only if it is this cluster's (ours), never another cluster's on this host.
running() {
    local f pid="" comm
    comm=$(comm_of "$1")
    f=$(pidfile "$1")
    if [[ -r $f ]]; then pid=$(tr -dc '0-9' <"$f" 2>/dev/null || true); fi
    if [[ -n $pid ]] && alive "$pid" "$comm"; then echo "$pid"; return 0; fi
    for pid in $(pgrep -x "$comm" 2>/dev/null); do
        alive "$pid" "$comm" && ours "$pid" "$1" && { echo "$pid"; return 0; }
    done
    return 1
}

# ours PID NAME: munged and mariadbd name $DIR on their command line; the Slurm daemons keep
# their own log file open (slurmstepds keep their node's slurmd log open too, but are not
# named slurmd).
ours() {
    case $2 in
        munged | mariadbd) tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$DIR/" ;;
        *) has_open "$1" "$(logfile "$2")" ;;
    esac
}

# has_open PID FILE: PID holds FILE open (also once it was deleted).
has_open() {
    local fd target
    for fd in /proc/"$1"/fd/*; do
        target=$(readlink "$fd" 2>/dev/null) || continue
        [[ $target == "$2" || $target == "$2 (deleted)" ]] && return 0
    done
    return 1
}

# alive PID NAME: PID is a live process (not a zombie awaiting its reaper) named NAME.
alive() {
    local stat
    [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# stop_daemon NAME: SIGTERM, wait up to 60 s, then SIGKILL.
stop_daemon() {
    local pid i comm
    comm=$(comm_of "$1")
    pid=$(running "$1") || return 0
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        alive "$pid" "$comm" || break
        sleep 0.1
    done
    if alive "$pid" "$comm"; then
        log "$1 ignored SIGTERM for 60 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$(pidfile "$1")"
}

# wait_started NAME LOGFILE: wait up to 30 s for NAME to be alive with its pid file written.
wait_started() {
    local i
    for ((i = 0; i < 300; i++)); do
        if [[ -s $(pidfile "$1") ]] && running "$1" >/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$1 did not start; last lines of $2:"
    tail -n 30 "$2" >&2 2>/dev/null || true
    die "$1 failed to start"
}

# ---------------------------------------------------------------------------------------------
# Packages

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || echo "$p"
    done
}

POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
restore_policy() {
    if [[ -n $POLICY_BACKUP ]]; then mv -f "$POLICY_BACKUP" "$POLICY"; else rm -f "$POLICY"; fi
}

install_packages() {
    local missing
    missing=$(missing_packages | tr '\n' ' ')
    [[ -z ${missing// /} ]] && return 0
    log "installing Debian packages: $missing(log: $DIR/log/apt.log)"
    # policy-rc.d exiting 101 keeps the packages' scripts from starting any daemon.
    if [[ -e $POLICY ]]; then POLICY_BACKUP=$(mktemp); cp -p "$POLICY" "$POLICY_BACKUP"; fi
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "${PACKAGES[@]}"
    } >>"$DIR/log/apt.log" 2>&1 || rc=$?
    restore_policy
    trap - EXIT
    if ((rc != 0)); then
        tail -n 30 "$DIR/log/apt.log" >&2
        die "apt-get failed (exit $rc); see $DIR/log/apt.log"
    fi
    missing=$(missing_packages | tr '\n' ' ')
    [[ -z ${missing// /} ]] || die "still not installed after apt-get: $missing"
}

# ---------------------------------------------------------------------------------------------
# Files

# put PATH MODE OWNER: write stdin to PATH if its content differs; PUT_CHANGED=1 if it did.
PUT_CHANGED=0
put() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    chown "$3" "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"; PUT_CHANGED=0
        chmod "$2" "$1"; chown "$3" "$1"
    else
        mv -f "$tmp" "$1"; PUT_CHANGED=1
    fi
}

make_dirs() {
    install -d -m 755 "$DIR" "$DIR/etc" "$DIR/log" "$DIR/run" "$DIR/dev" \
        "$DIR/slurm" "$DIR/slurm/ctld" "$DIR/slurm/d" "$ETC"
    # Only mutable state of munge/MariaDB goes under $DIR; key and socket stay at Debian's paths.
    install -d -m 700 "$DIR/secrets"
    if id munge >/dev/null 2>&1; then
        install -d -m 700 -o munge -g munge "$DIR/run/munge"
        install -d -m 755 -o munge -g munge /run/munge
    fi
    if id mysql >/dev/null 2>&1; then
        install -d -m 750 -o mysql -g mysql "$DIR/mariadb" "$DIR/run/mysql"
        install -d -m 755 -o mysql -g mysql /run/mysqld
    fi
}

# Fake GPUs: Slurm wants character devices; (1,3) is what /dev/null is.
make_fake_gpus() {
    local i f
    for i in 0 1 2 3; do
        f=$DIR/dev/fakegpu$i
        [[ -c $f ]] && continue
        rm -f "$f"
        mknod -m 666 "$f" c 1 3
    done
}

# Slurm resolves 127.0.0.1 with getaddrinfo(AI_ADDRCONFIG), which finds nothing when the only
# IPv4 addresses are loopback (seen in a network namespace with only lo). Add a documentation
# address (TEST-NET-2) to lo in that case only; nothing is ever sent to it.
ensure_ipv4_address() {
    command -v ip >/dev/null || return 0
    if [[ -z $(ip -4 -o addr show scope global 2>/dev/null) ]]; then
        log "no non-loopback IPv4 address: adding 198.51.100.254/32 to lo so Slurm can resolve 127.0.0.1"
        ip addr add 198.51.100.254/32 dev lo 2>/dev/null || true
    fi
}

NODE=""
node_line() {
    # `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
    # ThreadsPerCore=1 RealMemory=24105"; keep its layout, leave a little memory to the OS.
    local c mem word out=""
    c=$(slurmd -C 2>/dev/null | head -n 1) || true
    [[ $c == NodeName=* ]] || die "slurmd -C printed nothing usable: $(slurmd -C 2>&1 | head -n 3)"
    for word in $c; do
        case $word in
            CPUs=* | Boards=* | SocketsPerBoard=* | CoresPerSocket=* | ThreadsPerCore=*) out+=" $word" ;;
            RealMemory=*) mem=${word#RealMemory=} ;;
        esac
    done
    mem=$((mem - (mem / 20 > 512 ? mem / 20 : 512)))
    ((mem > 256)) || mem=256
    echo "NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1$out RealMemory=$mem Gres=gpu:4 State=UNKNOWN"
}

db_password() {
    local f=$DIR/secrets/dbpass
    if [[ ! -s $f ]]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$f")
    fi
    cat "$f"
}

CHANGED_SLURM=0 CHANGED_DBD=0 CHANGED_MYSQL=0
write_configs() {
    local node pass
    node=$(node_line)
    pass=$(db_password)

    put "$ETC/slurm.conf" 644 root:root <<EOF
# Written by hpc-tune's scripts/slurm-cluster.sh; rewritten by every \`up\`.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=cred_expire=30
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$DIR/slurm/ctld
SlurmdSpoolDir=$DIR/slurm/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroup controllers needed: processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5
GresTypes=gpu
# Preemption: jobs of partition high requeue jobs of partition debug.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
# Accounting, so that sacct works.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
# Timings for fast tests.
KillWait=10
MinJobAge=60
SlurmdTimeout=30
SlurmctldTimeout=30
MessageTimeout=10
InactiveLimit=0
Waittime=0
ReturnToService=2
$node
PartitionName=debug Nodes=$NODE Default=YES PriorityTier=1 MaxTime=INFINITE GraceTime=10 OverSubscribe=FORCE:4 State=UP
PartitionName=high Nodes=$NODE Default=NO PriorityTier=10 MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
EOF
    ((PUT_CHANGED == 0)) || CHANGED_SLURM=1

    put "$ETC/gres.conf" 644 root:root <<EOF
# Written by hpc-tune's scripts/slurm-cluster.sh. Fake GPUs: character devices like /dev/null.
AutoDetect=off
Name=gpu File=$DIR/dev/fakegpu[0-3]
EOF
    ((PUT_CHANGED == 0)) || CHANGED_SLURM=1

    put "$ETC/slurmdbd.conf" 600 root:root <<EOF
# Written by hpc-tune's scripts/slurm-cluster.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$pass
StorageLoc=$DB_NAME
EOF
    ((PUT_CHANGED == 0)) || CHANGED_DBD=1

    put "$DIR/etc/my.cnf" 644 root:root <<EOF
# Written by hpc-tune's scripts/slurm-cluster.sh: MariaDB for slurmdbd only (no TCP).
[mysqld]
user=mysql
datadir=$DIR/mariadb
socket=$MYSQL_SOCK
pid-file=$DIR/run/mysql/mariadbd.pid
log-error=$DIR/log/mariadb.log
skip-networking
innodb_buffer_pool_size=512M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
max_allowed_packet=16M
EOF
    ((PUT_CHANGED == 0)) || CHANGED_MYSQL=1
}

# ---------------------------------------------------------------------------------------------
# Daemons

start_munged() {
    running munged >/dev/null && return 0
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    touch "$DIR/log/munged.log"
    chown munge:munge "$DIR/log/munged.log"
    chmod 640 "$DIR/log/munged.log"
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged \
        --pid-file="$DIR/run/munge/munged.pid" \
        --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/run/munge/munged.seed" </dev/null >>"$DIR/log/munged.log" 2>&1 9>&- \
        || { tail -n 20 "$DIR/log/munged.log" >&2; die "munged failed to start"; }
    wait_started munged "$DIR/log/munged.log"
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not work: munge -n | unmunge failed"
}

mysql_root() { mariadb --no-defaults --socket="$MYSQL_SOCK" -uroot; }

start_mariadbd() {
    running mariadbd >/dev/null && return 0
    touch "$DIR/log/mariadb.log"
    chown mysql:mysql "$DIR/log/mariadb.log"
    if [[ ! -d $DIR/mariadb/mysql ]]; then
        log "initialising MariaDB in $DIR/mariadb"
        mariadb-install-db --defaults-file="$DIR/etc/my.cnf" --skip-test-db \
            >>"$DIR/log/mariadb.log" 2>&1 9>&- \
            || { tail -n 30 "$DIR/log/mariadb.log" >&2; die "mariadb-install-db failed"; }
    fi
    log "starting mariadbd"
    rm -f "$(pidfile mariadbd)"
    setsid -f mariadbd --defaults-file="$DIR/etc/my.cnf" </dev/null >>"$DIR/log/mariadb.log" 2>&1 9>&-
    local i
    for ((i = 0; i < 600; i++)); do
        mariadb-admin --no-defaults --socket="$MYSQL_SOCK" -uroot ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    mariadb-admin --no-defaults --socket="$MYSQL_SOCK" -uroot ping >/dev/null 2>&1 \
        || { tail -n 30 "$DIR/log/mariadb.log" >&2; die "mariadbd did not answer within 60 s"; }
}

setup_database() {
    local pass
    pass=$(db_password)
    mysql_root <<EOF || die "could not create the database user for slurmdbd"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    running slurmdbd >/dev/null && return 0
    setup_database
    log "starting slurmdbd"
    slurmdbd </dev/null >>"$DIR/log/slurmdbd.log" 2>&1 9>&- \
        || { tail -n 30 "$DIR/log/slurmdbd.log" >&2; die "slurmdbd failed to start"; }
    wait_started slurmdbd "$DIR/log/slurmdbd.log"
    local i
    for ((i = 0; i < 300; i++)); do
        timeout 10 sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    tail -n 30 "$DIR/log/slurmdbd.log" >&2
    die "slurmdbd does not answer sacctmgr within 60 s"
}

register_cluster() {
    if ! timeout 20 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        log "registering cluster $CLUSTER in accounting"
        timeout 30 sacctmgr -i add cluster "$CLUSTER" >/dev/null \
            || die "sacctmgr add cluster $CLUSTER failed"
    fi
}

start_slurmctld() {
    running slurmctld >/dev/null && return 0
    register_cluster
    log "starting slurmctld"
    slurmctld </dev/null >>"$DIR/log/slurmctld.log" 2>&1 9>&- \
        || { tail -n 30 "$DIR/log/slurmctld.log" >&2; die "slurmctld failed to start"; }
    wait_started slurmctld "$DIR/log/slurmctld.log"
}

start_slurmd() {
    running slurmd >/dev/null && return 0
    make_fake_gpus   # before slurmd starts, or the node goes INVAL
    log "starting slurmd"
    slurmd </dev/null >>"$DIR/log/slurmd.log" 2>&1 9>&- \
        || { tail -n 30 "$DIR/log/slurmd.log" >&2; die "slurmd failed to start"; }
    wait_started slurmd "$DIR/log/slurmd.log"
}

# ---------------------------------------------------------------------------------------------
# Health

node_state() { timeout 10 sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1; }
sacct_ok() { timeout 10 sacct -n -X -a -S now >/dev/null 2>&1; }
# Node states in which the node serves jobs.
usable() { [[ $1 =~ ^(idle|mix|mixed|alloc|allocated|comp|completing|plnd|planned|resv)$ ]]; }
node_ok() { usable "$(node_state)"; }

wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT)) resumed=0 st
    while ((SECONDS < deadline)); do
        st=$(node_state)
        if usable "$st" && sacct_ok; then return 0; fi
        # A node left DOWN/DRAINED by an earlier run: slurmd answers, so put it back in service.
        if ((resumed == 0)) && [[ $st =~ ^(down|drain|drng|drained|fail|inval)$ ]]; then
            log "node $NODE is $st: resuming it"
            timeout 10 scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        sleep 0.5
    done
    log "cluster not healthy after ${TIMEOUT}s: node state '${st:-none}', sacct $(sacct_ok && echo answers || echo 'does not answer')"
    timeout 10 sinfo -N -l >&2 2>&1 || true
    timeout 10 sinfo -R >&2 2>&1 || true
    if ! sacct_ok; then
        log "last lines of $DIR/log/slurmdbd.log:"; tail -n 25 "$DIR/log/slurmdbd.log" >&2 || true
        log "last lines of $DIR/log/mariadb.log:"; tail -n 10 "$DIR/log/mariadb.log" >&2 || true
    fi
    log "last lines of $DIR/log/slurmctld.log:"; tail -n 25 "$DIR/log/slurmctld.log" >&2 || true
    log "last lines of $DIR/log/slurmd.log:"; tail -n 25 "$DIR/log/slurmd.log" >&2 || true
    die "Slurm cluster did not become healthy within ${TIMEOUT}s"
}

# ---------------------------------------------------------------------------------------------
# The three-node cluster (`multi`, `node`): see docs/slurm-facts.md, "The test clusters themselves".
# Every Slurm command for it runs with SLURM_CONF=$MCONF; its daemons too, so that they read
# the gres.conf beside it.

mslurm() { SLURM_CONF=$MCONF timeout 20 "$@"; }

known_node() {
    local n
    for n in "${MNODES[@]}"; do [[ $n == "$1" ]] && return 0; done
    die "no node '$1' in the three-node cluster (nodes: ${MNODES[*]})"
}

make_multi_dirs() {
    local n
    install -d -m 755 "$MDIR" "$MDIR/etc" "$MDIR/log" "$MDIR/run" "$MDIR/dev" "$MDIR/slurm" "$MDIR/slurm/ctld"
    for n in "${MNODES[@]}"; do install -d -m 755 "$MDIR/slurm/d/$n" "$MDIR/dev/$n"; done
}

# Two fake GPUs per node, each node its own device files.
make_multi_gpus() {
    local n i f
    for n in "${MNODES[@]}"; do
        for i in 0 1; do
            f=$MDIR/dev/$n/fakegpu$i
            [[ -c $f ]] && continue
            rm -f "$f"
            mknod -m 666 "$f" c 1 3
        done
    done
}

CHANGED_MULTI=0
write_multi_configs() {
    local host cpu_words="" word n i port nodes=""
    host=$(hostname -s)
    NODE=$host
    # The same layout as the one-node cluster's node (every node is this machine).
    for word in $(node_line); do
        case $word in
            CPUs=* | Boards=* | SocketsPerBoard=* | CoresPerSocket=* | ThreadsPerCore=* | RealMemory=*) cpu_words+=" $word" ;;
        esac
    done
    for i in "${!MNODES[@]}"; do
        n=${MNODES[i]}
        port=$((MNODE_PORT0 + i))
        nodes+="NodeName=$n NodeHostname=$n NodeAddr=127.0.0.1 Port=$port$cpu_words Gres=gpu:2 State=UNKNOWN"$'\n'
    done
    put "$MCONF" 644 root:root <<EOF
# Written by hpc-tune's scripts/slurm-cluster.sh (multi); rewritten by every \`multi up\`.
# Three nodes on one machine beside the one-node cluster; shares its munged and slurmdbd.
ClusterName=$MCLUSTER
SlurmctldHost=$host(127.0.0.1)
# slurmdbd accepts accounting only from its own SlurmUser (root).
SlurmUser=root
SlurmctldPort=$MCTLD_PORT
SlurmdPort=$MNODE_PORT0
AuthType=auth/munge
AuthInfo=cred_expire=20
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$MDIR/slurm/ctld
SlurmdSpoolDir=$MDIR/slurm/d/%n
SlurmctldPidFile=$MDIR/run/slurmctld.pid
SlurmdPidFile=$MDIR/run/slurmd-%n.pid
SlurmctldLogFile=$MDIR/log/slurmctld.log
SlurmdLogFile=$MDIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
# A node fault is seen within ~15-30 s (docs/slurm-facts.md); a requeued job waits cred_expire.
KillWait=10
MinJobAge=60
SlurmdTimeout=10
SlurmctldTimeout=30
MessageTimeout=5
InactiveLimit=0
Waittime=0
ReturnToService=2
${nodes}PartitionName=debug Nodes=$(IFS=,; echo "${MNODES[*]}") Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
EOF
    ((PUT_CHANGED == 0)) || CHANGED_MULTI=1
    {
        echo "# Written by hpc-tune's scripts/slurm-cluster.sh (multi). Fake GPUs, per node."
        echo "AutoDetect=off"
        for n in "${MNODES[@]}"; do echo "NodeName=$n Name=gpu File=$MDIR/dev/$n/fakegpu[0-1]"; done
    } | put "$MDIR/etc/gres.conf" 644 root:root
    ((PUT_CHANGED == 0)) || CHANGED_MULTI=1
}

register_multi_cluster() {
    if ! timeout 20 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$MCLUSTER"; then
        log "registering cluster $MCLUSTER in accounting"
        timeout 30 sacctmgr -i add cluster "$MCLUSTER" >/dev/null || die "sacctmgr add cluster $MCLUSTER failed"
    fi
}

start_multi_slurmctld() {
    running multi-slurmctld >/dev/null && return 0
    register_multi_cluster
    log "starting slurmctld of $MCLUSTER"
    SLURM_CONF=$MCONF slurmctld -f "$MCONF" </dev/null >>"$MDIR/log/slurmctld.log" 2>&1 9>&- \
        || { tail -n 30 "$MDIR/log/slurmctld.log" >&2; die "slurmctld of $MCLUSTER failed to start"; }
    wait_started multi-slurmctld "$MDIR/log/slurmctld.log"
}

start_node() {
    running "multi-slurmd-$1" >/dev/null && return 0
    make_multi_gpus   # before slurmd starts, or the node goes INVAL
    log "starting slurmd of node $1"
    SLURM_CONF=$MCONF slurmd -f "$MCONF" -N "$1" </dev/null >>"$MDIR/log/slurmd-$1.log" 2>&1 9>&- \
        || { tail -n 30 "$MDIR/log/slurmd-$1.log" >&2; die "slurmd of node $1 failed to start"; }
    wait_started "multi-slurmd-$1" "$MDIR/log/slurmd-$1.log"
}

mnode_state() { mslurm sinfo -h -N -n "$1" -o '%t' 2>/dev/null | head -n 1; }
msacct_ok() { SLURM_CONF=$MCONF timeout 10 sacct -n -X -a -S now >/dev/null 2>&1; }

# wait_multi_healthy [SECONDS]: every node usable and sacct answering.
wait_multi_healthy() {
    local deadline=$((SECONDS + ${1:-$TIMEOUT})) n st bad
    declare -A resumed=()
    while ((SECONDS < deadline)); do
        bad=""
        for n in "${MNODES[@]}"; do
            st=$(mnode_state "$n")
            usable "$st" && continue
            bad+=" $n:${st:-?}"
            # Left DOWN/DRAINED by a fault test: its slurmd answers, so put it back in service.
            if [[ -z ${resumed[$n]:-} && $st =~ ^(down|drain|drng|drained|fail|inval)$ ]]; then
                log "node $n is $st: resuming it"
                mslurm scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
                resumed[$n]=1
            fi
        done
        if [[ -z $bad ]] && msacct_ok; then return 0; fi
        sleep 0.5
    done
    log "cluster $MCLUSTER not healthy (nodes not usable:${bad:- none}; sacct $(msacct_ok && echo answers || echo 'does not answer'))"
    mslurm sinfo -N -l >&2 2>&1 || true
    log "last lines of $MDIR/log/slurmctld.log:"; tail -n 25 "$MDIR/log/slurmctld.log" >&2 || true
    return 1
}

multi_daemons() {
    local n
    echo multi-slurmctld
    for n in "${MNODES[@]}"; do echo "multi-slurmd-$n"; done
}

cmd_multi_up() {
    local t0=$SECONDS d all=1 n
    cmd_up   # munged and slurmdbd are shared with the one-node cluster; takes the lock
    make_multi_dirs
    write_multi_configs
    if ((CHANGED_MULTI)); then
        for d in $(multi_daemons); do
            if running "$d" >/dev/null; then log "$MCONF changed: restarting $d"; stop_daemon "$d"; fi
        done
    fi
    for d in $(multi_daemons); do running "$d" >/dev/null || all=0; done
    if ((all)) && wait_multi_healthy 5 2>/dev/null; then
        log "$MCLUSTER already up and healthy (SLURM_CONF=$MCONF)"
        return 0
    fi
    start_multi_slurmctld
    for n in "${MNODES[@]}"; do start_node "$n"; done
    wait_multi_healthy || die "cluster $MCLUSTER did not become healthy within ${TIMEOUT}s"
    log "$MCLUSTER up in $((SECONDS - t0)) s: nodes ${MNODES[*]}; use SLURM_CONF=$MCONF; logs in $MDIR/log"
}

cmd_multi_down() {
    require_root_debian
    lock
    local d
    for d in $(multi_daemons | tac); do stop_daemon "$d"; done
    log "$MCLUSTER down"
}

cmd_multi_status() {
    local d pid ok=0 n
    for d in munged slurmdbd $(multi_daemons); do
        if pid=$(running "$d"); then printf '%-16s running (pid %s)\n' "$d" "$pid"
        else printf '%-16s not running\n' "$d"; ok=1; fi
    done
    if [[ -r $MCONF ]] && command -v sinfo >/dev/null; then
        mslurm sinfo -N 2>&1 || ok=1
        for n in "${MNODES[@]}"; do
            usable "$(mnode_state "$n")" || { echo "node $n is not usable: '$(mnode_state "$n")'"; ok=1; }
        done
        if msacct_ok; then echo "sacct: answers"; else echo "sacct: does not answer"; ok=1; fi
    else
        echo "no $MCONF (run: scripts/slurm-cluster.sh multi up)"; ok=1
    fi
    echo "SLURM_CONF=$MCONF"
    if ((ok == 0)); then echo "healthy"; else echo "NOT healthy (logs in $MDIR/log)"; fi
    return $ok
}

# node_processes NODE: every process of node NODE but its slurmd: its slurmstepds (they keep
# the node's slurmd log open) and every process of its jobs (Slurm puts SLURMD_NODENAME and
# SLURM_CLUSTER_NAME in their environment, and children inherit it).
node_processes() {
    local p pid env
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        ((pid == $$ || pid == BASHPID)) && continue
        if [[ $(cat "$p/comm" 2>/dev/null) == slurmstepd ]]; then
            if has_open "$pid" "$MDIR/log/slurmd-$1.log"; then echo "$pid"; fi
            continue
        fi
        env=$(tr '\0' '\n' 2>/dev/null <"$p/environ") || continue
        if grep -qx "SLURMD_NODENAME=$1" <<<"$env" && grep -qx "SLURM_CLUSTER_NAME=$MCLUSTER" <<<"$env"; then
            echo "$pid"
        fi
    done
}

# kill_node NODE: kill -9 its slurmd, its slurmstepds and its jobs' processes, until none is
# left (a job step may fork while we look).
kill_node() {
    local pids round
    for ((round = 0; round < 5; round++)); do
        pids=$( { running "multi-slurmd-$1" || true; node_processes "$1"; } | tr '\n' ' ')
        if [[ -z ${pids// /} ]]; then log "node $1 killed (no process left)"; return 0; fi
        log "node $1: kill -9 $pids"
        kill -KILL $pids 2>/dev/null || true
        sleep 0.2
    done
    die "node $1: processes still there after 5 rounds of kill -9: $pids"
}

kill_slurmd() {
    local pid
    pid=$(running "multi-slurmd-$1") || { log "slurmd of node $1 is not running"; return 0; }
    log "node $1: kill -9 slurmd (pid $pid); its jobs' processes keep running"
    kill -KILL "$pid"
}

cmd_node() {
    local action=${1:-} n=${2:-}
    [[ -n $action && -n $n ]] || usage
    require_root_debian
    known_node "$n"
    case $action in
        kill)        kill_node "$n" ;;
        kill-slurmd) kill_slurmd "$n" ;;
        start)       start_node "$n" ;;
        drain)       mslurm scontrol update NodeName="$n" State=DRAIN Reason="hpc-tune fault test" ;;
        down)        mslurm scontrol update NodeName="$n" State=DOWN Reason="hpc-tune fault test" ;;
        resume)      mslurm scontrol update NodeName="$n" State=RESUME ;;
        *)           usage ;;
    esac
}

cmd_slurmdbd() {
    require_root_debian
    case ${1:-} in
        stop)  stop_daemon slurmdbd ;;
        start) start_slurmdbd ;;
        *)     usage ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Subcommands

# The lock's fd 9 must not leak into the daemons (they would hold it forever): every daemon is
# started with 9>&-.
lock() {
    install -d -m 755 "$DIR"
    exec 9>"$DIR/.lock"
    flock -w 600 9 || die "another slurm-cluster.sh holds $DIR/.lock"
}

cmd_up() {
    require_root_debian
    local t0=$SECONDS
    lock
    make_dirs
    install_packages
    make_dirs   # again: munge and mysql users exist only after the install
    ensure_ipv4_address
    NODE=$(hostname -s)
    write_configs

    # Config changed under running daemons: restart those that read it.
    if ((CHANGED_MYSQL)) && running mariadbd >/dev/null; then
        log "my.cnf changed: restarting mariadbd"; stop_daemon mariadbd; fi
    if ((CHANGED_DBD)) && running slurmdbd >/dev/null; then
        log "slurmdbd.conf changed: restarting slurmdbd"; stop_daemon slurmdbd; fi
    if ((CHANGED_SLURM)) && { running slurmctld >/dev/null || running slurmd >/dev/null; }; then
        log "slurm.conf/gres.conf changed: restarting slurmctld and slurmd"
        stop_daemon slurmd; stop_daemon slurmctld
    fi

    local d all=1
    for d in "${DAEMONS[@]}"; do running "$d" >/dev/null || all=0; done
    if ((all)) && node_ok && sacct_ok; then
        log "already up and healthy (node $NODE: $(node_state))"
        return 0
    fi

    start_munged
    start_mariadbd
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_healthy
    log "up in $((SECONDS - t0)) s: cluster $CLUSTER, node $NODE $(node_state), logs in $DIR/log"
}

cmd_down() {
    require_root_debian
    lock
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done
    log "down"
}

cmd_status() {
    local d pid ok=0
    NODE=$(hostname -s)
    for d in "${DAEMONS[@]}"; do
        if pid=$(running "$d"); then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s not running\n' "$d"; ok=1
        fi
    done
    if command -v sinfo >/dev/null; then
        timeout 10 sinfo 2>&1 || ok=1
        node_ok || { echo "node $NODE is not usable: '$(node_state)'"; ok=1; }
        if sacct_ok; then echo "sacct: answers"; else echo "sacct: does not answer"; ok=1; fi
    else
        echo "sinfo: not installed"; ok=1
    fi
    if ((ok == 0)); then echo "healthy"; else echo "NOT healthy (logs in $DIR/log)"; fi
    return $ok
}

case ${1:-} in
    up)     cmd_up ;;
    down)   cmd_down ;;
    status) cmd_status ;;
    multi)
        case ${2:-} in
            up)     cmd_multi_up ;;
            down)   cmd_multi_down ;;
            status) cmd_multi_status ;;
            conf)   echo "$MCONF" ;;
            *)      usage ;;
        esac ;;
    node)     cmd_node "${2:-}" "${3:-}" ;;
    slurmdbd) cmd_slurmdbd "${2:-}" ;;
    -h | --help | help) usage ;;
    *)      usage ;;
esac
