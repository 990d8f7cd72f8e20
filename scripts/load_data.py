"""Data for the load test (issue 7, `make test-load`): many companies x 5 tables x N rows, kept in schemas
of their own so the demo data other tests use (`reports_admin`, `source`, per-alias targets) is untouched.

    python scripts/load_data.py env      the deployment's overrides, as `export` lines (eval them)
    python scripts/load_data.py setup    (re)create load_admin + load_source, onboard every company
    python scripts/load_data.py drop     drop load_admin, load_source, every ld_* target and rp-load-* bucket

Sizes: LOAD_COMPANIES (default 50, aliases ld01..ld50, company_id 1..N), LOAD_ROWS (default 10000 rows
per company and table), LOAD_TABLES (default 5 admin table rows per company; more repeat the five under
new names). Source tables hold every company's rows with a `company` column (50 x 10 000 = 500 000 rows
each); the five admin rows cover the three ways the admin DB names parameters: legacy
`company[1]`, legacy `company[1],date` with a 60-day look-back, and named placeholders with a date
window; one table loads by `swap`, the others by `upsert`. Awkward text (quotes, commas, newlines,
backslashes, tabs, 4-byte UTF-8) and NULLs are in the data on purpose.

Needs the local MariaDB and S3 of scripts/services.sh (REPORTS_MYSQL_PORT, REPORTS_S3_PORT); talks to
them directly (mysqlclient, boto3), the onboarding goes through report_pipeline.onboard.onboard.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Any

from serverkit import empty_bucket, mysql_connect, mysql_url, s3_client

ADMIN_SCHEMA = "load_admin"
SOURCE_SCHEMA = "load_source"
SCHEMA_TEMPLATE = "ld_{alias}"
BUCKET_TEMPLATE = "rp-load-{alias}"
LOGICAL_DATE = "2026-11-26"  # the run's logical date; every generated row lies inside its windows
LOOKBACK_DAYS = 60


def companies() -> int:
    return int(os.environ.get("LOAD_COMPANIES", "50"))


def rows_per_table() -> int:
    return int(os.environ.get("LOAD_ROWS", "10000"))


def table_count() -> int:
    """LOAD_TABLES (default 5): admin table rows per company; past the five source tables they repeat
    them under new names (``ld_users_2``, ...), so `make bench-fleet` can size M tables per company."""
    return int(os.environ.get("LOAD_TABLES", str(len(TABLES))))


def admin_tables(m: int | None = None) -> list[tuple[str, str, tuple[str, str, str, str]]]:
    """(table name, source table, admin row) of the first ``m`` tables: the five, then repeats."""
    m = table_count() if m is None else m
    found = []
    for i in range(m):
        source, _, _, (query, params, insert, mode) = TABLES[i % len(TABLES)]
        name = source if i < len(TABLES) else f"{source}_{i // len(TABLES) + 1}"
        found.append((name, source, (query, params, insert.replace(f"INTO {source}(", f"INTO {name}("), mode)))
    return found


def aliases(n: int | None = None) -> list[str]:
    n = companies() if n is None else n
    return [f"ld{i:02d}" for i in range(1, n + 1)]


# (name, source DDL, generated columns as SQL over c.seq (company) and r.seq (row number), admin row)
# The admin row: (query_select, params_select, query_insert, load_mode)
TABLES: tuple[tuple[str, str, str, tuple[str, str, str, str]], ...] = (
    (
        "ld_users",
        """CREATE TABLE ld_users (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  username VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
  email VARCHAR(128) NULL,
  KEY (company)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        "c.seq * 100000 + r.seq, c.seq, "
        "CONCAT(ELT(r.seq % 6 + 1, 'ana', 'chloé', 'o''brien', '李雷', 'emoji 😀', 'say \"hi\"'), '_', r.seq), "
        "IF(r.seq % 13 = 0, NULL, CONCAT('u', r.seq, '@c', c.seq, '.example'))",
        (
            "SELECT id, username, email FROM ld_users WHERE company = %s",
            "company[1]",
            "REPLACE INTO ld_users(id, username, email) VALUES ",
            "upsert",
        ),
    ),
    (
        "ld_orders",
        """CREATE TABLE ld_orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  user_id INT UNSIGNED NOT NULL,
  amount DECIMAL(12,2) NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  created_at DATETIME NOT NULL,
  KEY (company, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        "c.seq * 100000 + r.seq, c.seq, c.seq * 100000 + r.seq % 997 + 1, "
        "IF(r.seq % 9 = 0, NULL, (r.seq * 37 % 100000) / 100), ELT(r.seq % 4 + 1, 'new', 'paid', 'shipped', "
        "'cancelled'), TIMESTAMP('2026-11-25 23:59:59') - INTERVAL (r.seq * 397) SECOND",
        (
            "SELECT id, user_id, amount, status, created_at FROM ld_orders WHERE company = %s AND created_at >= %s",
            "company[1],date",
            "REPLACE INTO ld_orders(id, user_id, amount, status, created_at) VALUES ",
            "upsert",
        ),
    ),
    (
        "ld_events",
        """CREATE TABLE ld_events (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  payload TEXT NULL,
  happened_at DATETIME(6) NOT NULL,
  KEY (company, happened_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        "c.seq * 100000 + r.seq, c.seq, ELT(r.seq % 3 + 1, 'click', 'view', 'buy'), "
        "CASE WHEN r.seq % 7 = 0 THEN NULL WHEN r.seq % 11 = 0 THEN '' "
        'ELSE CONCAT(\'{"n": \', r.seq, \', "note": "line1\\nline2, ok\\t\\\\"}\') END, '
        "TIMESTAMP('2026-11-25 23:00:00') - INTERVAL (r.seq * 271 + r.seq % 1000) SECOND "
        "+ INTERVAL (r.seq % 999983) MICROSECOND",
        (
            "SELECT id, kind, payload, happened_at FROM ld_events WHERE company = %(company_id)s "
            "AND happened_at >= %(date_from)s AND happened_at < %(date_to)s",
            "",
            "INSERT INTO ld_events(id, kind, payload, happened_at) VALUES",
            "swap",
        ),
    ),
    (
        "ld_items",
        """CREATE TABLE ld_items (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  sku CHAR(12) NOT NULL,
  price DECIMAL(10,3) NOT NULL,
  stock SMALLINT NULL,
  active TINYINT(1) NOT NULL,
  KEY (company)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        "c.seq * 100000 + r.seq, c.seq, CONCAT('SKU', LPAD(r.seq, 9, '0')), (r.seq * 7919 % 1000000) / 1000, "
        "IF(r.seq % 17 = 0, NULL, CAST(r.seq % 30000 AS SIGNED) - 15000), r.seq % 2",
        (
            "SELECT id, company, sku, price, stock, active FROM ld_items WHERE company = %(company_id)s",
            "",
            "INSERT INTO ld_items(id, company, sku, price, stock, active) VALUES",
            "upsert",
        ),
    ),
    (
        "ld_payments",
        """CREATE TABLE ld_payments (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  order_id BIGINT UNSIGNED NOT NULL,
  paid_on DATE NULL,
  note VARCHAR(255) CHARACTER SET utf8mb4 NULL,
  KEY (company)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        "c.seq * 100000 + r.seq, c.seq, c.seq * 100000 + r.seq, "
        "IF(r.seq % 10 = 0, NULL, DATE('2026-11-25') - INTERVAL (r.seq % 400) DAY), "
        "CASE r.seq % 8 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'comma, here' WHEN 3 THEN 'quote \" and '' ' "
        "WHEN 4 THEN 'new\\nline\\r\\nCRLF' WHEN 5 THEN 'back\\\\slash \\\\N tab\\tend' WHEN 6 THEN 'NULL' "
        "ELSE CONCAT('李 😀 ', r.seq) END",
        (
            "SELECT id, order_id, paid_on, note FROM ld_payments WHERE company = %s",
            "company[1]",
            "REPLACE INTO ld_payments(id, order_id, paid_on, note) VALUES ",
            "upsert",
        ),
    ),
)
TABLE_NAMES = tuple(t[0] for t in TABLES)  # the source tables (and the admin rows of LOAD_TABLES=5)


def deployment_env() -> dict[str, str]:
    """What the second Airflow deployment and the onboarding read: connections and naming templates."""
    return {
        "AIRFLOW_CONN_REPORTS_ADMIN_DB": mysql_url(ADMIN_SCHEMA),
        "AIRFLOW_CONN_REPORTS_SOURCE_DB": mysql_url(SOURCE_SCHEMA),
        "AIRFLOW_CONN_REPORTS_TARGET_DB": mysql_url("") + "&local_infile=true",
        "REPORTS_TARGET_SCHEMA_TEMPLATE": SCHEMA_TEMPLATE,
        "REPORTS_S3_BUCKET_TEMPLATE": BUCKET_TEMPLATE,
        # Runs only when triggered: an @daily schedule would start its own run on unpause.
        "REPORTS_SCHEDULE": "none",
    }


def mysql(db: str = "") -> Any:
    """A connection as the local `reports` user, autocommitting (tests/airflow_load uses it too)."""
    return mysql_connect(db, autocommit=True)


def drop() -> None:
    """Drop every schema and bucket the load test creates (also those of a bigger earlier LOAD_COMPANIES)."""
    conn = mysql()
    cur = conn.cursor()
    cur.execute(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (%s, %s) "
        "OR SCHEMA_NAME LIKE 'ld\\_ld%%'",
        (ADMIN_SCHEMA, SOURCE_SCHEMA),
    )
    schemas = [r[0] for r in cur.fetchall()]
    for name in schemas:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
    from botocore.exceptions import ClientError

    s3 = s3_client()
    # By name, not by ListBuckets: the local SeaweedFS lists no buckets to the anonymous "any" keys.
    buckets = []
    for alias in aliases(99):
        bucket = BUCKET_TEMPLATE.format(alias=alias)
        try:
            empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                continue
            raise
        buckets.append(bucket)
    print(f"load_data: dropped {len(schemas)} schemas and {len(buckets)} buckets", file=sys.stderr)


def setup() -> None:
    """Fresh admin and source schemas, then every company onboarded (admin rows, bucket, target tables)."""
    os.environ.update(deployment_env())
    from report_pipeline import admin as admin_module
    from report_pipeline.config import build_table
    from report_pipeline.onboard import onboard
    from report_pipeline.settings import Settings

    t0 = time.monotonic()
    n, rows = companies(), rows_per_table()
    if not 1 <= n <= 99 or not 1 <= rows <= 99999:
        sys.exit("LOAD_COMPANIES must be 1..99 and LOAD_ROWS 1..99999 (ids are company * 100000 + row)")
    drop()
    root = mysql()
    cur = root.cursor()
    for schema in (ADMIN_SCHEMA, SOURCE_SCHEMA):
        cur.execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    root.close()

    src = mysql(SOURCE_SCHEMA)
    cur = src.cursor()
    for name, ddl, columns, _ in TABLES:
        cur.execute(ddl)
        # The Sequence engine (seq_1_to_N) generates companies x rows in one statement per table.
        cur.execute(f"INSERT INTO `{name}` SELECT {columns} FROM seq_1_to_{n} c JOIN seq_1_to_{rows} r")
    print(f"load_data: {len(TABLES)} source tables x {n * rows} rows in {time.monotonic() - t0:.1f} s", file=sys.stderr)

    adm = mysql(ADMIN_SCHEMA)
    adm.autocommit(False)
    admin_module.init_admin(adm)
    cur = adm.cursor()
    for i, (name, _, (query, params, insert, mode)) in enumerate(admin_tables(), start=1):
        admin_module.add_table(
            cur,
            admin_module.TableRow(
                id=i, name=name, query_select=query, params_select=params, query_insert=insert, load_mode=mode
            ),
        )
    adm.commit()
    cur.execute("SELECT * FROM `tables` ORDER BY id")
    names = [d[0] for d in cur.description]
    specs = [build_table(dict(zip(names, row, strict=True))) for row in cur.fetchall()]

    settings = Settings.from_env()
    tgt = mysql()
    tgt.autocommit(False)
    s3 = s3_client()
    for company_id, alias in enumerate(aliases(n), start=1):
        onboard(
            admin=adm,
            source=src,
            target=tgt,
            s3=s3,
            settings=settings,
            company_id=company_id,
            alias=alias,
            tables=specs,
            lookback_days=LOOKBACK_DAYS,
        )
    for conn in (adm, src, tgt):
        conn.close()
    print(
        f"load_data: {n} companies onboarded ({SCHEMA_TEMPLATE.format(alias='ldNN')}, "
        f"s3://{BUCKET_TEMPLATE.format(alias='ldNN')}); {time.monotonic() - t0:.1f} s in all",
        file=sys.stderr,
    )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "env":
        for key, value in deployment_env().items():
            print(f"export {key}={shlex.quote(value)}")
    elif command == "setup":
        setup()
    elif command == "drop":
        drop()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
