# shellcheck shell=bash
# Local wiring for report-pipeline: source this file (bash, zsh or POSIX sh),
#   . scripts/env.sh
# Every variable except REPO_ROOT keeps a value that is already set, so any of
# them can be overridden from the environment. The services themselves are
# started by scripts/services.sh, which uses the same port defaults.

# REPO_ROOT: always computed from this file's location.
if [ -n "${BASH_SOURCE:-}" ]; then
    _reports_env_file=$BASH_SOURCE
elif [ -n "${ZSH_VERSION:-}" ]; then
    eval '_reports_env_file=${(%):-%x}'
else
    # POSIX sh (e.g. make's /bin/sh) cannot tell which file is being sourced:
    # use an already exported REPO_ROOT, else the git checkout of the current
    # directory.
    if [ -n "${REPO_ROOT:-}" ] && [ -f "$REPO_ROOT/scripts/env.sh" ]; then
        _reports_env_file=$REPO_ROOT/scripts/env.sh
    else
        _reports_env_file=$(git rev-parse --show-toplevel 2>/dev/null || pwd)/scripts/env.sh
    fi
    if [ ! -f "$_reports_env_file" ]; then
        echo "scripts/env.sh: cannot locate the repository from $(pwd); source it from the repository root" >&2
    fi
fi
REPO_ROOT=$(cd -- "$(dirname -- "$_reports_env_file")/.." && pwd)
unset _reports_env_file
export REPO_ROOT

# Local services (scripts/services.sh).
export REPORTS_MYSQL_PORT="${REPORTS_MYSQL_PORT:-3307}"
export REPORTS_S3_PORT="${REPORTS_S3_PORT:-8333}"
# A real replica of the database rp_replicated (scripts/services.sh), for the replica tests.
export REPORTS_REPLICA_PORT="${REPORTS_REPLICA_PORT:-$((REPORTS_MYSQL_PORT + 1))}"
export REPORTS_MYSQL_SOCKET="${REPORTS_MYSQL_SOCKET:-$REPO_ROOT/.local/mysql/mysql.sock}"
# The server's secure_file_priv: SELECT ... INTO OUTFILE / LOAD DATA INFILE
# (server-side) only work with files in this directory.
export REPORTS_MYSQL_FILES_DIR="${REPORTS_MYSQL_FILES_DIR:-$REPO_ROOT/.local/mysql-files}"
export REPORTS_S3_ENDPOINT_URL="${REPORTS_S3_ENDPOINT_URL:-http://127.0.0.1:$REPORTS_S3_PORT}"

# Airflow.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO_ROOT/.local/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO_ROOT/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"

# Airflow connections (the ids are a contract with the DAG code), as the demo user rp_demo (see
# scripts/services.sh: a password no log line contains, so Airflow's masker never hides real text).
# reports_target_db: `local_infile=true` is only a marker; MySqlHook
# (providers-mysql 6.7.1, mysqlclient) ignores it in the extra and enables
# LOAD DATA LOCAL INFILE only when constructed with local_infile=True.
export AIRFLOW_CONN_REPORTS_ADMIN_DB="${AIRFLOW_CONN_REPORTS_ADMIN_DB:-mysql://rp_demo:rp-demo-7Kq2@127.0.0.1:$REPORTS_MYSQL_PORT/reports_admin?charset=utf8mb4}"
export AIRFLOW_CONN_REPORTS_SOURCE_DB="${AIRFLOW_CONN_REPORTS_SOURCE_DB:-mysql://rp_demo:rp-demo-7Kq2@127.0.0.1:$REPORTS_MYSQL_PORT/source?charset=utf8mb4}"
export AIRFLOW_CONN_REPORTS_TARGET_DB="${AIRFLOW_CONN_REPORTS_TARGET_DB:-mysql://rp_demo:rp-demo-7Kq2@127.0.0.1:$REPORTS_MYSQL_PORT/?charset=utf8mb4&local_infile=true}"
_reports_s3_conn='{"conn_type":"aws","login":"any","password":"any","extra":{"endpoint_url":"http://127.0.0.1:'"$REPORTS_S3_PORT"'","region_name":"us-east-1","config_kwargs":{"s3":{"addressing_style":"path"}}}}'
export AIRFLOW_CONN_REPORTS_S3="${AIRFLOW_CONN_REPORTS_S3:-$_reports_s3_conn}"
unset _reports_s3_conn
