"""Issue 10: every row arrives once, in its own column, in its own company's schema, or the load refuses.

Each test builds the situation that made a run end green with wrong data before, on the real servers,
and checks the target's rows against their source (or that the target is exactly as it was).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
import uuid
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.errors import RefusedError, TransferError
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.guards import SwapGuard
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import Manifest
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _extract(db: str, bucket: Bucket, query: str, table: str = "tgt") -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="nw",
                table=table,
                bucket=bucket,
                prefix=f"{table}/{uuid.uuid4().hex[:8]}",
                query=query,
                parameters=(),
                logical_date=DAY.isoformat(),
                run_id="nw",
            ),
        )
    finally:
        conn.close()


def _load(schema: str, bucket: Bucket, manifest: Manifest, target: InsertTarget, mode: str, **extra: Any) -> LoadResult:
    day = extra.pop("day", 0)
    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn),
            LoadRequest(
                company="nw",
                schema=schema,
                target=target,
                load_mode=mode,
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key=f"{target.table}/{day}/_SUCCESS",
                logical_date=DAY + dt.timedelta(days=day),
                run_id=f"nw_{day}",
                **extra,
            ),
        )
    finally:
        conn.close()


def _rows(schema: str, query: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(schema)
    cursor = conn.cursor()
    cursor.execute(query)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


@pytest.fixture
def bucket(s3: Any, bucket_name: str) -> Bucket:
    return Bucket(s3, bucket_name)


# --- 2. columns by name -------------------------------------------------------------------------


def test_a_select_star_whose_source_reordered_its_columns_loads_each_value_into_its_own_column(
    scratch_db: str, bucket: Bucket
):
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, first_name VARCHAR(20), last_name VARCHAR(20))",
        "INSERT INTO src VALUES (1, 'ada', 'lovelace'), (2, 'alan', 'turing')",
        "CREATE TABLE tgt (id INT PRIMARY KEY, first_name VARCHAR(20), last_name VARCHAR(20))",
        # The source table changes its column order; same types, so nothing fails by position.
        "ALTER TABLE src MODIFY last_name VARCHAR(20) AFTER id",
    )
    manifest = _extract(scratch_db, bucket, "SELECT * FROM src")
    assert [c.name for c in manifest.columns] == ["id", "last_name", "first_name"]
    _load(scratch_db, bucket, manifest, InsertTarget("tgt", ("id", "first_name", "last_name"), "replace"), "upsert")
    assert _rows(scratch_db, "SELECT id, first_name, last_name FROM tgt ORDER BY id") == [
        (1, "ada", "lovelace"),
        (2, "alan", "turing"),
    ]


def test_a_different_set_of_columns_is_refused_naming_missing_and_extra(scratch_db: str, bucket: Bucket):
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, surname VARCHAR(20))",
        "INSERT INTO src VALUES (1, 'x')",
        "CREATE TABLE tgt (id INT PRIMARY KEY, last_name VARCHAR(20))",
        "INSERT INTO tgt VALUES (7, 'kept')",
    )
    manifest = _extract(scratch_db, bucket, "SELECT id, surname FROM src")
    with pytest.raises(
        RefusedError, match=r"not returned by the query: \['last_name'\]; not in query_insert: \['surname'\]"
    ):
        _load(scratch_db, bucket, manifest, InsertTarget("tgt", ("id", "last_name"), "replace"), "upsert")
    assert _rows(scratch_db, "SELECT * FROM tgt") == [(7, "kept")]


# --- 3. upsert needs a key ------------------------------------------------------------------------


def test_an_upsert_into_a_keyless_target_is_refused_instead_of_duplicating_rows_on_a_rerun(
    scratch_db: str, bucket: Bucket
):
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, v INT)",
        "INSERT INTO src VALUES (1, 10), (2, 20)",
        "CREATE TABLE tgt (id INT, v INT)",
    )
    target = InsertTarget("tgt", ("id", "v"), "replace")
    for _ in range(2):  # a cleared task or a CLI re-run extracts the same date again: a new extract id
        with pytest.raises(RefusedError, match="no PRIMARY or UNIQUE key"):
            _load(scratch_db, bucket, _extract(scratch_db, bucket, "SELECT id, v FROM src"), target, "upsert")
    assert _rows(scratch_db, "SELECT COUNT(*) FROM tgt") == [(0,)]
    # A key on a column the load does not fill cannot make REPLACE find earlier rows either.
    execute(mysql_connect(scratch_db), "ALTER TABLE tgt ADD COLUMN rid INT AUTO_INCREMENT PRIMARY KEY")
    with pytest.raises(RefusedError, match="no PRIMARY or UNIQUE key"):
        _load(scratch_db, bucket, _extract(scratch_db, bucket, "SELECT id, v FROM src"), target, "upsert")
    # With a key on the rows' identity, two re-runs leave each row once.
    execute(mysql_connect(scratch_db), "ALTER TABLE tgt ADD UNIQUE KEY uq_id (id)")
    for _ in range(2):
        _load(scratch_db, bucket, _extract(scratch_db, bucket, "SELECT id, v FROM src"), target, "upsert")
    assert _rows(scratch_db, "SELECT id, v FROM tgt ORDER BY id") == [(1, 10), (2, 20)]


# --- 4. swap guard --------------------------------------------------------------------------------


def _swap_table(db: str, rows: int) -> InsertTarget:
    execute(
        mysql_connect(db),
        "CREATE TABLE IF NOT EXISTS src (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE IF NOT EXISTS tgt (id INT PRIMARY KEY, v INT)",
        "DELETE FROM tgt",
        f"INSERT INTO tgt SELECT seq, seq FROM seq_1_to_{rows}",
    )
    return InsertTarget("tgt", ("id", "v"), "replace")


def test_an_empty_result_never_empties_a_table_unless_allowed(scratch_db: str, bucket: Bucket):
    target = _swap_table(scratch_db, 100)
    empty = _extract(scratch_db, bucket, "SELECT id, v FROM src")  # the source is empty (maintenance)
    with pytest.raises(RefusedError, match="new data is empty and would replace 100 rows"):
        _load(scratch_db, bucket, empty, target, "swap")
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(v) FROM tgt") == [(100, 5050)]
    assert _rows(scratch_db, "SHOW TABLES LIKE '\\_rp\\_%'") == []
    # The row (or a manual run) may allow it.
    _load(scratch_db, bucket, empty, target, "swap", guard=SwapGuard(allow_empty=True))
    assert _rows(scratch_db, "SELECT COUNT(*) FROM tgt") == [(0,)]


def test_a_swap_that_shrinks_a_table_past_the_limit_is_refused(scratch_db: str, bucket: Bucket):
    target = _swap_table(scratch_db, 100)
    execute(mysql_connect(scratch_db), "INSERT INTO src SELECT seq, -seq FROM seq_1_to_40")
    smaller = _extract(scratch_db, bucket, "SELECT id, v FROM src")
    with pytest.raises(RefusedError, match="60% fewer"):
        _load(scratch_db, bucket, smaller, target, "swap", guard=SwapGuard(max_shrink_percent=50))
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(v) FROM tgt") == [(100, 5050)]
    _load(scratch_db, bucket, smaller, target, "swap", guard=SwapGuard(max_shrink_percent=60))
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(v) FROM tgt") == [(40, -820)]


# --- 5. one writer per target table -------------------------------------------------------------


@pytest.mark.parametrize("older_first", [True, False])
def test_two_concurrent_swaps_of_one_table_end_with_the_newer_window(
    scratch_db: str, bucket: Bucket, older_first: bool
):
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, v INT)",
        "INSERT INTO src SELECT seq, 1 FROM seq_1_to_60000",
        "CREATE TABLE tgt (id INT PRIMARY KEY, v INT)",
    )
    target = InsertTarget("tgt", ("id", "v"), "replace")
    older = _extract(scratch_db, bucket, "SELECT id, v FROM src")  # the backfill of D-1
    execute(mysql_connect(scratch_db), "UPDATE src SET v = 2")
    newer = _extract(scratch_db, bucket, "SELECT id, v FROM src")  # the scheduled run of D
    first, second = ((older, 0), (newer, 1)) if older_first else ((newer, 1), (older, 0))
    results: dict[int, Any] = {}

    def run(manifest: Manifest, day: int) -> None:
        try:
            results[day] = _load(scratch_db, bucket, manifest, target, "swap", day=day)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            results[day] = exc

    threads = [threading.Thread(target=run, args=first), threading.Thread(target=run, args=second)]
    # The second starts once the first holds the table's writer lock: thread start order alone does
    # not decide which load reaches GET_LOCK first, and the assertions below depend on that order.
    lock_name = "report_pipeline:" + hashlib.sha1(f"{scratch_db}.tgt".encode()).hexdigest()[:40]
    watcher = mysql_connect()
    try:
        threads[0].start()
        cursor = watcher.cursor()
        while threads[0].is_alive():
            cursor.execute("SELECT IS_USED_LOCK(%s)", (lock_name,))
            if cursor.fetchone()[0] is not None:
                break
            time.sleep(0.005)
        threads[1].start()
        for t in threads:
            t.join(120)
    finally:
        watcher.close()
    # Whichever took the lock first, the target ends with D's rows, whole, and nothing left behind.
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(v) FROM tgt") == [(60000, 120000)], results
    assert _rows(scratch_db, "SHOW TABLES LIKE '\\_rp\\_%'") == []
    assert isinstance(results[1], LoadResult) and not results[1].skipped
    older_result = results[0]
    assert isinstance(older_result, LoadResult), older_result
    if not older_first:
        assert older_result.skip_reason == "older-window"


def test_a_load_waits_for_the_writer_lock_and_times_out_with_a_clear_message(scratch_db: str, bucket: Bucket):
    target = _swap_table(scratch_db, 10)
    execute(mysql_connect(scratch_db), "INSERT INTO src SELECT seq, seq FROM seq_1_to_10")
    manifest = _extract(scratch_db, bucket, "SELECT id, v FROM src")
    holder = mysql_connect()
    with MySqlTarget(holder).writer_lock(scratch_db, "tgt", 5):
        with pytest.raises(TransferError, match=r"another load of .* still runs after 1 s"):
            _load(scratch_db, bucket, manifest, target, "swap", lock_timeout_seconds=1)
    holder.close()
    _load(scratch_db, bucket, manifest, target, "swap")
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(v) FROM tgt") == [(10, 55)]


# --- 7. a company's schema is never someone else's -----------------------------------------------


def test_a_schema_that_holds_foreign_tables_is_not_adopted(scratch_db: str, bucket: Bucket):
    # The alias names an existing schema that is not a company's: e.g. the source schema on a shared server.
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, v INT)",
        "INSERT INTO src VALUES (1, 1)",
        "CREATE TABLE customers (id INT PRIMARY KEY, secret VARCHAR(20))",
        "INSERT INTO customers VALUES (1, 'keep me')",
        "CREATE TABLE tgt (id INT PRIMARY KEY, v INT)",
        "INSERT INTO tgt VALUES (5, 5)",
    )
    manifest = _extract(scratch_db, bucket, "SELECT id, v FROM src")
    target = InsertTarget("tgt", ("id", "v"), "replace")
    with pytest.raises(RefusedError, match=r"holds tables that are not this company.s report tables .*customers"):
        _load(scratch_db, bucket, manifest, target, "swap", company_tables=("tgt",))
    assert _rows(scratch_db, "SELECT * FROM tgt") == [(5, 5)]
    assert _rows(scratch_db, "SHOW TABLES LIKE 'report_loads'") == []
    with pytest.raises(RefusedError, match="is the source database"):
        _load(
            scratch_db,
            bucket,
            manifest,
            target,
            "swap",
            company_tables=("tgt",),
            protected_schemas={scratch_db: "the source database (reports_source_db)"},
        )
    # A seed-era schema made by hand holds only the company's report tables: it is adopted.
    execute(mysql_connect(scratch_db), "DROP TABLE customers")
    _load(scratch_db, bucket, manifest, target, "swap", company_tables=("tgt", "src"))
    assert _rows(scratch_db, "SELECT * FROM tgt") == [(1, 1)]
    # Once it holds the ledger it is the company's, whatever else is created in it later.
    execute(mysql_connect(scratch_db), "CREATE TABLE bi_notes (id INT)")
    _load(scratch_db, bucket, manifest, target, "upsert", company_tables=("tgt",), day=1)
