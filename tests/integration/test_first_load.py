"""Issue 24 item 4: an upsert or incremental load into an EMPTY table takes the shadow path, on the real servers.

Checked as a user would: the target's rows against the source's, the ledger row, the watermark; that
the path taken was the shadow's (a RENAME happened) or the upsert's (none); and the two stray-writer
interleavings the first load guards against, made to happen: a row committed by someone else while the
shadow loads (before the last emptiness check) and one committed just before the RENAME.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.incremental.cursor import CursorRequest
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import Manifest
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

ROWS = 30_000
COLUMNS = ("id", "val", "note", "updated_at")
LOGICAL = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
STRAY = (99_000_001, -1, "stray", "2020-01-01 00:00:00.000000")


class Watched(MySqlTarget):
    """The real MySQL target, noting each RENAME and running a test's hook at two points of the load."""

    def __init__(self, conn: Any, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.renames: list[list[tuple[str, str, str]]] = []
        self.before_rename: Callable[[], None] | None = None
        self.on_shadow_count: Callable[[], None] | None = None

    def replace_tables(self, schema: str, swaps: Sequence[tuple[str, str, str]], keep_retired: bool = False) -> None:
        if self.before_rename is not None:
            self.before_rename()
        self.renames.append(list(swaps))
        super().replace_tables(schema, swaps, keep_retired)

    def count_rows(self, schema: str, table: str) -> int:
        counted = super().count_rows(schema, table)
        if table.startswith("_rp_new_") and self.on_shadow_count is not None:
            self.on_shadow_count()
        return counted


def _setup(db: str) -> None:
    conn = mysql_connect(db)
    execute(
        conn,
        "CREATE TABLE src (id INT NOT NULL PRIMARY KEY, val INT NOT NULL, note VARCHAR(40) NULL, "
        "updated_at DATETIME(6) NOT NULL)",
        f"INSERT INTO src SELECT seq, seq * 3, IF(seq % 7 = 0, NULL, CONCAT('n', seq)), "
        f"TIMESTAMP('2026-11-01') + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
        "CREATE TABLE tgt (id INT NOT NULL PRIMARY KEY, val INT NOT NULL, note VARCHAR(40) NULL, "
        "updated_at DATETIME(6) NOT NULL, KEY (val))",
    )
    MySqlTarget(conn).ensure_ledger(db)  # the schema is the company's (the source table sits beside it here)
    conn.close()


def _extract(db: str, bucket: Bucket, cursor: CursorRequest | None = None) -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="first",
                table="tgt",
                bucket=bucket,
                prefix=f"tgt/{time.monotonic_ns()}",
                query=f"SELECT {', '.join(COLUMNS)} FROM src",
                parameters=(),
                logical_date=LOGICAL.isoformat(),
                run_id="first_run",
                part_bytes=128 * 1024,
                cursor=cursor,
            ),
        )
    finally:
        conn.close()


def _load(db: str, bucket: Bucket, manifest: Manifest, mode: str, target: Watched) -> LoadResult:
    return load(
        target,
        LoadRequest(
            company="first",
            schema=db,
            target=InsertTarget("tgt", COLUMNS, "replace"),
            load_mode=mode,
            bucket=bucket,
            manifest_keys=(manifest.key,),
            success_key="tgt/_SUCCESS",
            logical_date=LOGICAL,
            run_id="first_run",
            parallelism=2,
        ),
    )


def _rows(db: str, sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql)
    found = sorted(cursor.fetchall())
    conn.close()
    return found


def _source(db: str) -> list[tuple[Any, ...]]:
    return _rows(db, f"SELECT {', '.join(COLUMNS)} FROM src")


def _target(db: str) -> list[tuple[Any, ...]]:
    return _rows(db, f"SELECT {', '.join(COLUMNS)} FROM tgt")


def _leftovers(db: str) -> list[str]:
    return [t for (t,) in _rows(db, "SHOW TABLES") if t.startswith("_rp_")]


def _watched() -> Watched:
    return Watched(mysql_connect(), opener=mysql_connect)


def _stray_insert(db: str, *rows: tuple[Any, ...]) -> Callable[[], None]:
    def insert() -> None:
        conn = mysql_connect(db)
        cursor = conn.cursor()
        cursor.executemany("INSERT INTO tgt (id, val, note, updated_at) VALUES (%s, %s, %s, %s)", rows)
        conn.commit()
        conn.close()

    return insert


def test_an_upsert_into_an_empty_table_goes_through_a_shadow_and_a_populated_one_does_not(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    manifest = _extract(scratch_db, bucket)
    assert len(manifest.parts) > 2, "several parts, loaded over two sessions"
    target = _watched()
    result = _load(scratch_db, bucket, manifest, "upsert", target)
    assert result.rows == ROWS and not result.skipped
    assert len(target.renames) == 1, "the first load swapped a loaded shadow in"
    assert _target(scratch_db) == _source(scratch_db)
    assert _rows(scratch_db, "SELECT table_name, load_mode, rows_loaded, load_key FROM report_loads") == [
        ("tgt", "upsert", ROWS, result.load_key)
    ]
    assert _leftovers(scratch_db) == []
    # The secondary index came with the shadow (CREATE TABLE ... LIKE).
    assert ("val",) in [
        (c,)
        for (c,) in _rows(
            scratch_db,
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
            f"WHERE TABLE_SCHEMA = '{scratch_db}' AND TABLE_NAME = 'tgt' "
            "AND INDEX_NAME = 'val'",
        )
    ]
    target.close()

    # A populated table: 10 % of the source's rows changed; the upsert path, in one transaction.
    execute(mysql_connect(scratch_db), "UPDATE src SET val = val + 1, note = 'changed' WHERE id % 10 = 0")
    target = _watched()
    again = _load(scratch_db, bucket, _extract(scratch_db, bucket), "upsert", target)
    assert again.rows == ROWS and target.renames == []
    assert _target(scratch_db) == _source(scratch_db)
    assert [m for (m,) in _rows(scratch_db, "SELECT load_mode FROM report_loads")] == ["upsert", "upsert"]
    target.close()


def test_an_incremental_first_load_sets_its_watermark_through_the_shadow_path(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    manifest = _extract(scratch_db, bucket, CursorRequest("updated_at", None))
    target = _watched()
    result = _load(scratch_db, bucket, manifest, "incremental", target)
    assert result.rows == ROWS and len(target.renames) == 1
    assert _target(scratch_db) == _source(scratch_db)
    (highest,) = _rows(scratch_db, "SELECT MAX(updated_at) FROM src")[0]
    marks = _rows(scratch_db, "SELECT table_name, cursor_column, cursor_value, load_key FROM report_watermarks")
    assert marks == [("tgt", "updated_at", f"{highest:%Y-%m-%d %H:%M:%S.%f}", result.load_key)]
    assert _rows(scratch_db, "SELECT load_mode, rows_loaded FROM report_loads") == [("incremental", ROWS)]
    assert _leftovers(scratch_db) == []
    target.close()


def test_a_row_written_by_someone_else_during_the_first_load_is_kept(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    source = _source(scratch_db)
    conflicting = (1, -5, "stray over a loaded key", "2020-01-01 00:00:00.000000")

    # 1. Committed while the shadow loaded (seen by the check before the RENAME): merged as an upsert.
    target = _watched()
    target.on_shadow_count = _stray_insert(scratch_db, STRAY, conflicting)
    result = _load(scratch_db, bucket, _extract(scratch_db, bucket), "upsert", target)
    assert result.rows == ROWS and target.renames == [], "no RENAME over a table someone wrote"
    found = _target(scratch_db)
    assert found == sorted([*source, (STRAY[0], -1, "stray", dt.datetime(2020, 1, 1))]), "the load's rows win by key"
    assert _leftovers(scratch_db) == []
    target.close()

    # 2. Committed right before the RENAME (it lands in the retired table): copied into the new table.
    execute(mysql_connect(scratch_db), "TRUNCATE TABLE tgt", "DELETE FROM report_loads")
    target = _watched()
    target.before_rename = _stray_insert(scratch_db, STRAY, conflicting)
    result = _load(scratch_db, bucket, _extract(scratch_db, bucket), "upsert", target)
    assert result.rows == ROWS and len(target.renames) == 1
    assert _target(scratch_db) == found
    assert _rows(scratch_db, "SELECT load_mode, rows_loaded FROM report_loads") == [("upsert", ROWS)]
    assert _leftovers(scratch_db) == []
    target.close()


def test_duplicate_keys_in_the_extract_fall_back_to_the_serial_upsert(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    _setup(scratch_db)
    # The same key twice in one extract: the serial upsert keeps the last; parallel sessions could not promise it.
    conn = mysql_connect(scratch_db)
    execute(
        conn,
        "CREATE TABLE src2 LIKE src",
        "INSERT INTO src2 SELECT * FROM src",
        "ALTER TABLE src2 DROP PRIMARY KEY",
        "INSERT INTO src2 VALUES (5, 555, 'last', '2026-11-02 00:00:00')",
    )
    conn.close()
    src = mysql_connect(scratch_db)
    manifest = extract(
        src,
        ExtractRequest(
            company="first",
            table="tgt",
            bucket=bucket,
            prefix=f"tgt/{time.monotonic_ns()}",
            query=f"SELECT {', '.join(COLUMNS)} FROM src2 ORDER BY id = 5 AND val = 555, id",
            parameters=(),
            logical_date=LOGICAL.isoformat(),
            run_id="first_run",
            part_bytes=128 * 1024,
        ),
    )
    src.close()
    target = _watched()
    result = _load(scratch_db, bucket, manifest, "upsert", target)
    assert result.rows == ROWS + 1 and target.renames == []
    assert _rows(scratch_db, "SELECT val, note FROM tgt WHERE id = 5") == [(555, "last")]
    assert _rows(scratch_db, "SELECT COUNT(*) FROM tgt") == [(ROWS,)]
    assert _leftovers(scratch_db) == []
    target.close()
