"""Issue 4: chunked extracts cover every row exactly once, and re-running a date converges.

Chunks run here in threads, each with its own source connection, as the mapped extract tasks do;
one load then takes all their manifests, and the result must equal an unchunked copy row by row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.chunks import plan_chunks
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import MANIFEST_NAME, SUCCESS_NAME, Manifest, extract_prefix, table_prefix
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget

pytestmark = pytest.mark.integration

DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
COLUMNS = ("id", "company", "amount", "note")
DDL = (
    "CREATE TABLE {name} (id BIGINT NOT NULL PRIMARY KEY, company INT NOT NULL, amount DECIMAL(12,2) NULL, "
    "note VARCHAR(64) NULL, KEY (company))"
)
QUERY = "SELECT id, company, amount, note FROM src WHERE company = %s"


@pytest.fixture
def source(scratch_db: str) -> str:
    """A source table whose ids are dense in one place and very sparse in others, for two companies."""
    conn = mysql_connect(scratch_db)
    execute(
        conn,
        DDL.format(name="src"),
        DDL.format(name="tgt_whole"),
        DDL.format(name="tgt_chunked"),
        # Dense: 1..40000; sparse: every 1000th id up to 5 M; a lone id far out; another company between.
        "INSERT INTO src SELECT seq, 1, seq / 100, IF(seq % 7 = 0, NULL, CONCAT('n,\"', seq)) FROM seq_1_to_40000",
        "INSERT INTO src SELECT seq, 1, NULL, 'sparse' FROM seq_41000_to_5000000_step_1000",
        "INSERT INTO src VALUES (9000000000, 1, 1.5, 'far'), (-5, 1, 0, 'negative')",
        "INSERT INTO src SELECT seq, 2, 1, 'other' FROM seq_5000001_to_5001000",
        # Company 3: 200k dense ids, where equal-width ranges hold equal shares.
        "INSERT INTO src SELECT 6000000 + seq, 3, seq % 1000, CONCAT('d', seq) FROM seq_1_to_200000",
    )
    conn.close()
    return scratch_db


def _ids(db: str, company: int = 1) -> list[int]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT id FROM src WHERE company = %s ORDER BY id", (company,))
    ids = [int(r[0]) for r in cursor.fetchall()]
    conn.close()
    return ids


def _plan(db: str, chunk_rows: int, company: int = 1) -> list[tuple[int, int]]:
    conn = mysql_connect(db)
    try:
        return plan_chunks(conn, QUERY, (company,), "id", chunk_rows)
    finally:
        conn.close()


def test_planned_ranges_cover_every_row_exactly_once_on_sparse_and_dense_ids(source):
    ids = _ids(source)
    for chunk_rows in (1_000, 10_000, 20_000, len(ids), 10 * len(ids)):
        ranges = _plan(source, chunk_rows)
        # Half-open, ascending, touching: [lo, hi) followed by [hi, ...).
        assert all(lo < hi for lo, hi in ranges)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert ranges[0][0] == min(ids) and ranges[-1][1] == max(ids) + 1
        hits = {i: sum(1 for lo, hi in ranges if lo <= i < hi) for i in ids}
        assert set(hits.values()) == {1}, chunk_rows
    assert len(_plan(source, 10 * len(ids))) == 1
    # Equal-width ranges: with a 9-billion-wide key space most rows sit in the first range.
    assert len(_plan(source, len(ids) // 4 + 1)) == 4


def _extract(
    db: str, bucket: Bucket, prefix: str, chunk: tuple[int, int] | None, part_bytes: int, company: int = 1
) -> Manifest:
    conn = mysql_connect(db)
    try:
        return extract(
            conn,
            ExtractRequest(
                company="chunktest",
                table="src",
                bucket=bucket,
                prefix=prefix,
                query=QUERY,
                parameters=(company,),
                logical_date=DATE.isoformat(),
                run_id="test_chunks",
                part_bytes=part_bytes,
                chunk_column="id" if chunk else None,
                chunk=chunk,
            ),
        )
    finally:
        conn.close()


def _extract_chunked(
    db: str, bucket: Bucket, chunks: int, part_bytes: int = 32 * 2**20, company: int = 1
) -> list[Manifest]:
    """Plan about ``chunks`` ranges and extract them concurrently, one connection each."""
    total = len(_ids(db, company))
    ranges = _plan(db, -(-total // chunks), company)
    with ThreadPoolExecutor(len(ranges)) as pool:
        futures = [
            pool.submit(_extract, db, bucket, extract_prefix("src", DATE, i), r, part_bytes, company)
            for i, r in enumerate(ranges)
        ]
        return [f.result() for f in futures]


def _load(db: str, bucket: Bucket, table: str, manifests: list[Manifest], mode: str = "upsert") -> LoadResult:
    conn = mysql_connect()
    try:
        return load(
            MySqlTarget(conn),
            LoadRequest(
                company="chunktest",
                schema=db,
                target=InsertTarget(table, COLUMNS, "replace"),
                load_mode=mode,
                bucket=bucket,
                manifest_keys=tuple(m.key for m in manifests),
                success_key=f"{table_prefix('src', DATE)}/{SUCCESS_NAME}",
                logical_date=DATE,
                run_id="test_chunks",
            ),
        )
    finally:
        conn.close()


def _table(db: str, table: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(f"SELECT id, company, amount, note FROM `{table}` ORDER BY id")
    rows = list(cursor.fetchall())
    conn.close()
    return rows


@pytest.mark.parametrize("company", [1, 3], ids=["sparse-skewed-ids", "dense-ids"])
def test_four_concurrent_chunks_plus_one_load_equal_an_unchunked_copy_row_by_row(source, bucket_name, s3, company):
    bucket = Bucket(s3, bucket_name)
    started = time.monotonic()
    whole = _extract(source, bucket, "whole/" + table_prefix("src", DATE), None, 32 * 2**20, company)
    _load(source, bucket, "tgt_whole", [whole])
    unchunked_seconds = time.monotonic() - started

    started = time.monotonic()
    manifests = _extract_chunked(source, bucket, 4, company=company)
    result = _load(source, bucket, "tgt_chunked", manifests)
    chunked_seconds = time.monotonic() - started

    total = len(_ids(source, company))
    assert len(manifests) == 4
    assert [m.chunk for m in manifests] == [tuple(r) for r in _plan(source, -(-total // 4), company)]
    assert sum(m.rows for m in manifests) == whole.rows == total == result.rows
    expected = [r for r in _table(source, "src") if r[1] == company]
    assert _table(source, "tgt_chunked") == _table(source, "tgt_whole") == expected
    print(
        f"\ncompany {company}: {whole.rows} rows: unchunked {unchunked_seconds:.2f} s, 4 chunks "
        f"{chunked_seconds:.2f} s (chunk rows {[m.rows for m in manifests]})"
    )


def _load_rows(db: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute("SELECT table_name, logical_date, rows_loaded, manifest_keys FROM report_loads ORDER BY id")
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def test_rerunning_a_logical_date_converges_with_the_same_keys_and_no_stale_parts(source, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    prefix = table_prefix("src", DATE)
    # First run: small parts, so each chunk writes several; the re-run writes one part per chunk.
    first = _extract_chunked(source, bucket, 4, part_bytes=64 * 1024)
    assert any(len(m.parts) > 1 for m in first)
    _load(source, bucket, "tgt_chunked", first)
    rows_after_first = _table(source, "tgt_chunked")
    keys_after_first = set(bucket.keys(prefix))

    second = _extract_chunked(source, bucket, 4)
    _load(source, bucket, "tgt_chunked", second)
    assert _table(source, "tgt_chunked") == rows_after_first  # no duplicates, no growth

    # Same manifest keys (deterministic per table and date), fewer parts, nothing stale left behind.
    assert [m.key for m in second] == [m.key for m in first]
    assert all(len(m.parts) == 1 for m in second)
    expected_keys = {m.key for m in second} | {p.key for m in second for p in m.parts} | {f"{prefix}/{SUCCESS_NAME}"}
    assert set(bucket.keys(prefix)) == expected_keys
    assert expected_keys < keys_after_first
    assert all(k.startswith(f"{prefix}/chunk-000") for k in expected_keys - {f"{prefix}/{SUCCESS_NAME}"})
    assert {k.rsplit("/", 1)[1] for k in expected_keys} >= {MANIFEST_NAME, "part-00000.csv.gz", SUCCESS_NAME}

    # One report_loads row per load: both loads happened (different extracts), each with all rows.
    loads = _load_rows(source)
    one_load = ("tgt_chunked", DATE.replace(tzinfo=None), len(rows_after_first))
    assert [(t, d, n) for t, d, n, _ in loads] == [one_load] * 2

    # Loading the very same extracts again (a retried task) is recognised and skipped.
    again = _load(source, bucket, "tgt_chunked", second)
    assert again.skipped and again.rows == len(rows_after_first)
    assert len(_load_rows(source)) == 2


def test_a_rerun_with_fewer_chunks_removes_the_earlier_runs_extra_chunks(source, bucket_name, s3):
    bucket = Bucket(s3, bucket_name)
    prefix = table_prefix("src", DATE)
    _load(source, bucket, "tgt_chunked", _extract_chunked(source, bucket, 4))
    second = _extract_chunked(source, bucket, 2)
    _load(source, bucket, "tgt_chunked", second)
    expected_keys = {m.key for m in second} | {p.key for m in second for p in m.parts} | {f"{prefix}/{SUCCESS_NAME}"}
    assert set(bucket.keys(prefix)) == expected_keys
