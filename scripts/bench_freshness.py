"""The freshness page's default view at fleet size (issue 21 item 5): 1,000 companies x 20 tables by default.

    source scripts/env.sh && .venv/bin/python scripts/bench_freshness.py [--companies 1000] [--tables 20]
        [--loads 30] [--repeat 5] [--keep] [--no-setup]

Creates ``--companies`` target schemas ``frb_<alias>`` on the local MariaDB, each with a ledger
(``report_loads``, through ``ledger.ensure``: its indexes as a deployment has them) holding ``--loads``
loads of each of ``--tables`` tables (a month of daily runs; every 7th company's first table stopped 3
days ago, so some rows are red) and an as-of table, and an in-memory plan of the same companies x tables.
Then, ``--repeat`` times, the two views alternate (which goes first alternates too), each on its own
connection and from the admin rows (the plan is built inside both):

- before: the whole fleet with each row's chart history (``freshness.collect``: ``ledger.recent_many``)
  rendered on one page;
- after: each row's newest load (``freshness.survey``: ``ledger.latest_many``), every row ordered worst
  first and counted, one page of ``--per-page`` rows (``freshness.page_of``) whose history alone is read
  (``freshness.add_history``: ``ledger.history_many``) and rendered.

It prints medians (min-max) per view and per step, the statements sent and rows fetched, and the HTML's
size. Airflow's task facts (durations, failures from the metadata DB) are not part of either. The schemas
are dropped at the end unless ``--keep``; nothing here asserts a time.
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
from report_pipeline.target.mysql_state import ensure_as_of
from serverkit import mysql_connect

PREFIX = "frb_"
NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def connect() -> Any:
    return mysql_connect(autocommit=True, local_infile=0)


class CountingCursor:
    """A cursor that counts the statements it sends (the page's round trips) and the rows it fetches."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.statements = 0
        self.rows = 0

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self.statements += 1
        return self.cursor.execute(sql, parameters)

    def fetchall(self) -> Any:
        found = self.cursor.fetchall()
        self.rows += len(found)
        return found

    def fetchone(self) -> Any:
        found = self.cursor.fetchone()
        self.rows += found is not None
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def aliases(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(1, n + 1)]


def admin_rows(n: int, tables: int) -> AdminRows:
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
    return AdminRows(companies=companies, tables=rows)


SETTINGS = Settings.from_env({"REPORTS_TARGET_SCHEMA_TEMPLATE": PREFIX + "{alias}"})


def plan_of(n: int, tables: int) -> Plan:
    return build_plan(admin_rows(n, tables), SETTINGS)


def setup(plan: Plan, tables: int, loads: int) -> None:
    conn = connect()
    cur = conn.cursor()
    t0 = time.monotonic()
    for number, cp in enumerate(plan.companies, start=1):
        schema = cp.company.schema
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        cur.execute(f"CREATE DATABASE `{schema}`")
        ledger.ensure(cur, schema)
        ensure_as_of(cur, schema)
        cur.execute(f"USE `{schema}`")  # the Sequence engine's seq_1_to_N tables need a current database
        lag = 3 if number % 7 == 0 else 0
        # tables x loads rows in one statement: load n of table t is day n before NOW.
        cur.execute(
            f"INSERT INTO `{schema}`.report_loads (table_name, logical_date, run_id, rows_loaded, finished_at, "
            "load_mode, load_key, manifest_keys) "
            "SELECT CONCAT('t', LPAD(t.seq, 2, '0')), TIMESTAMP('2026-12-01') - INTERVAL d.seq DAY, "
            "CONCAT('scheduled__', d.seq), 1000 + d.seq, TIMESTAMP('2026-12-01 01:00:00') - INTERVAL d.seq DAY, "
            "'upsert', SHA2(CONCAT(t.seq, '/', d.seq), 256), '[]' "
            f"FROM seq_1_to_{tables} t JOIN seq_0_to_{loads - 1} d WHERE NOT (t.seq = 1 AND d.seq < {lag}) "
            "ORDER BY d.seq DESC, t.seq"
        )
        cur.execute(
            f"REPLACE INTO `{schema}`.report_as_of (table_name, data_as_of, snapshot_at, logical_date, run_id, "
            "updated_at) SELECT table_name, MAX(finished_at), MAX(finished_at), MAX(logical_date), 'x', "
            "UTC_TIMESTAMP(6) FROM report_loads GROUP BY table_name"
        )
        cur.execute(
            f"REPLACE INTO `{schema}`.report_as_of (table_name, data_as_of, updated_at) "
            "SELECT '*', MIN(data_as_of), UTC_TIMESTAMP(6) FROM report_as_of WHERE table_name <> '*'"
        )
    conn.close()
    print(f"set-up: {len(plan.companies)} schemas x {tables} tables x {loads} loads in {time.monotonic() - t0:.0f} s")


def drop(n: int) -> None:
    conn = connect()
    cur = conn.cursor()
    for alias in aliases(n):
        cur.execute(f"DROP DATABASE IF EXISTS `{PREFIX}{alias}`")
    conn.close()


Timings = dict[str, list[float]]


def before(rows_in: AdminRows, timings: Timings, facts: dict[str, Any]) -> None:
    """The page before: every row with its history, all on one page."""
    conn = connect()
    try:
        cursor = CountingCursor(conn.cursor())
        t0 = time.perf_counter()
        plan = build_plan(rows_in, SETTINGS)
        t1 = time.perf_counter()
        rows = freshness.collect(plan, cursor, schedule="@daily", now=NOW)
        t2 = time.perf_counter()
        companies = sorted(c.company.alias for c in plan.companies)
        page = freshness.render_page(rows, companies, selected=None, schedule="@daily", now=NOW, base_path="/")
        t3 = time.perf_counter()
    finally:
        conn.close()
    for name, value in (("before", t3 - t0), ("before: plan", t1 - t0), ("before: read", t2 - t1),
                        ("before: render", t3 - t2)):  # fmt: skip
        timings.setdefault(name, []).append(value)
    facts["before"] = (cursor.statements, cursor.rows, len(rows), len(page))


def after(rows_in: AdminRows, timings: Timings, facts: dict[str, Any], per_page: int) -> freshness.Page:
    """The page now: every row judged from its newest load, worst first, one page read in full and rendered."""
    conn = connect()
    try:
        cursor = CountingCursor(conn.cursor())
        t0 = time.perf_counter()
        plan = build_plan(rows_in, SETTINGS)
        t1 = time.perf_counter()
        rows = freshness.survey(plan, cursor, schedule="@daily", now=NOW)
        t2 = time.perf_counter()
        shown = freshness.page_of(rows, per_page=per_page)
        t3 = time.perf_counter()
        freshness.add_history(shown.rows, cursor)
        t4 = time.perf_counter()
        companies = sorted(c.company.alias for c in plan.companies)
        page = freshness.render_page(
            shown.rows, companies, selected=None, schedule="@daily", now=NOW, base_path="/", page=shown
        )
        t5 = time.perf_counter()
    finally:
        conn.close()
    for name, value in (("after", t5 - t0), ("after: plan", t1 - t0), ("after: survey", t2 - t1),
                        ("after: order + page", t3 - t2), ("after: history", t4 - t3),
                        ("after: render", t5 - t4)):  # fmt: skip
        timings.setdefault(name, []).append(value)
    facts["after"] = (cursor.statements, cursor.rows, len(shown.rows), len(page))
    return shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--per-page", type=int, default=freshness.PER_PAGE)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-setup", action="store_true", help="use the schemas of an earlier --keep")
    args = parser.parse_args()
    rows_in = admin_rows(args.companies, args.tables)
    if not args.no_setup:
        setup(plan_of(args.companies, args.tables), args.tables, args.loads)
    timings: Timings = {}
    facts: dict[str, Any] = {}
    try:
        for i in range(args.repeat):
            if i % 2 == 0:
                before(rows_in, timings, facts)
                shown = after(rows_in, timings, facts, args.per_page)
            else:
                shown = after(rows_in, timings, facts, args.per_page)
                before(rows_in, timings, facts)
    finally:
        if not args.keep:
            drop(args.companies)
    # What the page shows: the worst rows (the lagging tables are red), each with its chart's history.
    assert shown.totals.tables == args.companies * args.tables, shown.totals
    assert shown.totals.red == args.companies // 7 and shown.rows[0].status == "red", shown.totals
    assert all(len(r.loads) == min(freshness.HISTORY, args.loads) for r in shown.rows if r.table != "*")
    print(
        f"\nfreshness page, default view, {args.companies} companies x {args.tables} tables, {args.loads} loads "
        f"each in the ledger; medians of {args.repeat} interleaved runs (min-max), load average "
        f"{os.getloadavg()[0]:.1f}:"
    )
    for name, values in timings.items():
        line = f"  {name:<22} {statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})"
        if name in facts:
            statements, fetched, shown_rows, size = facts[name]
            line += (
                f"  {statements} statements, {fetched:,} rows fetched, {shown_rows:,} rows shown, "
                f"{size / 2**20:.2f} MB of HTML"
            )
        print(line)
    ratio = statistics.median(timings["before"]) / statistics.median(timings["after"])
    print(f"  after is {ratio:.1f}x faster (the page's {args.per_page} worst rows of {shown.matching:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
