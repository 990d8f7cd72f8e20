"""Issue 24 item 2: ``report_as_of``, what dashboards read to print "data as of", on the real servers.

Each load records, in its own transaction, the source snapshot time of the rows it made live (the
source server's clock, compared here with the source's clock read around the extract), and the company
row ``'*'`` holds the oldest of the company's tables. The freshness page's age is the data's age.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import freshness
from report_pipeline.config import Company, CompanyPlan, Plan, build_table
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import Manifest
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

TABLES = ("a", "b")


def _source_clock(db: str) -> dt.datetime:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT UTC_TIMESTAMP(6)")
    moment = cursor.fetchone()[0]
    conn.close()
    return moment


def _extract(db: str, bucket: Bucket, table: str, logical: dt.datetime) -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="asof",
                table=table,
                bucket=bucket,
                prefix=f"{table}/{time.monotonic_ns()}",
                query=f"SELECT id, val FROM src_{table}",
                parameters=(),
                logical_date=logical.isoformat(),
                run_id=f"run_{logical:%Y%m%d}",
            ),
        )
    finally:
        conn.close()


def _load(
    db: str,
    bucket: Bucket,
    table: str,
    manifest: Manifest,
    mode: str,
    logical: dt.datetime,
    window_end: dt.datetime | None = None,
) -> LoadResult:
    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn, opener=mysql_connect),
            LoadRequest(
                company="asof",
                schema=db,
                target=InsertTarget(table, ("id", "val"), "replace"),
                load_mode=mode,
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key=f"{table}/_SUCCESS",
                logical_date=logical,
                run_id=f"run_{logical:%Y%m%d}",
                company_tables=TABLES,
                window_end=window_end,
            ),
        )
    finally:
        conn.close()


def _as_of(db: str) -> dict[str, tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT table_name, data_as_of, snapshot_at, logical_date, run_id FROM report_as_of")
    found = {str(r[0]): tuple(r[1:]) for r in cursor.fetchall()}
    conn.close()
    return found


def _setup(db: str) -> None:
    conn = mysql_connect(db)
    execute(
        conn,
        *(f"CREATE TABLE src_{t} (id INT NOT NULL PRIMARY KEY, val INT NOT NULL)" for t in TABLES),
        *(f"INSERT INTO src_{t} SELECT seq, seq * 2 FROM seq_1_to_500" for t in TABLES),
        *(f"CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, val INT NOT NULL)" for t in TABLES),
    )
    MySqlTarget(conn).ensure_ledger(db)  # the schema is the company's (the source tables sit beside them here)
    conn.close()


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def test_each_table_and_the_company_row_hold_the_sources_snapshot_time(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    before = _source_clock(scratch_db)
    manifest_a = _extract(scratch_db, bucket, "a", today)
    after = _source_clock(scratch_db)
    _load(scratch_db, bucket, "a", manifest_a, "swap", today)
    rows = _as_of(scratch_db)
    data_as_of, snapshot_at, logical, run_id = rows["a"]
    # The source server's own clock when the extract's snapshot began, recorded in its manifest too.
    assert before <= snapshot_at <= after
    assert snapshot_at == dt.datetime.fromisoformat(manifest_a.snapshot_at or "")
    assert data_as_of == snapshot_at and logical == _naive(today) and run_id == f"run_{today:%Y%m%d}"
    # b has never loaded: the company row says nothing rather than "all tables as of a's time".
    assert rows["*"][0] is None

    manifest_b = _extract(scratch_db, bucket, "b", today)
    _load(scratch_db, bucket, "b", manifest_b, "upsert", today)
    rows = _as_of(scratch_db)
    assert rows["b"][1] == dt.datetime.fromisoformat(manifest_b.snapshot_at or "") > snapshot_at
    assert rows["*"] == rows["a"], "the company row holds the oldest table"

    # A run copying a window that ended 8 days ago holds the data of then, though it was read now.
    old = today - dt.timedelta(days=8)
    window_end = dt.datetime.combine(old.date(), dt.time(), dt.UTC)
    _load(scratch_db, bucket, "a", _extract(scratch_db, bucket, "a", today), "swap", today, window_end)
    rows = _as_of(scratch_db)
    assert rows["a"][0] == _naive(window_end) and rows["*"][0] == _naive(window_end)
    # An upsert keeps the rows of earlier loads: an older window loaded later never moves its as-of back.
    newest_b = rows["b"]
    _load(scratch_db, bucket, "b", _extract(scratch_db, bucket, "b", old), "upsert", old, window_end)
    assert _as_of(scratch_db)["b"] == newest_b


def test_the_freshness_page_shows_the_datas_age_not_the_loads(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=8)
    window_end = dt.datetime.combine(old.date(), dt.time(), dt.UTC)
    for table in TABLES:
        _load(scratch_db, bucket, table, _extract(scratch_db, bucket, table, old), "swap", old, window_end)
    specs = tuple(
        build_table(
            {
                "id": i,
                "name": t,
                "status": 1,
                "query_select": f"SELECT id, val FROM src_{t} WHERE %(date_to)s IS NOT NULL",
                "query_insert": f"REPLACE INTO {t}(id, val) VALUES",
                "load_mode": "swap",
                "all_companies": 1,
            }
        )
        for i, t in enumerate(TABLES, 1)
    )
    company = Company(1, 1, 1, "asof", "reports-asof", scratch_db, 1, "default")
    plan = Plan(companies=(CompanyPlan(company, specs),))
    conn = mysql_connect()
    rows = {r.table: r for r in freshness.collect(plan, conn.cursor(), schedule="@daily", now=now)}
    conn.close()
    for table in (*TABLES, "*"):
        row = rows[table]
        # Loaded seconds ago, but its data is of 8 days ago: red, and the age says so.
        assert row.age_seconds is not None and row.age_seconds > 7.5 * 86400, (table, row.age_seconds)
        assert row.status == "red" and freshness.human_age(row.age_seconds).endswith(" d")
    assert rows["a"].last is not None and rows["a"].last.finished_at > _naive(now) - dt.timedelta(hours=1)
    page = freshness.render_page(
        list(rows.values()), ["asof"], selected=None, schedule="@daily", now=now, base_path="/"
    )
    assert f"{_naive(window_end):%Y-%m-%d %H:%M:%S} UTC" in page and "all tables" in page
