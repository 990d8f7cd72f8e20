#!/usr/bin/env bash
# A real local Airflow 3.3 for this repository, run the way users run it: api-server, scheduler
# (LocalExecutor), dag-processor and triggerer as separate processes on a PostgreSQL metadata DB.
# With EXECUTOR=celery (or AIRFLOW_REAL_EXECUTOR=celery) the scheduler uses the CeleryExecutor: a Redis
# broker (Debian's redis-server, started here on loopback) and AIRFLOW_REAL_CELERY_WORKERS (2) Celery
# workers, each as if on a machine of its own: its own hostname (rp-worker-N, also the task instances'
# `hostname`), AIRFLOW_HOME, TMPDIR and admin snapshot under .local/airflow-real/workers/rp-worker-N, no
# log server (task logs go to S3 through the reports_s3 connection, as on a real multi-host deployment).
#
#   scripts/airflow_local.sh up        install what is missing, start everything, wait until healthy
#   scripts/airflow_local.sh down      stop the Airflow processes and the PostgreSQL cluster (idempotent)
#   scripts/airflow_local.sh status    what runs, and the api-server's health report
#   scripts/airflow_local.sh env       the environment of the deployment, as `export` lines
#   scripts/airflow_local.sh airflow ARGS...   the airflow CLI against this deployment
#   scripts/airflow_local.sh ui-deps   install headless Chromium (for tests/airflow_real)
#
# Everything listens on 127.0.0.1 only: the api-server (UI, REST and execution API) on
# AIRFLOW_REAL_PORT (8080) and PostgreSQL on AIRFLOW_REAL_PG_PORT (5433, so it never meets a system
# cluster on 5432). The log servers of the scheduler and the triggerer are not started (they would
# bind every interface); the api-server reads task logs from the local files instead.
# State: .local/postgres (a symlink to the cluster in /var/tmp, owned by the `postgres` OS user when run
# as root; see PG_ROOT below) and .local/airflow-real
# (AIRFLOW_HOME, pid files, logs), apart from the SQLite .local/airflow of `airflow dags test`.
# The MariaDB and S3 servers come from scripts/services.sh (`make services`), which `make airflow-up`
# starts first.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
BIND=127.0.0.1
API_PORT="${AIRFLOW_REAL_PORT:-8080}"
PG_PORT="${AIRFLOW_REAL_PG_PORT:-5433}"
# A second, independent deployment (e.g. `make test-load`) overrides the state directories and ports:
#   AIRFLOW_REAL_HOME (.local/airflow-real)  AIRFLOW_REAL_PG_DIR (.local/postgres)
#   AIRFLOW_REAL_PORT (8080)  AIRFLOW_REAL_PG_PORT (5433)  AIRFLOW_REAL_PARALLELISM (8)
#   AIRFLOW_REAL_SOURCE_SLOTS / AIRFLOW_REAL_TARGET_SLOTS (4 / 4: the reports_source / reports_target pools)
#   AIRFLOW_REAL_DEMO=0 (or REPORTS_DEMO_SETUP=false): do not run `report-pipeline demo-setup`
# With the CeleryExecutor also:
#   AIRFLOW_REAL_REDIS_PORT (REPORTS_REDIS_PORT, else 6379)  AIRFLOW_REAL_CELERY_WORKERS (2)
#   AIRFLOW_REAL_WORKER_CONCURRENCY (4: task slots per worker)
#   AIRFLOW_REAL_TI_HEARTBEAT_TIMEOUT ([scheduler] task_instance_heartbeat_timeout, Airflow's 300 s
#     unless set): how long after a worker dies its running tasks are failed and retried elsewhere
#   AIRFLOW_REAL_LOG_BUCKET (rp-airflow-logs): the bucket on reports_s3 that task logs go to
# AIRFLOW_CONN_REPORTS_* and REPORTS_* already set in the caller's environment are kept (scripts/env.sh
# only fills what is unset), so the deployment can point at other admin/source/target schemas.
abs_path() { case "$1" in /*) echo "$1" ;; *) echo "$REPO_ROOT/$1" ;; esac; }
REAL_HOME="$(abs_path "${AIRFLOW_REAL_HOME:-.local/airflow-real}")"
# Where the repository keeps the cluster: .local/postgres (AIRFLOW_REAL_PG_DIR), normally a symlink to
# PG_ROOT below, where the cluster really lives.
PG_STATE="$(abs_path "${AIRFLOW_REAL_PG_DIR:-.local/postgres}")"
PARALLELISM="${AIRFLOW_REAL_PARALLELISM:-8}"
SOURCE_SLOTS="${AIRFLOW_REAL_SOURCE_SLOTS:-4}"
TARGET_SLOTS="${AIRFLOW_REAL_TARGET_SLOTS:-4}"
case "${AIRFLOW_REAL_DEMO:-1}" in 0 | false | no | off) DEMO_SETUP=false ;; *) DEMO_SETUP="${REPORTS_DEMO_SETUP:-true}" ;; esac
# The cluster itself lives outside the repository, in /var/tmp/report-pipeline-pg-<hash of PG_STATE>/,
# because the repository is no place PostgreSQL can always reach: as root, initdb and postgres must
# run as the `postgres` OS user, which cannot enter a clone below a home directory (mode 0700) or any
# other closed parent; and a path with spaces or of more than ~100 characters breaks pg_ctl's -o
# options and the socket path. /var/tmp is open to every user (sticky), survives reboots like the
# repository does, and the hash keeps clones, and the two stacks of one clone, apart. PG_STATE becomes
# a symlink to it, so `rm -rf .local/postgres` still means "start from an empty cluster" (an unlinked
# cluster is wiped at the next `up`). A cluster made inside the repository by an earlier version of
# this script is still used where it is.
pg_root_for() {
    if [ ! -L "$1" ] && [ -f "$1/data/PG_VERSION" ]; then
        echo "$1"
    else
        echo "/var/tmp/report-pipeline-pg-$(printf '%s' "$1" | sha256sum | cut -c1-16)"
    fi
}
PG_ROOT="$(pg_root_for "$PG_STATE")"
PGDATA="$PG_ROOT/data"
PG_SOCKET_DIR="$PG_ROOT/run"
PG_LOG="$PG_ROOT/postgres.log"
ADMIN_USER="${AIRFLOW_REAL_ADMIN_USER:-admin}"
ADMIN_PASSWORD="${AIRFLOW_REAL_ADMIN_PASSWORD:-admin}"
UP_TIMEOUT="${AIRFLOW_REAL_UP_TIMEOUT:-240}"
case "${AIRFLOW_REAL_EXECUTOR:-${EXECUTOR:-local}}" in
    local | LocalExecutor) EXECUTOR=local ;;
    celery | CeleryExecutor) EXECUTOR=celery ;;
    *) echo "airflow_local: EXECUTOR must be local or celery, not '${AIRFLOW_REAL_EXECUTOR:-$EXECUTOR}'" >&2; exit 2 ;;
esac
REDIS_PORT="${AIRFLOW_REAL_REDIS_PORT:-${REPORTS_REDIS_PORT:-6379}}"
REDIS_DIR="$REAL_HOME/redis"
WORKERS="${AIRFLOW_REAL_CELERY_WORKERS:-2}"
WORKER_CONCURRENCY="${AIRFLOW_REAL_WORKER_CONCURRENCY:-4}"
TI_HEARTBEAT_TIMEOUT="${AIRFLOW_REAL_TI_HEARTBEAT_TIMEOUT:-}"
LOG_BUCKET="${AIRFLOW_REAL_LOG_BUCKET:-rp-airflow-logs}"
# What `up` started last (executor, workers, heartbeat timeout): read by `up`, `down` and the tests.
STACK_FILE="$REAL_HOME/stack.env"
# status, env and airflow describe the stack that runs, whatever EXECUTOR says (only `up` chooses).
if [ "${1:-}" != up ] && [ -f "$STACK_FILE" ] && [ -f "$REAL_HOME/scheduler.pid" ]; then
    EXECUTOR="$(sed -n 's/^EXECUTOR=//p' "$STACK_FILE")"
    [ "$EXECUTOR" != celery ] || WORKERS="$(sed -n 's/^WORKERS=//p' "$STACK_FILE")"
    [ "$EXECUTOR" != celery ] || REDIS_PORT="$(sed -n 's/^REDIS_PORT=//p' "$STACK_FILE")"
fi
COMPONENTS=(api-server scheduler dag-processor triggerer)
if [ "$EXECUTOR" = celery ]; then
    for ((i = 1; i <= WORKERS; i++)); do COMPONENTS+=("celery-worker-$i"); done
fi
# The DAG the readiness check waits for; with REPORTS_DAG_SHARDS=N > 1 the companies are in N shard DAGs
# (README "Scaling out"; the dags folder must hold the files `report-pipeline write-dag-shards` writes).
DAG_ID=populate_report_databases
if [ "${REPORTS_DAG_SHARDS:-1}" -gt 1 ] 2>/dev/null; then DAG_ID=populate_report_databases_shard_01; fi
# Python drivers for PostgreSQL: SQLAlchemy's sync engine (psycopg2) and Airflow's async engine
# (asyncpg, derived from the sync URL). Neither comes with apache-airflow-core.
PG_PY_DRIVERS=("psycopg2-binary==2.9.13" "asyncpg==0.32.0")

log() { echo "airflow_local: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
port_in_use() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }

# --- system packages --------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing system packages ($*); run as root or: sudo apt-get install -y $*"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update (missing: $*)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

ensure_postgres_installed() {
    pg_bindir >/dev/null || apt_install postgresql
    pg_bindir >/dev/null || die "PostgreSQL is installed but no /usr/lib/postgresql/*/bin/initdb was found"
    command -v psql >/dev/null || apt_install postgresql-client
}

ensure_chromium() {
    command -v chromium >/dev/null || apt_install chromium fonts-liberation
}

ensure_python_drivers() {
    [ -x "$VENV/bin/airflow" ] || die "$VENV/bin/airflow is missing: run 'make venv' first"
    if ! "$VENV/bin/python" -c "import psycopg2, asyncpg" 2>/dev/null; then
        log "pip install ${PG_PY_DRIVERS[*]} into .venv (PostgreSQL drivers for the metadata DB)"
        "$VENV/bin/pip" install -q "${PG_PY_DRIVERS[@]}"
    fi
}

# --- PostgreSQL --------------------------------------------------------------------------------------
# initdb refuses to run as root: as root the cluster belongs to the `postgres` OS user. From /, since
# that user may not enter the repository (every path handed to it is absolute).
as_pg() {
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_running() {
    local bin
    bin="$(pg_bindir)" || return 1
    [ -f "$PGDATA/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

pg_psql() {
    as_pg psql -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

pg_up() {
    local bin
    bin="$(pg_bindir)"
    if [ "$PG_ROOT" != "$PG_STATE" ] && [ "$(readlink "$PG_STATE" 2>/dev/null)" != "$PG_ROOT" ]; then
        # Not (or no longer) linked from the repository: what is there is left from a removed .local.
        pg_running && die "a PostgreSQL cluster runs in $PG_ROOT but $PG_STATE does not point to it: make airflow-down first"
        [ ! -e "$PG_ROOT" ] || log "removing the unlinked cluster $PG_ROOT"
        rm -rf "$PG_ROOT" "$PG_STATE"
        mkdir -p "$(dirname "$PG_STATE")"
        ln -sfn "$PG_ROOT" "$PG_STATE"
    fi
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        log "initdb $PGDATA"
        mkdir -p "$PG_ROOT"
        if [ "$(id -u)" = 0 ]; then
            id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (it comes with the postgresql package)"
            chown postgres:postgres "$PG_ROOT"
            chmod 700 "$PG_ROOT"
            runuser -u postgres -- test -w "$PG_ROOT" \
                || die "the postgres OS user cannot write $PG_ROOT (is a parent directory closed to other users?)"
        fi
        rm -rf "$PGDATA"
        as_pg "$bin/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=peer --auth-host=scram-sha-256 --no-instructions >"$PG_ROOT/initdb.log" 2>&1 \
            || { tail -n 20 "$PG_ROOT/initdb.log" >&2; die "initdb failed"; }
    fi
    if ! pg_running; then
        port_in_use "$PG_PORT" && die "$BIND:$PG_PORT is taken by another program (set AIRFLOW_REAL_PG_PORT)"
        as_pg mkdir -p "$PG_SOCKET_DIR"
        log "starting PostgreSQL on $BIND:$PG_PORT"
        # Port, address and socket on the command line, so the cluster follows AIRFLOW_REAL_PG_PORT.
        as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 \
            -o "-c listen_addresses=$BIND -p $PG_PORT -c unix_socket_directories=$PG_SOCKET_DIR" start >/dev/null \
            || { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start (port $PG_PORT taken?)"; }
    fi
    if [ "$(pg_psql -c "SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")" != 1 ]; then
        pg_psql -c "CREATE ROLE airflow LOGIN PASSWORD 'airflow'"
    fi
    if [ "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = 'airflow'")" != 1 ]; then
        pg_psql -c "CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8'"
    fi
}

pg_down() {
    local bin
    bin="$(pg_bindir)" || return 0
    if pg_running; then
        log "stopping PostgreSQL"
        as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    fi
}

# --- Redis (the Celery broker) -------------------------------------------------------------------------
ensure_redis_installed() {
    command -v redis-server >/dev/null || apt_install redis-server
}

redis_pid() {
    local pid
    [ -f "$REDIS_DIR/redis.pid" ] || return 1
    pid="$(cat "$REDIS_DIR/redis.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis \
        && echo "$pid"
}

redis_up() {
    local i
    redis_pid >/dev/null && return 0
    port_in_use "$REDIS_PORT" && die "$BIND:$REDIS_PORT is taken by another program (set AIRFLOW_REAL_REDIS_PORT or REPORTS_REDIS_PORT)"
    mkdir -p "$REDIS_DIR"
    # A config file rather than arguments: quoted, the paths may hold spaces. No persistence: the queue
    # only holds what the scheduler re-sends after a restart anyway.
    cat >"$REDIS_DIR/redis.conf" <<CONF
bind $BIND
port $REDIS_PORT
protected-mode yes
daemonize no
dir "$REDIS_DIR"
logfile "$REDIS_DIR/redis.log"
save ""
appendonly no
CONF
    log "starting redis-server on $BIND:$REDIS_PORT (state ${REDIS_DIR#"$REPO_ROOT"/})"
    setsid redis-server "$REDIS_DIR/redis.conf" </dev/null >/dev/null 2>&1 &
    echo $! >"$REDIS_DIR/redis.pid"
    for i in $(seq 1 50); do
        [ "$(redis-cli -h "$BIND" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        redis_pid >/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "redis-server did not answer on $BIND:$REDIS_PORT"
}

redis_down() {
    local pid i
    pid="$(redis_pid)" || { rm -f "$REDIS_DIR/redis.pid"; return 0; }
    log "stopping redis-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$REDIS_DIR/redis.pid"
}

# The bucket the task logs of a Celery stack go to (remote logging through reports_s3).
ensure_log_bucket() {
    LOG_BUCKET="$LOG_BUCKET" "$VENV/bin/python" "$REPO_ROOT/scripts/airflow_setup.py" log-bucket \
        || die "cannot create the task-log bucket s3://$LOG_BUCKET on reports_s3 (is S3 up? make services)"
}

# Waits until every Celery worker logged "ready" since its start (it then consumes the queue).
wait_workers_ready() {
    local name log_file deadline=$((SECONDS + UP_TIMEOUT))
    for name in "${COMPONENTS[@]}"; do
        case "$name" in celery-worker-*) ;; *) continue ;; esac
        log_file="$REAL_HOME/$name.log"
        until awk '/^==== /{ready=0} /@[^ ]+ ready\./{ready=1} END{exit !ready}' "$log_file" 2>/dev/null; do
            pid_of "$name" >/dev/null || { tail -n 30 "$log_file" >&2; die "$name exited while starting"; }
            [ "$SECONDS" -lt "$deadline" ] || die "$name not ready after ${UP_TIMEOUT}s (see $log_file)"
            sleep 1
        done
        log "$name ready ($(worker_name "$name"), AIRFLOW_HOME ${REAL_HOME#"$REPO_ROOT"/}/workers/$(worker_name "$name"))"
    done
}

# --- the deployment's environment ---------------------------------------------------------------------
secrets_file() {
    local file="$REAL_HOME/secrets.env"
    if [ ! -s "$file" ]; then
        mkdir -p "$REAL_HOME"
        (
            umask 077
            "$VENV/bin/python" "$REPO_ROOT/scripts/airflow_setup.py" secrets >"$file.tmp"
            mv "$file.tmp" "$file"
        )
    fi
    echo "$file"
}

real_env() {
    [ -f scripts/env.sh ] || die "scripts/env.sh is missing"
    # shellcheck source=/dev/null
    source scripts/env.sh >/dev/null
    # shellcheck source=/dev/null
    source "$(secrets_file)"
    export PATH="$VENV/bin:$PATH"
    export AIRFLOW_HOME="$REAL_HOME"
    export REPORTS_SNAPSHOT_PATH="$REAL_HOME/report_pipeline/admin_snapshot.json"
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow:airflow@$BIND:$PG_PORT/airflow"
    if [ "$EXECUTOR" = celery ]; then
        export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
        export AIRFLOW__CELERY__BROKER_URL="redis://$BIND:$REDIS_PORT/0"
        export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg2://airflow:airflow@$BIND:$PG_PORT/airflow"
        export AIRFLOW__CELERY__WORKER_CONCURRENCY="$WORKER_CONCURRENCY"
        # Workers share no disk with the api-server: task logs go to S3 and are read back from there.
        export AIRFLOW__LOGGING__REMOTE_LOGGING=True
        export AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID=reports_s3
        export AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER="s3://$LOG_BUCKET/$(basename "$REAL_HOME")"
    else
        export AIRFLOW__CORE__EXECUTOR=LocalExecutor
    fi
    if [ -n "$TI_HEARTBEAT_TIMEOUT" ]; then
        export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="$TI_HEARTBEAT_TIMEOUT"
        # Look for silent task instances at least every 5 s, so a dead worker's tasks are failed soon after the timeout.
        export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5
    fi
    export AIRFLOW__CORE__PARALLELISM="$PARALLELISM"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
    # Besides the admin, two users for the freshness page's access tests (tests/airflow_real): a viewer,
    # who may read every DAG, and a user with no role, who may read none.
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$ADMIN_USER:admin,rp_reader:viewer,rp_norole:"
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$REAL_HOME/simple_auth_manager_passwords.json"
    export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://$BIND:$API_PORT/execution/"
    export AIRFLOW__API__HOST="$BIND"
    export AIRFLOW__API__PORT="$API_PORT"
    export AIRFLOW__API__BASE_URL="http://$BIND:$API_PORT"
    # The repository's plugins/ (the "Report freshness" page), not $AIRFLOW_HOME/plugins.
    export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO_ROOT/plugins"
    export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
    export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
    # scripts/pythonpath/airflow_local_settings.py: every component imports boto3 and the providers'
    # hooks once at start-up, so the task processes forked from the scheduler's LocalExecutor workers
    # and from the Celery workers have them already (report_pipeline.airflow.preload).
    export PYTHONPATH="$REPO_ROOT/scripts/pythonpath${PYTHONPATH:+:$PYTHONPATH}"
}

print_env() {
    real_env
    local name
    for name in $(compgen -e | sort); do
        case "$name" in
            AIRFLOW_HOME | AIRFLOW__* | AIRFLOW_CONN_* | REPORTS_* | REPO_ROOT | PATH)
                printf 'export %s=%q\n' "$name" "${!name}" ;;
        esac
    done
}

# --- the Airflow processes ------------------------------------------------------------------------------
pid_of() {
    # The pid in the component's pid file, if that process still runs an airflow command (a Celery
    # worker renames itself "[celeryd: <node>:MainProcess] ...").
    local file="$REAL_HOME/$1.pid" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq 'airflow|celeryd:' \
        && echo "$pid"
}

component_cmd() {
    case "$1" in
        api-server) echo "airflow api-server --host $BIND --port $API_PORT" ;;
        scheduler) echo "airflow scheduler --skip-serve-logs" ;;
        dag-processor) echo "airflow dag-processor" ;;
        triggerer) echo "airflow triggerer --skip-serve-logs" ;;
        # %h: Celery puts the machine's hostname there; the node name before @ is what tells workers apart.
        celery-worker-*) echo "airflow celery worker --celery-hostname $(worker_name "$1")@%h --skip-serve-logs" ;;
    esac
}

# celery-worker-N -> rp-worker-N: the worker's hostname, in task instances and in Celery's node name.
worker_name() { echo "rp-worker-${1#celery-worker-}"; }

worker_home() { echo "$REAL_HOME/workers/$(worker_name "$1")"; }

# A worker's own machine, as far as one machine can give it: AIRFLOW_HOME (with its airflow-worker.pid,
# task logs and admin snapshot), TMPDIR and the hostname its task instances report.
worker_env() {
    local home
    home="$(worker_home "$1")"
    mkdir -p "$home/tmp"
    export AIRFLOW_HOME="$home"
    export TMPDIR="$home/tmp"
    export REPORTS_SNAPSHOT_PATH="$home/report_pipeline/admin_snapshot.json"
    export REPORTS_WORKER_HOSTNAME
    REPORTS_WORKER_HOSTNAME="$(worker_name "$1")"
    export AIRFLOW__CORE__HOSTNAME_CALLABLE=rp_worker_hostname.hostname
}

start_component() {
    local name="$1" cmd
    local -a argv
    cmd="$(component_cmd "$name")"
    read -r -a argv <<<"$cmd"
    log "starting $cmd (log ${REAL_HOME#"$REPO_ROOT"/}/$name.log)"
    echo "==== $(date -u +%FT%TZ) $cmd" >>"$REAL_HOME/$name.log"
    # setsid: each component leads its own process group, so `down` also stops its children
    # (LocalExecutor workers, task processes, api-server workers). A subshell keeps a worker's
    # environment its own.
    (
        case "$name" in celery-worker-*) worker_env "$name" ;; esac
        setsid "${argv[@]}" >>"$REAL_HOME/$name.log" 2>&1 </dev/null &
        echo $! >"$REAL_HOME/$name.pid"
    )
}

descendants() {
    # All processes below $1 (task processes put themselves into process groups of their own). Reads
    # /proc directly: procps (ps) is not part of a minimal Debian.
    local f line pid q
    local -a fields
    local -A parent=()
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        pid="${line%% *}"
        read -r -a fields <<<"${line##*) }"
        parent[$pid]="${fields[1]}"
    done
    for pid in "${!parent[@]}"; do
        q="$pid"
        while [ -n "${parent[$q]:-}" ] && [ "$q" != "$1" ] && [ "$q" -gt 1 ]; do q="${parent[$q]}"; done
        [ "$q" = "$1" ] && [ "$pid" != "$1" ] && echo "$pid"
    done
    return 0
}

# Stops the named components together: SIGTERM to each one's process group at once, then up to 30 s
# for all of them, then SIGKILL to whatever is left (one by one, a stop took that long for each).
stop_components() {
    local name pid i waiting rest=""
    local -a pids=() names=()
    for name in "$@"; do
        if pid="$(pid_of "$name")"; then
            log "stopping $name (pid $pid)"
            rest+=" $(descendants "$pid" | tr '\n' ' ')"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            names+=("$name")
        fi
    done
    for i in $(seq 1 60); do
        waiting=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && waiting=1; done
        [ "$waiting" = 0 ] && break
        sleep 0.5
    done
    for i in "${!pids[@]}"; do
        pid="${pids[i]}"
        kill -0 "$pid" 2>/dev/null && log "${names[i]} did not stop in 30 s: SIGKILL"
        # Leftovers: the group, and task processes that outlived their parent in groups of their own.
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    # shellcheck disable=SC2086
    [ -z "${rest// /}" ] || kill -KILL $rest 2>/dev/null || true
    for name in "$@"; do rm -f "$REAL_HOME/$name.pid"; done
}

log_tails() {
    local name
    for name in "${COMPONENTS[@]}"; do
        [ -f "$REAL_HOME/$name.log" ] || continue
        echo "----- last lines of ${REAL_HOME#"$REPO_ROOT"/}/$name.log" >&2
        tail -n 30 "$REAL_HOME/$name.log" >&2
    done
    if [ -f "$PG_LOG" ]; then
        echo "----- last lines of ${PG_LOG#"$REPO_ROOT"/}" >&2
        tail -n 10 "$PG_LOG" >&2
    fi
}

# Polls the api-server until every component reports healthy with a heartbeat from after $1 (epoch
# seconds; older ones are the previous processes') and the DAG was parsed since then without an import
# error; fails early when one of the started processes dies.
wait_ready() {
    SINCE="$1" AIRFLOW_LOCAL_PIDS="$(for c in "${COMPONENTS[@]}"; do printf '%s=%s ' "$c" "$(cat "$REAL_HOME/$c.pid")"; done)" \
    API="http://$BIND:$API_PORT" DAG_ID="$DAG_ID" TIMEOUT="$UP_TIMEOUT" \
    ADMIN_USER="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
        "$VENV/bin/python" "$REPO_ROOT/scripts/airflow_ready.py"
}

write_passwords_file() {
    # SimpleAuthManager generates a random password per user unless the file has one: write ours.
    ADMIN_USER="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$VENV/bin/python" "$REPO_ROOT/scripts/airflow_setup.py" passwords
}

# GET an api-server URL; prints the body, fails when there is no 2xx answer (no curl on a bare Debian).
http_get() {
    "$VENV/bin/python" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "$1" 2>/dev/null
}

all_running() {
    local name
    pg_running || return 1
    for name in "${COMPONENTS[@]}"; do pid_of "$name" >/dev/null || return 1; done
}

cmd_up() {
    local t0=$SECONDS name
    ensure_postgres_installed
    ensure_python_drivers
    real_env
    mkdir -p "$REAL_HOME"
    if [ -f "$STACK_FILE" ] && pid_of scheduler >/dev/null; then
        local running
        running="$(sed -n 's/^EXECUTOR=//p' "$STACK_FILE")"
        [ "$running" = "$EXECUTOR" ] \
            || die "the stack in ${REAL_HOME#"$REPO_ROOT"/} runs with EXECUTOR=$running; stop it first (make airflow-down)"
    fi
    if all_running && http_get "http://$BIND:$API_PORT/api/v2/monitor/health" >/dev/null; then
        log "already running: nothing to do (UI http://$BIND:$API_PORT/, login $ADMIN_USER / $ADMIN_PASSWORD)"
        return 0
    fi
    # From here on a failure stops everything again, so nothing half-started is left behind.
    trap 'rc=$?; if [ $rc != 0 ]; then log_tails; log "airflow-up failed: stopping what runs"; cmd_down; fi; exit $rc' EXIT
    if ! pid_of api-server >/dev/null && port_in_use "$API_PORT"; then
        die "$BIND:$API_PORT is taken by another program (set AIRFLOW_REAL_PORT)"
    fi
    pg_up
    if [ "$EXECUTOR" = celery ]; then
        ensure_redis_installed
        redis_up
        ensure_log_bucket
    fi
    log "airflow db migrate"
    airflow db migrate >"$REAL_HOME/db-migrate.log" 2>&1 \
        || { tail -n 40 "$REAL_HOME/db-migrate.log" >&2; die "airflow db migrate failed"; }
    cat >"$REAL_HOME/pools.json" <<JSON
{
  "reports_source": {"slots": $SOURCE_SLOTS, "description": "connections to the source (production) MySQL", "include_deferred": false},
  "reports_target": {"slots": $TARGET_SLOTS, "description": "connections to the target (reporting) MySQL", "include_deferred": false}
}
JSON
    airflow pools import "$REAL_HOME/pools.json" >"$REAL_HOME/pools.log" 2>&1 \
        || { cat "$REAL_HOME/pools.log" >&2; die "airflow pools import failed"; }
    write_passwords_file
    if [ "$DEMO_SETUP" = true ]; then
        log "report-pipeline demo-setup"
        report-pipeline demo-setup >"$REAL_HOME/demo-setup.log" 2>&1 \
            || { tail -n 40 "$REAL_HOME/demo-setup.log" >&2; die "report-pipeline demo-setup failed (are the services up? make services)"; }
        # The admin rows were just rewritten: the DAG file must not build from an older snapshot, on
        # the DAG processor nor on any worker.
        rm -f "$REPORTS_SNAPSHOT_PATH" "$REAL_HOME"/workers/*/report_pipeline/admin_snapshot.json
    fi
    printf 'EXECUTOR=%s\nWORKERS=%s\nTI_HEARTBEAT_TIMEOUT=%s\nREDIS_PORT=%s\n' "$EXECUTOR" \
        "$([ "$EXECUTOR" = celery ] && echo "$WORKERS" || echo 0)" "${TI_HEARTBEAT_TIMEOUT:-300}" "$REDIS_PORT" >"$STACK_FILE"
    local since
    since="$(date +%s)"
    for name in "${COMPONENTS[@]}"; do
        pid_of "$name" >/dev/null || start_component "$name"
    done
    log "waiting for the api-server, the components' health and the DAG (up to ${UP_TIMEOUT}s)"
    wait_ready "$since" || die "the stack did not become ready"
    wait_workers_ready
    trap - EXIT
    log "up in $((SECONDS - t0)) s"
    cat <<EOF

Airflow UI:  http://$BIND:$API_PORT/dags/$DAG_ID
Log in with: $ADMIN_USER / $ADMIN_PASSWORD   (REST: POST http://$BIND:$API_PORT/auth/token)
CLI:         scripts/airflow_local.sh airflow dags list
Executor:    $EXECUTOR$([ "$EXECUTOR" = celery ] && echo " (Redis $BIND:$REDIS_PORT, $WORKERS workers rp-worker-1..$WORKERS, task logs in s3://$LOG_BUCKET)")
Logs:        ${REAL_HOME#"$REPO_ROOT"/}/{api-server,scheduler,dag-processor,triggerer}.log, task logs in ${REAL_HOME#"$REPO_ROOT"/}/logs
Stop:        make airflow-down (with the same AIRFLOW_REAL_* overrides)
EOF
}

cmd_down() {
    local name file
    local -a names=()
    # Workers too, whatever EXECUTOR says now: the stack may have been started with another one.
    for file in "$REAL_HOME"/celery-worker-*.pid; do
        [ -f "$file" ] && names+=("$(basename "$file" .pid)")
    done
    for name in "${COMPONENTS[@]}"; do
        case " ${names[*]} " in *" $name "*) ;; *) names+=("$name") ;; esac
    done
    stop_components "${names[@]}"
    redis_down
    pg_down
}

cmd_status() {
    local name pid rc=0
    for name in "${COMPONENTS[@]}"; do
        if pid="$(pid_of "$name")"; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    if pg_running; then echo "postgresql: running ($BIND:$PG_PORT, $PGDATA)"; else echo "postgresql: stopped"; rc=1; fi
    if [ "$EXECUTOR" = celery ]; then
        if pid="$(redis_pid)"; then echo "redis: running ($BIND:$REDIS_PORT, pid $pid)"; else echo "redis: stopped"; rc=1; fi
    fi
    if http_get "http://$BIND:$API_PORT/api/v2/monitor/health"; then :; else echo "api-server: no answer on http://$BIND:$API_PORT"; fi
    return $rc
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    ui-deps) ensure_chromium ;;
    airflow)
        shift
        real_env
        exec airflow "$@"
        ;;
    *)
        echo "usage: $0 up|down|status|env|ui-deps|airflow ARGS..." >&2
        exit 2
        ;;
esac
