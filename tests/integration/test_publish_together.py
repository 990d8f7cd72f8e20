"""Issue 24 item 1: a company's day published together, on the real local servers.

Two swap tables, ``orders`` and ``customers``, each load leaving its shadow ready (``hold``); one publish
renames both in one RENAME. A reader thread polls a join of the two the whole time and must never see
one table at the new day and the other at the old one; it must really have polled between the first
shadow being ready and the publish (the window in which separate swaps would have shown a mixed day).
A table that failed keeps both tables (and the ledger and as-of) as they were, unless the company asked
for a partial publish.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.errors import RefusedError, ReportPipelineError
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.guards import SwapGuard
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import Manifest
from report_pipeline.publication import DayTable, publish
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

TABLES = ("customers", "orders")
DAY0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
ROWS = 20_000


def _query(table: str, factor: int, rows: int = ROWS) -> str:
    # Each day's values differ per table, so the join's sums tell exactly which day each table is at.
    base = 1 if table == "orders" else 1000
    return f"SELECT seq AS id, seq * {factor} + {base} AS val FROM seq_1_to_{rows}"


def _setup(db: str) -> None:
    conn = mysql_connect(db)
    execute(conn, *(f"CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, val BIGINT NOT NULL)" for t in TABLES))
    conn.close()


def _extract(db: str, bucket: Bucket, table: str, query: str, day: int) -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="pubtest",
                table=table,
                bucket=bucket,
                prefix=f"{table}/{day}/{time.monotonic_ns()}",
                query=query,
                parameters=(),
                logical_date=(DAY0 + dt.timedelta(days=day)).isoformat(),
                run_id=f"run_{day}",
                part_bytes=64 * 1024,
            ),
        )
    finally:
        conn.close()


def _load(db: str, bucket: Bucket, table: str, manifest: Manifest, day: int, *, hold: bool) -> LoadResult:
    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn, opener=mysql_connect),
            LoadRequest(
                company="pubtest",
                schema=db,
                target=InsertTarget(table, ("id", "val"), "replace"),
                load_mode="swap",
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key=f"{table}/{day}/_SUCCESS",
                logical_date=DAY0 + dt.timedelta(days=day),
                run_id=f"run_{day}",
                company_tables=TABLES,
                parallelism=2,
                hold=hold,
            ),
        )
    finally:
        conn.close()


def _publish(db: str, day: list[DayTable], partial: bool = False) -> Any:
    conn = mysql_connect()
    try:
        return publish(
            MySqlTarget(conn),
            db,
            "company 'pubtest' (companies row id=1)",
            day,
            partial=partial,
            lock_timeout_seconds=30,
            company_tables=TABLES,
        )
    finally:
        conn.close()


def _expected(db: str, factor: int, rows: int = ROWS) -> dict[str, tuple[int, int]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    found = {}
    for table in TABLES:
        cursor.execute(f"SELECT COUNT(*), SUM(val) FROM ({_query(table, factor, rows)}) AS q")
        count, total = cursor.fetchone()
        found[table] = (int(count), int(total))
    conn.close()
    return found


def _live(db: str) -> dict[str, tuple[int, int]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    found = {}
    for table in TABLES:
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(val), 0) FROM {table}")
        count, total = cursor.fetchone()
        found[table] = (int(count), int(total))
    conn.close()
    return found


def _rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql)
    found = sorted(cursor.fetchall())
    conn.close()
    return found


class JoinReader(threading.Thread):
    """Polls a join of the two tables (what a dashboard runs), recording each answer."""

    def __init__(self, db: str) -> None:
        super().__init__(name="join-reader", daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.samples: list[tuple[int, int, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = mysql_connect(self.db)
        conn.autocommit(True)
        cursor = conn.cursor()
        try:
            while not self.stop.is_set():
                try:
                    cursor.execute(
                        "SELECT COUNT(*), COALESCE(SUM(o.val), 0), COALESCE(SUM(c.val), 0) "
                        "FROM orders AS o JOIN customers AS c ON c.id = o.id"
                    )
                    count, orders, customers = cursor.fetchone()
                    self.samples.append((int(count), int(orders), int(customers)))
                except Exception as exc:  # noqa: BLE001 - every error is a finding
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def polls_after(self, mark: int, at_least: int, timeout: float = 120.0) -> None:
        """Wait until the reader answered ``at_least`` polls after sample number ``mark``."""
        deadline = time.monotonic() + timeout
        while len(self.samples) < mark + at_least:
            assert self.is_alive() and not self.errors, self.errors[:3]
            assert time.monotonic() < deadline, "the reader made no progress"
            time.sleep(0.01)


def _day_signature(expected: dict[str, tuple[int, int]]) -> tuple[int, int, int]:
    return (expected["orders"][0], expected["orders"][1], expected["customers"][1])


def _held_day(db: str, bucket: Bucket, factor: int, day: int) -> dict[str, str]:
    keys = {}
    for table in TABLES:
        result = _load(db, bucket, table, _extract(db, bucket, table, _query(table, factor), day), day, hold=True)
        assert result.held and not result.skipped and result.rows == ROWS
        keys[table] = result.load_key
    return keys


def test_a_reader_polling_a_join_never_sees_a_mixed_day(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    day1, day2 = _expected(scratch_db, 1), _expected(scratch_db, 2)
    old, new = _day_signature(day1), _day_signature(day2)
    assert old != new
    # Day 1 published together, before the reader starts (so an empty answer is never legitimate).
    keys = _held_day(scratch_db, bucket, 1, 1)
    assert _live(scratch_db) == {t: (0, 0) for t in TABLES}, "a held load must not go live"
    _publish(scratch_db, [DayTable(t, f"table {t!r}", keys[t]) for t in TABLES])
    assert _live(scratch_db) == day1

    reader = JoinReader(scratch_db)
    reader.start()
    try:
        reader.polls_after(0, 20)
        # Day 2: orders' shadow is ready first; then customers loads; only then the publish.
        orders = _extract(scratch_db, bucket, "orders", _query("orders", 2), 2)
        customers = _extract(scratch_db, bucket, "customers", _query("customers", 2), 2)
        first = _load(scratch_db, bucket, "orders", orders, 2, hold=True)
        first_ready = len(reader.samples)
        second = _load(scratch_db, bucket, "customers", customers, 2, hold=True)
        # The window separate swaps would have shown mixed: make sure the reader really polled in it.
        reader.polls_after(first_ready, 50)
        before_publish = len(reader.samples)
        assert _live(scratch_db) == day1
        result = _publish(
            scratch_db,
            [
                DayTable("orders", "table 'orders'", first.load_key),
                DayTable("customers", "table 'customers'", second.load_key),
            ],
        )
        published = len(reader.samples)
        reader.polls_after(published, 20)
    finally:
        reader.stop.set()
        reader.join(timeout=30)

    assert reader.errors == []
    assert sorted(result.published) == sorted(TABLES) and not result.behind
    assert set(reader.samples) <= {old, new}, f"mixed days seen: {set(reader.samples) - {old, new}}"
    assert reader.samples[-1] == new and _live(scratch_db) == day2
    in_window = before_publish - first_ready
    assert in_window >= 50
    assert all(s == old for s in reader.samples[first_ready:before_publish])
    # Ledger and as-of only when published: one row per table per day, the as-of of day 2.
    loads = _rows(scratch_db, "SELECT table_name, run_id, load_mode, rows_loaded FROM report_loads")
    assert loads == sorted((t, f"run_{d}", "swap", ROWS) for t in TABLES for d in (1, 2))
    as_of = _rows(scratch_db, "SELECT table_name, run_id FROM report_as_of")
    assert as_of == [("*", "run_2"), ("customers", "run_2"), ("orders", "run_2")]
    assert _rows(scratch_db, "SELECT COUNT(*) FROM report_pending") == [(0,)]
    assert [t for (t,) in _rows(scratch_db, "SHOW TABLES") if t.startswith("_rp_")] == []
    print(
        f"\njoin reader: {len(reader.samples)} polls, {in_window} between the first shadow ready and the "
        f"publish, {sum(1 for s in reader.samples if s not in (old, new))} mixed"
    )


def test_a_failed_table_keeps_the_whole_company_on_its_previous_day(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    keys = _held_day(scratch_db, bucket, 1, 1)
    _publish(scratch_db, [DayTable(t, f"table {t!r}", keys[t]) for t in TABLES])
    day1 = _live(scratch_db)
    ledger_before = _rows(scratch_db, "SELECT * FROM report_loads")
    as_of_before = _rows(scratch_db, "SELECT * FROM report_as_of")

    # Day 2: orders loads; customers' new data lost 90 % of its rows, so its load is refused (the guard).
    orders = _load(
        scratch_db, bucket, "orders", _extract(scratch_db, bucket, "orders", _query("orders", 2), 2), 2, hold=True
    )
    shrunk = _extract(scratch_db, bucket, "customers", _query("customers", 2, ROWS // 10), 2)
    with pytest.raises(ReportPipelineError, match="fewer"):
        _load(scratch_db, bucket, "customers", shrunk, 2, hold=True)
    day = [
        DayTable("orders", "table 'orders' (tables row id=2)", orders.load_key, SwapGuard()),
        DayTable("customers", "table 'customers' (tables row id=3)", None, SwapGuard()),
    ]
    with pytest.raises(RefusedError) as refused:
        _publish(scratch_db, day)
    message = str(refused.value)
    assert "company 'pubtest' (companies row id=1): not publishing the day" in message
    assert "table 'customers' (tables row id=3): its load did not finish" in message
    assert "stays on its previous day" in message and "table 'orders'" not in message.split("did not finish")[1]
    assert _live(scratch_db) == day1
    assert _rows(scratch_db, "SELECT * FROM report_loads") == ledger_before
    assert _rows(scratch_db, "SELECT * FROM report_as_of") == as_of_before
    # orders' day-2 copy waits (a retry of the failed table and the publish can still make the day).
    assert _rows(scratch_db, "SELECT table_name FROM report_pending") == [("orders",)]

    # The company's second setting: publish the others and say which table is behind.
    result = _publish(scratch_db, day, partial=True)
    assert result.published == ("orders",) and list(result.behind) == ["customers"]
    assert _live(scratch_db) == {"orders": _expected(scratch_db, 2)["orders"], "customers": day1["customers"]}
    assert _rows(scratch_db, "SELECT table_name, run_id FROM report_as_of") == [
        ("*", "run_1"),
        ("customers", "run_1"),
        ("orders", "run_2"),
    ]


def test_the_publish_keeps_the_guards_a_newer_full_refresh_is_never_replaced(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    keys = _held_day(scratch_db, bucket, 1, 1)
    # While day 1 waits for its publish, day 3 of orders is swapped in on its own (a manual run).
    _load(scratch_db, bucket, "orders", _extract(scratch_db, bucket, "orders", _query("orders", 3), 3), 3, hold=False)
    live = _live(scratch_db)
    with pytest.raises(RefusedError, match=r"table 'orders'.*newer full refresh|its loaded copy"):
        _publish(scratch_db, [DayTable(t, f"table {t!r}", keys[t]) for t in TABLES])
    assert _live(scratch_db) == live
