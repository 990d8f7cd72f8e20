#!/usr/bin/env bash
# Least-privilege MySQL accounts for report-pipeline: one user per Airflow connection, each allowed
# exactly what the pipeline does with that connection (docs/security.md explains every grant).
#
# Usage: scripts/least_privilege.sh sql|apply|drop
#
#   sql    print the statements (CREATE USER ... / GRANT ...) without running them
#   apply  run them as the local admin (root) through `scripts/services.sh sql`; idempotent
#   drop   drop the three users (through `scripts/services.sh sql`)
#
# Settings (environment; defaults in brackets):
#   RP_ADMIN_USER [rp_admin]    RP_ADMIN_PASSWORD   (required for sql/apply)
#   RP_SOURCE_USER [rp_source]  RP_SOURCE_PASSWORD  (required for sql/apply)
#   RP_TARGET_USER [rp_target]  RP_TARGET_PASSWORD  (required for sql/apply)
#   RP_USER_HOST [%]                      host part of every account
#   RP_ADMIN_SCHEMA [reports_admin]       the admin schema:  SELECT only
#   RP_SOURCE_SCHEMA [source]             the source schema: SELECT only
#   RP_TARGET_SCHEMA_PATTERN [rpt\_%]     LIKE pattern of the company target schemas, matching
#                                         REPORTS_TARGET_SCHEMA_TEMPLATE (default rpt_{alias});
#                                         escape `_` as `\_`, or it matches any one character
#
# Passwords have no defaults on purpose: a script that ships one invites deploying it.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

ADMIN_USER=${RP_ADMIN_USER:-rp_admin}
SOURCE_USER=${RP_SOURCE_USER:-rp_source}
TARGET_USER=${RP_TARGET_USER:-rp_target}
USER_HOST=${RP_USER_HOST:-%}
ADMIN_SCHEMA=${RP_ADMIN_SCHEMA:-reports_admin}
SOURCE_SCHEMA=${RP_SOURCE_SCHEMA:-source}
TARGET_PATTERN=${RP_TARGET_SCHEMA_PATTERN:-rpt\\_%}

die() { printf 'least_privilege.sh: %s\n' "$*" >&2; exit 1; }

# Names end up inside quotes and backticks: refuse anything that could break out of them.
check_name() {
    [[ $2 =~ ^[A-Za-z0-9_$%\\.-]+$ ]] || die "$1=$2 may only hold letters, digits and _ \$ % \\ . -"
}

sql_string() {  # a MySQL single-quoted literal (backslashes and quotes escaped)
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\\\'}"
}

check_names() {
    check_name RP_ADMIN_USER "$ADMIN_USER"
    check_name RP_SOURCE_USER "$SOURCE_USER"
    check_name RP_TARGET_USER "$TARGET_USER"
    check_name RP_USER_HOST "$USER_HOST"
    check_name RP_ADMIN_SCHEMA "$ADMIN_SCHEMA"
    check_name RP_SOURCE_SCHEMA "$SOURCE_SCHEMA"
    check_name RP_TARGET_SCHEMA_PATTERN "$TARGET_PATTERN"
}

# One account: created if missing, password (re)set, and every earlier grant revoked first, so
# re-running with other schemas leaves exactly the new grants (idempotent, never additive).
account() {  # account USER PASSWORD GRANT...
    local user=$1 password=$2 grant
    shift 2
    [[ -n $password ]] || die "no password for $user (set the RP_*_PASSWORD variable)"
    local who="'$user'@'$USER_HOST'"
    printf 'CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;\n' "$who" "$(sql_string "$password")"
    printf 'ALTER USER %s IDENTIFIED BY %s;\n' "$who" "$(sql_string "$password")"
    printf 'REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s;\n' "$who"
    for grant in "$@"; do
        printf '%s TO %s;\n' "$grant" "$who"
    done
}

statements() {
    check_names
    account "$ADMIN_USER" "${RP_ADMIN_PASSWORD:-}" \
        "GRANT SELECT ON \`$ADMIN_SCHEMA\`.*"
    account "$SOURCE_USER" "${RP_SOURCE_PASSWORD:-}" \
        "GRANT SELECT ON \`$SOURCE_SCHEMA\`.*"
    # REPLACE and LOAD DATA ... REPLACE need DELETE; a swap needs CREATE/DROP/ALTER (CREATE TABLE
    # LIKE, RENAME TABLE); onboarding creates the schema itself (CREATE on the pattern). No FILE:
    # LOAD DATA LOCAL reads the file on the client, which FILE does not govern.
    account "$TARGET_USER" "${RP_TARGET_PASSWORD:-}" \
        "GRANT SELECT, INSERT, DELETE, CREATE, DROP, ALTER ON \`$TARGET_PATTERN\`.*"
}

drop_statements() {
    check_names
    local user
    for user in "$ADMIN_USER" "$SOURCE_USER" "$TARGET_USER"; do
        printf "DROP USER IF EXISTS '%s'@'%s';\n" "$user" "$USER_HOST"
    done
}

case ${1:-} in
    sql) statements ;;
    apply)
        sql=$(statements)
        bash "$SCRIPT_DIR/services.sh" sql <<<"$sql"
        ;;
    drop)
        sql=$(drop_statements)
        bash "$SCRIPT_DIR/services.sh" sql <<<"$sql"
        ;;
    *) die "usage: $0 sql|apply|drop" ;;
esac
