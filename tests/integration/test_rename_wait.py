"""Issue 11.5: a swap whose RENAME waits on readers retries the RENAME, not the whole reload.

A BI session holds a transaction open on the live table (a SELECT inside START TRANSACTION keeps a
metadata lock until COMMIT), so the RENAME waits ``REPORTS_RENAME_LOCK_WAIT`` and gets 1205. The
reader lets go only after the load logged that wait (no timing involved). The swap then completes
on a later RENAME try with the shadow loaded once: every part went through LOAD DATA exactly once.
With a single try allowed (what the load did before: one RENAME, fail, reload on the task's retry)
the load fails naming the bound, and the live table, the ledger and the schema are as they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

import pytest
from tests.conftest import LocalConnections, execute, mysql_connect

from report_pipeline import tasks
from report_pipeline.config import Company, build_table
from report_pipeline.errors import TransferError
from report_pipeline.settings import Settings
from report_pipeline.target.mysql import MySqlTarget

pytestmark = pytest.mark.integration

LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
ROWS = 5000


class WaitedOnce(logging.Handler):
    """Set when the load logs that its RENAME waited on readers' locks."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "RENAME waited" in record.getMessage():
            self.seen.set()


class HoldingReader(threading.Thread):
    """Reads the live table inside a transaction and keeps it open until ``release`` is set."""

    def __init__(self, schema: str, release: threading.Event) -> None:
        super().__init__(daemon=True)
        self.schema, self.release = schema, release
        self.holding = threading.Event()
        self.count: int | None = None

    def run(self) -> None:
        conn = mysql_connect(self.schema)
        cursor = conn.cursor()
        cursor.execute("START TRANSACTION")
        cursor.execute("SELECT COUNT(*) FROM dst")
        self.count = int(cursor.fetchone()[0])
        self.holding.set()
        self.release.wait(timeout=120)
        conn.commit()
        conn.close()


def _world(scratch_db: str, bucket: str) -> tuple[Company, Any]:
    execute(
        mysql_connect(scratch_db),
        "CREATE TABLE src (id INT PRIMARY KEY, name VARCHAR(20))",
        f"INSERT INTO src SELECT seq, CONCAT('n', seq) FROM seq_1_to_{ROWS}",
        "CREATE TABLE dst LIKE src",
        "INSERT INTO dst VALUES (1, 'old'), (999999, 'gone')",
    )
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="rw",
        bucket=bucket,
        schema=scratch_db,
        lookback_days=1,
        lookback_source="default",
    )
    spec = build_table(
        {
            "id": 3,
            "name": "src",
            "query_select": "SELECT id, name FROM src",
            "params_select": "",
            "all_companies": 1,
            "query_insert": "REPLACE INTO dst (id, name) VALUES",
            "load_mode": "swap",
            "status": 1,
        }
    )
    return company, spec


def _rows(schema: str, sql: str) -> list[tuple[Any, ...]]:
    cursor = mysql_connect(schema).cursor()
    cursor.execute(sql)
    return list(cursor.fetchall())


def _counting_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every LOAD DATA the target runs (the real method still runs)."""
    loaded: list[str] = []
    real = MySqlTarget.bulk_load

    def bulk_load(self: MySqlTarget, path: str, *args: Any, **kwargs: Any) -> int:
        loaded.append(path)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(MySqlTarget, "bulk_load", bulk_load)
    return loaded


def test_rename_waits_on_a_reader_and_swaps_without_reloading(scratch_db, bucket_name, monkeypatch):
    company, spec = _world(scratch_db, bucket_name)
    conns = LocalConnections(scratch_db)
    settings = Settings(part_bytes=1024 * 16, rename_lock_wait_seconds=1, rename_attempts=8)
    manifest = tasks.extract_table(conns, settings, company, spec, LOGICAL_DATE, "run-1")
    assert len(manifest.parts) > 1
    loaded = _counting_loads(monkeypatch)
    waited = WaitedOnce()
    logging.getLogger("report_pipeline.target.mysql").addHandler(waited)
    reader = HoldingReader(scratch_db, waited.seen)
    reader.start()
    assert reader.holding.wait(30)
    try:
        result = tasks.load_table(conns, settings, company, spec, [manifest.ref], LOGICAL_DATE, "run-1")
    finally:
        waited.seen.set()
        reader.join()
        logging.getLogger("report_pipeline.target.mysql").removeHandler(waited)
    assert reader.count == 2, "the reader held the old table"
    assert result.rows == ROWS
    assert len(loaded) == len(manifest.parts), "each part was loaded once: the RENAME was retried, not the load"
    assert _rows(scratch_db, "SELECT COUNT(*), SUM(id), SUM(name = CONCAT('n', id)) FROM dst") == [
        (ROWS, ROWS * (ROWS + 1) // 2, ROWS)
    ]
    assert _rows(scratch_db, "SELECT COUNT(*) FROM report_loads") == [(1,)]
    assert [t for (t,) in _rows(scratch_db, "SHOW TABLES") if t.startswith("_rp_")] == []


def test_when_readers_outlast_every_rename_try_the_load_fails_naming_the_bound(scratch_db, bucket_name):
    company, spec = _world(scratch_db, bucket_name)
    conns = LocalConnections(scratch_db)
    settings = Settings(rename_lock_wait_seconds=1, rename_attempts=1)
    manifest = tasks.extract_table(conns, settings, company, spec, LOGICAL_DATE, "run-1")
    release = threading.Event()
    reader = HoldingReader(scratch_db, release)
    reader.start()
    assert reader.holding.wait(30)
    try:
        with pytest.raises(TransferError, match=r"REPORTS_RENAME_ATTEMPTS x REPORTS_RENAME_LOCK_WAIT"):
            tasks.load_table(conns, settings, company, spec, [manifest.ref], LOGICAL_DATE, "run-1")
    finally:
        release.set()
        reader.join()
    assert _rows(scratch_db, "SELECT id, name FROM dst ORDER BY id") == [(1, "old"), (999999, "gone")]
    assert _rows(scratch_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
    assert [t for (t,) in _rows(scratch_db, "SHOW TABLES") if t.startswith("_rp_")] == []
