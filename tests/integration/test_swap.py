"""Issue 4: swap loads are atomic for readers, and failed loads (swap or upsert) change nothing.

A reader thread with its own autocommit connection queries the target in a tight loop while the main
thread swaps in two different datasets over and over; it must only ever see one of the two complete
datasets. Failed loads must leave the target exactly as it was and no shadow tables behind.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.errors import TransferError
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import Manifest
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

BASE_DATE = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
# Two datasets of different sizes and values, so (COUNT, SUM) tells them apart exactly.
DATASETS = {
    "small": ("SELECT seq AS id, seq * 3 AS val, CONCAT('a', seq) AS label FROM seq_1_to_20000", 20_000),
    "large": ("SELECT seq AS id, seq * 7 + 1 AS val, CONCAT('b', seq) AS label FROM seq_1_to_30000", 30_000),
}
TARGET = InsertTarget("tgt", ("id", "val", "label"), "replace")
TARGET_DDL = "CREATE TABLE tgt (id INT NOT NULL PRIMARY KEY, val INT NOT NULL, label VARCHAR(16) NOT NULL)"
SWAPS = 10


def _extract(db: str, bucket: Bucket, query: str, prefix: str, part_bytes: int = 32 * 2**20) -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="swaptest",
                table="tgt",
                bucket=bucket,
                prefix=prefix,
                query=query,
                parameters=(),
                logical_date=BASE_DATE.isoformat(),
                run_id="test_swap",
                part_bytes=part_bytes,
            ),
        )
    finally:
        conn.close()


def _load(
    db: str,
    bucket: Bucket,
    manifests: list[Manifest],
    mode: str,
    day: int,
    parallelism: int = 2,
    opened: list[Any] | None = None,
) -> LoadResult:
    def opener() -> Any:
        extra = mysql_connect()
        if opened is not None:
            opened.append(extra)
        return extra

    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn, opener=opener),
            LoadRequest(
                company="swaptest",
                schema=db,
                target=TARGET,
                load_mode=mode,
                bucket=bucket,
                manifest_keys=tuple(m.key for m in manifests),
                success_key=f"tgt/{day}/_SUCCESS",
                logical_date=BASE_DATE + dt.timedelta(days=day),
                run_id=f"test_swap_{day}",
                parallelism=parallelism,
            ),
        )
    finally:
        conn.close()


def _state(db: str) -> tuple[int, int, str]:
    """What a user checks: row count, value checksum and a checksum over every row's text."""
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(
        "SELECT COUNT(*), COALESCE(SUM(val), 0), COALESCE(SUM(CRC32(CONCAT_WS(',', id, val, label))), 0) FROM tgt"
    )
    count, total, crc = cursor.fetchone()
    conn.close()
    return int(count), int(total), str(crc)


def _leftover_tables(db: str) -> list[str]:
    conn = mysql_connect()
    cursor = conn.cursor()
    cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME LIKE '\\_rp\\_%%'",
        (db,),
    )
    names = [r[0] for r in cursor.fetchall()]
    conn.close()
    return names


def _report_loads(db: str) -> int:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*) FROM report_loads")
    count = int(cursor.fetchone()[0])
    conn.close()
    return count


class _Reader(threading.Thread):
    """Queries the target as fast as it can, recording every answer and every error."""

    def __init__(self, db: str) -> None:
        super().__init__(name="swap-reader", daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.samples: list[tuple[int, int]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = mysql_connect(self.db)
        conn.autocommit(True)
        cursor = conn.cursor()
        try:
            while not self.stop.is_set():
                try:
                    cursor.execute("SELECT COUNT(*), SUM(val) FROM tgt")
                    count, total = cursor.fetchone()
                    self.samples.append((int(count), int(total or 0)))
                except Exception as exc:  # noqa: BLE001 - every error is a finding the test reports
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def next_sample(self, timeout: float = 60.0) -> tuple[int, int]:
        """A sample whose query started after this call (the one after the one in flight)."""
        wanted = len(self.samples) + 2
        deadline = time.monotonic() + timeout
        while len(self.samples) < wanted:
            assert self.is_alive() and not self.errors, self.errors[:3]
            assert time.monotonic() < deadline, "the reader made no progress"
            time.sleep(0.005)
        return self.samples[wanted - 1]


def test_a_reader_never_sees_a_missing_empty_or_partial_table_during_repeated_swaps(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    execute(mysql_connect(scratch_db), TARGET_DDL)
    expected: dict[str, tuple[int, int]] = {}
    conn = mysql_connect(scratch_db)
    cursor = conn.cursor()
    for name, (query, rows) in DATASETS.items():
        cursor.execute(f"SELECT COUNT(*), SUM(val) FROM ({query}) AS q")
        count, total = cursor.fetchone()
        assert int(count) == rows
        expected[name] = (int(count), int(total))
    conn.close()
    # Day 0 fills the target before the reader starts, so "empty" is never a legitimate answer.
    _load(scratch_db, bucket, [_extract(scratch_db, bucket, DATASETS["small"][0], "tgt/0")], "swap", 0)
    assert _state(scratch_db)[:2] == expected["small"]

    reader = _Reader(scratch_db)
    reader.start()
    started = time.monotonic()
    try:
        for day in range(1, SWAPS + 1):
            name = "large" if day % 2 else "small"
            # A fresh extract each time: loading the same extract twice is (rightly) skipped as done.
            manifest = _extract(scratch_db, bucket, DATASETS[name][0], f"tgt/{day}")
            result = _load(scratch_db, bucket, [manifest], "swap", day)
            assert not result.skipped and result.rows == DATASETS[name][1]
            assert reader.next_sample() == expected[name], f"after swap {day} the reader did not see {name}"
    finally:
        reader.stop.set()
        reader.join(timeout=30)
    seconds = time.monotonic() - started

    assert reader.errors == []
    assert set(reader.samples) <= set(expected.values()), set(reader.samples) - set(expected.values())
    assert set(reader.samples) == set(expected.values())
    assert _leftover_tables(scratch_db) == []
    assert _report_loads(scratch_db) == SWAPS + 1
    print(f"\n{SWAPS} swaps of 20k/30k rows in {seconds:.2f} s; reader ran {len(reader.samples)} queries, 0 errors")


def _rows(db: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT id, val, label FROM tgt ORDER BY id")
    rows = list(cursor.fetchall())
    conn.close()
    return rows


@pytest.mark.parametrize("parallelism", [1, 3], ids=["serial", "parallel-3"])
def test_a_failed_swap_keeps_the_old_table_and_leaves_no_shadow_tables(scratch_db, bucket_name, s3, parallelism):
    bucket = Bucket(s3, bucket_name)
    execute(mysql_connect(scratch_db), TARGET_DDL)
    _load(scratch_db, bucket, [_extract(scratch_db, bucket, DATASETS["small"][0], "tgt/0")], "swap", 0)
    before = _rows(scratch_db)

    # 3 billion does not fit the target's INT: strict mode would refuse it, a lax one would clip it.
    # Small parts: the bad row sits in one part of many, loaded beside good ones on other sessions.
    too_big = _extract(
        scratch_db,
        bucket,
        "SELECT seq AS id, IF(seq = 25000, 3000000000, seq) AS val, 'x' AS label FROM seq_1_to_30000",
        "tgt/1",
        part_bytes=16 * 1024,
    )
    assert len(too_big.parts) > 6
    ends = [sum(p.rows for p in too_big.parts[: i + 1]) for i in range(len(too_big.parts))]
    bad_part = too_big.parts[next(i for i, end in enumerate(ends) if end >= 25000)]
    opened: list[Any] = []
    with pytest.raises(TransferError, match="would change values") as failure:
        _load(scratch_db, bucket, [too_big], "swap", 1, parallelism=parallelism, opened=opened)
    assert str(failure.value).startswith(bad_part.key), "the load fails with the bad part's own error"
    assert len(opened) == parallelism - 1 and not any(c.open for c in opened), "every extra session is closed"
    assert _rows(scratch_db) == before
    assert _leftover_tables(scratch_db) == []

    # Parts whose columns do not match the target's are refused before any table is touched.
    wrong_columns = _extract(scratch_db, bucket, "SELECT seq AS id, seq AS val FROM seq_1_to_10", "tgt/2")
    with pytest.raises(TransferError, match="column"):
        _load(scratch_db, bucket, [wrong_columns], "swap", 2)
    assert _rows(scratch_db) == before
    assert _leftover_tables(scratch_db) == []
    assert _report_loads(scratch_db) == 1
    assert not bucket.exists("tgt/1/_SUCCESS") and not bucket.exists("tgt/2/_SUCCESS")


def test_a_failed_upsert_leaves_the_target_exactly_as_before_even_after_a_good_first_part(scratch_db, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    execute(mysql_connect(scratch_db), TARGET_DDL)
    _load(scratch_db, bucket, [_extract(scratch_db, bucket, DATASETS["small"][0], "tgt/0")], "upsert", 0)
    before = _rows(scratch_db)
    assert len(before) == 20_000

    # First manifest: changes every existing row and adds 10k (REPLACE); second: one value too big.
    good = _extract(
        scratch_db, bucket, "SELECT seq AS id, seq AS val, 'changed' AS label FROM seq_1_to_30000", "tgt/1/a"
    )
    bad = _extract(
        scratch_db,
        bucket,
        "SELECT seq + 40000 AS id, IF(seq = 999, 3000000000, seq) AS val, 'bad' AS label FROM seq_1_to_1000",
        "tgt/1/b",
    )
    with pytest.raises(TransferError, match="would change values"):
        _load(scratch_db, bucket, [good, bad], "upsert", 1)
    assert _rows(scratch_db) == before
    assert _report_loads(scratch_db) == 1

    # The same good manifest on its own loads, so the failure above was the bad part's alone.
    result = _load(scratch_db, bucket, [good], "upsert", 1)
    assert result.rows == 30_000
    after = _rows(scratch_db)
    assert len(after) == 30_000 and after[0] == (1, 1, "changed") and after[-1] == (30_000, 30_000, "changed")
