"""The freshness page's data at fleet size (issue 21 item 5): 1,000 companies x 20 tables by default.

    source scripts/env.sh && .venv/bin/python scripts/bench_freshness.py [--companies 1000] [--tables 20]
        [--loads 30] [--repeat 3] [--keep]

Creates ``--companies`` target schemas ``frb_<alias>`` on the local MariaDB, each with a ledger
(``report_loads``) holding ``--loads`` loads of each of ``--tables`` tables (a month of daily runs), and
an in-memory plan of the same companies x tables. Then, ``--repeat`` times and interleaved, it times
the page's ledger read both ways on one connection: per company (``ledger.exists`` + ``ledger.recent``,
two queries a company, as the page read before issue 21) and ``freshness.collect`` (``ledger.recent_many``),
counting the statements each sent, and ``freshness.render_page`` over all rows. Airflow's task facts
(durations, failures from the metadata DB) are not part of it. The schemas are dropped at the end
unless ``--keep``; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from typing import Any

from report_pipeline import freshness, ledger
from report_pipeline.config import AdminRows, Plan, build_plan
from report_pipeline.settings import Settings
from serverkit import mysql_connect

PREFIX = "frb_"
NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def connect() -> Any:
    return mysql_connect(autocommit=True, local_infile=0)


class CountingCursor:
    """A cursor that counts the statements it sends (the page's round trips)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.statements = 0

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self.statements += 1
        return self.cursor.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def aliases(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(1, n + 1)]


def plan_of(n: int, tables: int) -> Plan:
    companies = [{"id": i, "company_id": i, "status": 1, "alias": a} for i, a in enumerate(aliases(n), start=1)]
    rows = [
        {
            "id": t,
            "name": f"t{t:02d}",
            "status": 1,
            "query_select": f"SELECT id FROM t{t:02d} WHERE company = %s",
            "params_select": "company[1]",
            "query_insert": f"REPLACE INTO t{t:02d}(id) VALUES",
            "params_insert": "",
        }
        for t in range(1, tables + 1)
    ]
    settings = Settings.from_env({"REPORTS_TARGET_SCHEMA_TEMPLATE": PREFIX + "{alias}"})
    return build_plan(AdminRows(companies=companies, tables=rows), settings)


def setup(plan: Plan, tables: int, loads: int) -> None:
    conn = connect()
    cur = conn.cursor()
    t0 = time.monotonic()
    for cp in plan.companies:
        schema = cp.company.schema
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        cur.execute(f"CREATE DATABASE `{schema}`")
        ledger.ensure(cur, schema)
        cur.execute(f"USE `{schema}`")  # the Sequence engine's seq_1_to_N tables need a current database
        # tables x loads rows in one statement: load n of table t is day n before NOW.
        cur.execute(
            f"INSERT INTO `{schema}`.report_loads (table_name, logical_date, run_id, rows_loaded, finished_at, "
            "load_mode, load_key, manifest_keys) "
            "SELECT CONCAT('t', LPAD(t.seq, 2, '0')), TIMESTAMP('2026-12-01') - INTERVAL d.seq DAY, "
            "CONCAT('scheduled__', d.seq), 1000 + d.seq, TIMESTAMP('2026-12-01 01:00:00') - INTERVAL d.seq DAY, "
            "'upsert', SHA2(CONCAT(t.seq, '/', d.seq), 256), '[]' "
            f"FROM seq_1_to_{tables} t JOIN seq_0_to_{loads - 1} d ORDER BY d.seq DESC, t.seq"
        )
    conn.close()
    print(f"set-up: {len(plan.companies)} schemas x {tables} tables x {loads} loads in {time.monotonic() - t0:.0f} s")


def drop(n: int) -> None:
    conn = connect()
    cur = conn.cursor()
    for alias in aliases(n):
        cur.execute(f"DROP DATABASE IF EXISTS `{PREFIX}{alias}`")
    conn.close()


def per_company(plan: Plan, cursor: Any, history: int) -> int:
    """The page's read before issue 21: two queries per company."""
    found = 0
    for cp in plan.companies:
        schema = cp.company.schema
        loads = ledger.recent(cursor, schema, history) if ledger.exists(cursor, schema) else {}
        found += sum(len(v) for v in loads.values())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-setup", action="store_true", help="use the schemas of an earlier --keep")
    args = parser.parse_args()
    plan = plan_of(args.companies, args.tables)
    if not args.no_setup:
        setup(plan, args.tables, args.loads)
    conn = connect()
    times: dict[str, list[float]] = {"per company (before)": [], "collect (after)": [], "render_page": []}
    statements: dict[str, int] = {}
    try:
        for _ in range(args.repeat):
            cursor = CountingCursor(conn.cursor())
            t0 = time.perf_counter()
            per_company(plan, cursor, 12)
            times["per company (before)"].append(time.perf_counter() - t0)
            statements["per company (before)"] = cursor.statements

            cursor = CountingCursor(conn.cursor())
            t0 = time.perf_counter()
            rows = freshness.collect(plan, cursor, schedule="@daily", now=NOW)
            times["collect (after)"].append(time.perf_counter() - t0)
            statements["collect (after)"] = cursor.statements
            assert len(rows) == args.companies * args.tables and all(len(r.loads) == min(12, args.loads) for r in rows)

            t0 = time.perf_counter()
            aliases_shown = [c.company.alias for c in plan.companies]
            page = freshness.render_page(
                rows, aliases_shown, selected=None, schedule="@daily", now=NOW, base_path="/"
            )
            times["render_page"].append(time.perf_counter() - t0)
    finally:
        conn.close()
        if not args.keep:
            drop(args.companies)
    print(
        f"\nfreshness page data, {args.companies} companies x {args.tables} tables, {args.loads} loads each in the "
        f"ledger; medians of {args.repeat} (min-max), load average {os.getloadavg()[0]:.1f}:"
    )
    for name, values in times.items():
        extra = f", {statements[name]} statements" if name in statements else f", {len(page) / 2**20:.1f} MB of HTML"
        print(f"  {name:<24} {statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f}){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
