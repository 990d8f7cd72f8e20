"""Demo data for ``make demo`` and the tests, kept out of the runtime package: admin rows written the
seed's way, source tables, and the companies onboarded through the same code ``report-pipeline
onboard`` runs. ``report-pipeline demo-setup`` (registered by the console script) runs ``setup``.

Rows are generated twice: around a fixed day (``DEMO_DATE``, what ``make demo`` runs), and around the
day the set-up runs, so that a run triggered today from the UI or the REST API (logical date = now)
finds every company's windows filled like the demo date's, and its swaps pass the shrink guard
(issue 21: a newcomer's first manual trigger is green).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from report_pipeline import admin

DEMO_DATE = dt.date(2026, 11, 26)
DEMO_COMPANIES = (
    # (id, company_id, status, alias, look-back days or None for the default)
    (1, 1, 1, "acme", 60),
    (2, 2, 1, "globex", 7),
    (3, 3, 0, "initech", None),
    (4, 4, 1, "umbrella", None),
)

# The seed's own statements, verbatim: they must keep working against our admin schema.
SEED_STATEMENTS = (
    "INSERT INTO `tables` (`id`, `name`, `status`, `query_select`, `params_select`, `query_insert`, "
    "`params_insert`)\nVALUES\n(1, 'users', 1, 'SELECT id, username FROM users WHERE company = %s', "
    "'company[1]', 'REPLACE INTO users(id, username) VALUES ', "
    "'\\'(\\'+row[0] +\\',\\\"\\'+ row[1]+\\'\\\")\\'');",
    "INSERT INTO companies_configurations\n(id\n, retail_id\n, configuration_id\n, configuration_value\n)\n"
    "VALUES\n(1, 1, 1, '60');",
)

DEMO_TABLES = (
    # A seed-style legacy row with the `date` look-back reference.
    (
        2,
        "orders",
        1,
        "SELECT id, user_id, amount, status, created_at FROM orders WHERE company = %s AND created_at >= %s",
        "company[1],date",
        "REPLACE INTO orders(id, user_id, amount, status, created_at) VALUES ",
        "'(' + row[0] + ')'",
        "upsert",
    ),
    # A new-style row: named placeholders, full refresh through a shadow table.
    (
        3,
        "events",
        1,
        "SELECT id, kind, payload, happened_at FROM events "
        "WHERE company = %(company_id)s AND happened_at >= %(date_from)s AND happened_at < %(date_to)s",
        "",
        "INSERT INTO events(id, kind, payload, happened_at) VALUES",
        "",
        "swap",
    ),
    (
        4,
        "audit_log",
        0,
        "SELECT id FROM audit_log WHERE company = %s",
        "company[1]",
        "REPLACE INTO audit_log(id) VALUES",
        "",
        "upsert",
    ),
)

SOURCE_DDL = (
    """CREATE TABLE IF NOT EXISTS users (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  username VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
  KEY (company)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  user_id INT UNSIGNED NOT NULL,
  amount DECIMAL(12,2) NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  created_at DATETIME NOT NULL,
  KEY (company, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS events (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL,
  kind VARCHAR(32) NOT NULL,
  payload TEXT NULL,
  happened_at DATETIME(6) NOT NULL,
  KEY (company, happened_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS audit_log (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  company INT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)

_NAMES = ("ana", "bo", "chloé", "dmitri", "eve", "李雷", "o'brien", 'say "hi"', "back\\slash", "emoji 😀")


# Ids of the rows around the set-up's day start here (per company), after those around DEMO_DATE.
_TODAY_IDS = 50000


def source_rows(today: dt.date | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Source rows for the four companies, with awkward text and NULLs on purpose.

    The same rows before each of two days: ``DEMO_DATE``, and the day after ``today`` (default: the
    current UTC date), so a run triggered today or tomorrow, with any look-back, finds a full window.
    Only the second set's dates change from one day to the next.
    """
    today = dt.datetime.now(dt.UTC).date() if today is None else today
    users, orders, events = [], [], []
    statuses = ("new", "paid", "shipped", "cancelled")
    for company in (1, 2, 3, 4):
        for n in range(1, 41):
            uid = company * 1000 + n
            users.append((uid, company, f"{_NAMES[n % len(_NAMES)]}_{uid}"))
        for first, day in ((0, DEMO_DATE), (_TODAY_IDS, today + dt.timedelta(days=1))):
            midnight = dt.datetime.combine(day, dt.time())
            for n in range(1, 201):
                oid = company * 100000 + first + n
                created = midnight - dt.timedelta(hours=n * 11)
                amount = None if n % 9 == 0 else f"{(n * 37) % 1000}.{n % 100:02d}"
                orders.append((oid, company, company * 1000 + 1 + n % 40, amount, statuses[n % 4], created))
            for n in range(1, 121):
                eid = company * 100000 + first + n
                happened = midnight - dt.timedelta(minutes=n * 37, microseconds=n)
                payload = None if n % 7 == 0 else ("" if n % 11 == 0 else f'{{"n": {n}, "note": "line1\\nline2, ok"}}')
                events.append((eid, company, ("click", "view", "buy")[n % 3], payload, happened))
    return {"users": users, "orders": orders, "events": events, "audit_log": [(1, 1)]}


def create_source(conn: Any) -> dict[str, int]:
    """Create and fill the demo source tables (replacing their rows); returns rows per table."""
    cursor = conn.cursor()
    for ddl in SOURCE_DDL:
        cursor.execute(ddl)
    counts: dict[str, int] = {}
    for table, rows in source_rows().items():
        cursor.execute(f"DELETE FROM `{table}`")
        marks = ", ".join(["%s"] * len(rows[0]))
        cursor.executemany(f"INSERT INTO `{table}` VALUES ({marks})", rows)
        counts[table] = len(rows)
    conn.commit()
    cursor.close()
    return counts


def create_admin_rows(conn: Any) -> None:
    """Write the demo admin rows; the seed's own INSERT statements run verbatim first."""
    cursor = conn.cursor()
    for table in ("companies_configurations", "tables", "companies"):
        cursor.execute(f"DELETE FROM `{table}`")
    cursor.execute("DELETE FROM configurations WHERE id <> 1 OR name <> 'date Y-M-D'")
    cursor.execute("INSERT IGNORE INTO configurations (id, name) VALUES (1, 'date Y-M-D')")
    for statement in SEED_STATEMENTS:
        # Without arguments mysqlclient sends the text as written, %s included.
        cursor.execute(statement)
    for row in DEMO_TABLES:
        row_id, name, status, query_select, params_select, query_insert, params_insert, load_mode = row
        admin.add_table(
            cursor,
            admin.TableRow(
                id=row_id,
                name=name,
                status=status,
                query_select=query_select,
                params_select=params_select,
                query_insert=query_insert,
                params_insert=params_insert,
                load_mode=load_mode,
            ),
        )
    for row_id, company_id, status, alias, lookback in DEMO_COMPANIES:
        admin.add_company(cursor, company_id, alias, status, row_id)
        if lookback is not None and company_id != 1:  # company 1's 60 days is the seed's own row
            admin.set_lookback(cursor, company_id, lookback)
    conn.commit()
    cursor.close()


def setup(args: argparse.Namespace, settings: Any, connect: Any) -> int:
    """``report-pipeline demo-setup``: demo admin rows, source tables, then each active company onboarded."""
    from report_pipeline import admin_commands
    from report_pipeline.plaintable import print_table
    from report_pipeline.session import opened

    conns = connect(settings)
    with opened(conns.admin()) as adm, opened(conns.source()) as src:
        admin.init_admin(adm)
        create_admin_rows(adm)
        counts = create_source(src)
    print_table(["source table", "rows"], sorted(counts.items()))
    for _, company_id, status, alias, lookback in DEMO_COMPANIES:
        if status != 1:
            continue
        ns = argparse.Namespace(
            company_id=company_id, alias=alias, lookback_days=lookback, dry_run=False, adopt_schema=False
        )
        print(f"\nonboarding {alias}:")
        admin_commands.cmd_onboard(ns, settings, connect)
    return 0
