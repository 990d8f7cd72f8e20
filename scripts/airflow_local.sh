#!/usr/bin/env bash
# A real local Airflow 3.3 for this repository, run the way users run it: api-server, scheduler
# (LocalExecutor), dag-processor and triggerer as separate processes on a PostgreSQL metadata DB.
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
# State: .local/postgres (cluster, owned by the `postgres` OS user) and .local/airflow-real
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
# AIRFLOW_CONN_REPORTS_* and REPORTS_* already set in the caller's environment are kept (scripts/env.sh
# only fills what is unset), so the deployment can point at other admin/source/target schemas.
abs_path() { case "$1" in /*) echo "$1" ;; *) echo "$REPO_ROOT/$1" ;; esac; }
REAL_HOME="$(abs_path "${AIRFLOW_REAL_HOME:-.local/airflow-real}")"
PG_ROOT="$(abs_path "${AIRFLOW_REAL_PG_DIR:-.local/postgres}")"
PARALLELISM="${AIRFLOW_REAL_PARALLELISM:-8}"
SOURCE_SLOTS="${AIRFLOW_REAL_SOURCE_SLOTS:-4}"
TARGET_SLOTS="${AIRFLOW_REAL_TARGET_SLOTS:-4}"
case "${AIRFLOW_REAL_DEMO:-1}" in 0 | false | no | off) DEMO_SETUP=false ;; *) DEMO_SETUP="${REPORTS_DEMO_SETUP:-true}" ;; esac
PGDATA="$PG_ROOT/data"
PG_SOCKET_DIR="$PG_ROOT/run"
PG_LOG="$PG_ROOT/postgres.log"
ADMIN_USER="${AIRFLOW_REAL_ADMIN_USER:-admin}"
ADMIN_PASSWORD="${AIRFLOW_REAL_ADMIN_PASSWORD:-admin}"
UP_TIMEOUT="${AIRFLOW_REAL_UP_TIMEOUT:-240}"
COMPONENTS=(api-server scheduler dag-processor triggerer)
DAG_ID=populate_report_databases
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
# initdb refuses to run as root: as root the cluster belongs to the `postgres` OS user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
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

# --- the deployment's environment ---------------------------------------------------------------------
secrets_file() {
    local file="$REAL_HOME/secrets.env"
    if [ ! -s "$file" ]; then
        mkdir -p "$REAL_HOME"
        (
            umask 077
            "$VENV/bin/python" - >"$file.tmp" <<'PY'
import secrets
from cryptography.fernet import Fernet
print(f"export AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}")
print(f"export AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
print(f"export AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")
PY
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
    export AIRFLOW__CORE__EXECUTOR=LocalExecutor
    export AIRFLOW__CORE__PARALLELISM="$PARALLELISM"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$ADMIN_USER:admin"
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
    # The pid in the component's pid file, if that process still runs an airflow command.
    local file="$REAL_HOME/$1.pid" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q airflow \
        && echo "$pid"
}

component_cmd() {
    case "$1" in
        api-server) echo "airflow api-server --host $BIND --port $API_PORT" ;;
        scheduler) echo "airflow scheduler --skip-serve-logs" ;;
        dag-processor) echo "airflow dag-processor" ;;
        triggerer) echo "airflow triggerer --skip-serve-logs" ;;
    esac
}

start_component() {
    local name="$1" cmd
    cmd="$(component_cmd "$name")"
    log "starting $cmd (log ${REAL_HOME#"$REPO_ROOT"/}/$name.log)"
    echo "==== $(date -u +%FT%TZ) $cmd" >>"$REAL_HOME/$name.log"
    # setsid: each component leads its own process group, so `down` also stops its children
    # (LocalExecutor workers, task processes, api-server workers).
    # shellcheck disable=SC2086
    setsid $cmd >>"$REAL_HOME/$name.log" 2>&1 </dev/null &
    echo $! >"$REAL_HOME/$name.pid"
}

descendants() {
    # All processes below $1 (task processes put themselves into process groups of their own). Reads
    # /proc directly: procps (ps) is not part of a minimal Debian.
    local f line pid q
    local -a fields
    local -A parent=()
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
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

stop_component() {
    local name="$1" pid i rest
    if pid="$(pid_of "$name")"; then
        log "stopping $name (pid $pid)"
        rest="$(descendants "$pid" | tr '\n' ' ')"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop in 30 s: SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        # Leftovers: the group, and task processes that outlived their parent in groups of their own.
        kill -KILL -- "-$pid" 2>/dev/null || true
        # shellcheck disable=SC2086
        [ -z "$rest" ] || kill -KILL $rest 2>/dev/null || true
    fi
    rm -f "$REAL_HOME/$name.pid"
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
        "$VENV/bin/python" - <<'PY'
import datetime as dt, json, os, sys, time, urllib.error, urllib.request

api, dag_id = os.environ["API"], os.environ["DAG_ID"]
since = dt.datetime.fromtimestamp(float(os.environ["SINCE"]), dt.timezone.utc)
deadline = time.monotonic() + float(os.environ["TIMEOUT"])
pids = dict(item.split("=") for item in os.environ["AIRFLOW_LOCAL_PIDS"].split())


def call(path, data=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    with urllib.request.urlopen(urllib.request.Request(api + path, body, headers), timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def fresh(stamp):
    return bool(stamp) and dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) >= since


def check_alive():
    for name, pid in pids.items():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"{name} (pid {pid}) exited while waiting for the stack")


last, stage = "no answer yet", "health"
while time.monotonic() < deadline:
    check_alive()
    try:
        if stage == "health":
            health = call("/api/v2/monitor/health")
            states = {k: (v or {}).get("status") for k, v in health.items()}
            beats = {k: v.get(f"latest_{k}_heartbeat") for k, v in health.items() if k != "metadatabase"}
            if all(s == "healthy" for s in states.values()) and len(states) >= 4 and all(map(fresh, beats.values())):
                print(f"healthy: {states}", file=sys.stderr)
                stage = "dag"
            else:
                last = f"health {states}, heartbeats {beats}"
        if stage == "dag":
            token = call("/auth/token", {"username": os.environ["ADMIN_USER"], "password": os.environ["ADMIN_PASSWORD"]})["access_token"]
            errors = call("/api/v2/importErrors?limit=100", token=token)["import_errors"]
            mine = [e for e in errors if os.path.basename(e.get("filename", "")) == f"{dag_id}.py"]
            if mine and fresh(mine[0].get("timestamp")):
                sys.exit(f"import error in the DAG file:\n{mine[0].get('stack_trace')}")
            try:
                dag = call(f"/api/v2/dags/{dag_id}", token=token)
                if fresh(dag.get("last_parsed_time")) and not mine:
                    print(f"dag {dag_id} listed (paused={dag.get('is_paused')})", file=sys.stderr)
                    sys.exit(0)
                last = f"dag {dag_id} not parsed since the start yet (last {dag.get('last_parsed_time')})"
            except urllib.error.HTTPError as exc:
                last = f"GET /api/v2/dags/{dag_id}: HTTP {exc.code} (not parsed yet?)"
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        last = f"{type(exc).__name__}: {exc}"
    time.sleep(2)
sys.exit(f"timed out after {os.environ['TIMEOUT']} s; last: {last}")
PY
}

write_passwords_file() {
    # SimpleAuthManager generates a random password per user unless the file has one: write ours.
    ADMIN_USER="$ADMIN_USER" ADMIN_PASSWORD="$ADMIN_PASSWORD" "$VENV/bin/python" - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
passwords[os.environ["ADMIN_USER"]] = os.environ["ADMIN_PASSWORD"]
path.write_text(json.dumps(passwords) + "\n")
path.chmod(0o600)
PY
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
        # The admin rows were just rewritten: the DAG file must not build from an older snapshot.
        rm -f "$REPORTS_SNAPSHOT_PATH"
    fi
    local since
    since="$(date +%s)"
    for name in "${COMPONENTS[@]}"; do
        pid_of "$name" >/dev/null || start_component "$name"
    done
    log "waiting for the api-server, the components' health and the DAG (up to ${UP_TIMEOUT}s)"
    wait_ready "$since" || die "the stack did not become ready"
    trap - EXIT
    log "up in $((SECONDS - t0)) s"
    cat <<EOF

Airflow UI:  http://$BIND:$API_PORT/dags/$DAG_ID
Log in with: $ADMIN_USER / $ADMIN_PASSWORD   (REST: POST http://$BIND:$API_PORT/auth/token)
CLI:         scripts/airflow_local.sh airflow dags list
Logs:        ${REAL_HOME#"$REPO_ROOT"/}/{api-server,scheduler,dag-processor,triggerer}.log, task logs in ${REAL_HOME#"$REPO_ROOT"/}/logs
Stop:        make airflow-down (with the same AIRFLOW_REAL_* overrides)
EOF
}

cmd_down() {
    local i
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
    pg_down
}

cmd_status() {
    local name pid rc=0
    for name in "${COMPONENTS[@]}"; do
        if pid="$(pid_of "$name")"; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    if pg_running; then echo "postgresql: running ($BIND:$PG_PORT, $PGDATA)"; else echo "postgresql: stopped"; rc=1; fi
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
