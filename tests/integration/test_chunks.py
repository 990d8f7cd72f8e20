"""Issues 4 and 10: chunked extracts cover every row exactly once, and re-running a date converges.

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
from tests.conftest import LocalConnections, execute, mysql_connect

from report_pipeline import tasks
from report_pipeline.chunks import plan_chunks
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.extract import ExtractRequest, extract
from report_pipeline.load import LoadRequest, LoadResult, load
from report_pipeline.manifest import (
    MANIFEST_NAME,
    SUCCESS_NAME,
    Manifest,
    extract_prefix,
    new_extract_id,
    table_prefix,
)
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.validation import InsertTarget
from report_pipeline.vocabulary import Chunk

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


def _plan(db: str, chunk_rows: int, company: int = 1) -> list[Chunk]:
    conn = mysql_connect(db)
    try:
        return plan_chunks(conn, QUERY, (company,), "id", chunk_rows)
    finally:
        conn.close()


def _covers(chunk: Chunk, value: int | None) -> bool:
    if value is None or chunk.nulls:
        return value is None and chunk.nulls
    return (chunk.low is None or chunk.low <= value) and (chunk.high is None or value < chunk.high)


def test_planned_ranges_cover_every_row_exactly_once_on_sparse_and_dense_ids(source):
    ids = _ids(source)
    for chunk_rows in (1_000, 10_000, 20_000, len(ids), 10 * len(ids)):
        chunks = _plan(source, chunk_rows)
        ranges, nulls = chunks[:-1], chunks[-1]
        # Half-open, ascending, touching: [lo, hi) followed by [hi, ...); open at both ends.
        assert nulls.nulls and [c.index for c in chunks] == list(range(len(chunks)))
        assert {c.count for c in chunks} == {len(chunks)}
        assert ranges[0].low is None and ranges[-1].high is None
        assert all(a.high == b.low for a, b in itertools.pairwise(ranges))
        # Every value, also below the planned MIN, above the planned MAX, and NULL, in exactly one chunk.
        for value in [*ids, min(ids) - 10**12, max(ids) + 10**12, None]:
            assert sum(_covers(c, value) for c in chunks) == 1, (chunk_rows, value)
    assert len(_plan(source, 10 * len(ids))) == 2  # one range for everything, and the NULL chunk
    # Equal-width ranges: with a 9-billion-wide key space most rows sit in the first range.
    assert len(_plan(source, len(ids) // 4 + 1)) == 4 + 1


def _extract(
    db: str, bucket: Bucket, prefix: str | None, chunk: Chunk | None, part_bytes: int, company: int = 1
) -> Manifest:
    """One extract attempt into its own folder (``prefix`` overrides the folder for unchunked copies)."""
    extract_id = new_extract_id("test_chunks")
    if prefix is None:
        prefix = extract_prefix("src", DATE, extract_id, chunk.index if chunk else None)
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
                extract_id=extract_id,
            ),
        )
    finally:
        conn.close()


def _extract_chunked(
    db: str, bucket: Bucket, chunks: int, part_bytes: int = 32 * 2**20, company: int = 1
) -> list[Manifest]:
    """Plan about ``chunks`` ranges (plus the NULL chunk) and extract them concurrently, one connection each."""
    total = len(_ids(db, company))
    planned = _plan(db, -(-total // chunks), company)
    with ThreadPoolExecutor(len(planned)) as pool:
        futures = [pool.submit(_extract, db, bucket, None, c, part_bytes, company) for c in planned]
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
    assert len(manifests) == 4 + 1  # four ranges and the NULL chunk
    assert [m.chunk for m in manifests] == _plan(source, -(-total // 4), company)
    assert manifests[-1].chunk is not None and manifests[-1].chunk.nulls and manifests[-1].rows == 0
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

    # Each attempt writes a folder of its own; the second load removed the first attempts' folders.
    assert not {m.prefix for m in second} & {m.prefix for m in first}
    assert all(len(m.parts) == 1 for m in second)
    expected_keys = {m.key for m in second} | {p.key for m in second for p in m.parts} | {f"{prefix}/{SUCCESS_NAME}"}
    assert set(bucket.keys(prefix)) == expected_keys
    assert not expected_keys - {f"{prefix}/{SUCCESS_NAME}"} & keys_after_first
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


# --- Issue 10: every row once by construction, through the same task functions the DAG runs -------

ITEMS_DDL = (
    "CREATE TABLE {name} (seq INT NOT NULL PRIMARY KEY, id BIGINT NULL, code VARCHAR(8) NULL, "
    "note VARCHAR(32) NULL, KEY (id))"
)
ITEMS_COLUMNS = "seq, id, code, note"


def _items_spec(chunk_column: str = "id", chunk_rows: int = 25, load_mode: str = "upsert") -> TableSpec:
    return build_table(
        {
            "id": 7,
            "name": "items",
            "status": 1,
            "query_select": f"SELECT {ITEMS_COLUMNS} FROM items",
            "params_select": "",
            # One company in these tests: the query reads only its rows, so it need not bind the company.
            "all_companies": 1,
            "query_insert": f"REPLACE INTO items ({ITEMS_COLUMNS}) VALUES",
            "load_mode": load_mode,
            "chunk_column": chunk_column,
            "chunk_rows": chunk_rows,
        }
    )


@pytest.fixture
def items(scratch_db: str, bucket_name: str) -> dict[str, Any]:
    """A source ``items`` table and its target copy in one scratch schema, a company writing there."""
    execute(
        mysql_connect(scratch_db),
        ITEMS_DDL.format(name="items"),
        f"CREATE DATABASE `{scratch_db}_t`",
        ITEMS_DDL.format(name=f"`{scratch_db}_t`.items"),
    )
    company = Company(1, 1, 1, "chk", bucket_name, f"{scratch_db}_t", 1, "default")
    yield {"db": scratch_db, "target": f"{scratch_db}_t", "company": company, "conns": LocalConnections(scratch_db)}
    execute(mysql_connect(), f"DROP DATABASE IF EXISTS `{scratch_db}_t`")


def _rows(db: str, table: str = "items") -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(f"SELECT {ITEMS_COLUMNS} FROM `{table}` ORDER BY seq")
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def _plan_extract_load(
    items: dict[str, Any], spec: TableSpec, between: Any = None, load: bool = True
) -> tuple[list[Chunk], list[Manifest], LoadResult | None]:
    """What the DAG does for a chunked table: plan, (``between``), one extract per chunk, one load."""
    conns, company = items["conns"], items["company"]
    settings = Settings()
    chunks = tasks.plan_table_chunks(conns, company, spec, DATE)
    if between is not None:
        between()
    manifests = [tasks.extract_table(conns, settings, company, spec, DATE, "run-items", chunk=c) for c in chunks]
    result = None
    if load:
        result = tasks.load_table(conns, settings, company, spec, [m.ref for m in manifests], DATE, "run-items")
    return chunks, manifests, result


def test_rows_whose_chunk_column_is_null_are_copied(items):
    execute(
        mysql_connect(items["db"]),
        "INSERT INTO items SELECT seq, IF(seq % 10 = 0, NULL, seq * 3), CONCAT('c', seq), 'n' FROM seq_1_to_100",
    )
    chunks, manifests, result = _plan_extract_load(items, _items_spec())
    assert chunks[-1].nulls and chunks[-1].label("id") == "id IS NULL"
    assert manifests[-1].rows == 10  # the NULL chunk's own extract
    assert result is not None and result.rows == 100
    assert _rows(items["target"]) == _rows(items["db"])
    assert sum(1 for r in _rows(items["target"]) if r[1] is None) == 10


def test_a_text_chunk_column_is_refused_at_planning_by_its_type(items):
    # As text '10' < '9': MIN/MAX of the values would plan the wrong ranges; the type decides instead.
    execute(
        mysql_connect(items["db"]),
        "INSERT INTO items VALUES (1, 1, '9', 'a'), (2, 2, '10', 'b')",
        f"INSERT INTO `{items['target']}`.items VALUES (5, 5, 'old', 'kept')",
    )
    with pytest.raises(ConfigError) as refused:
        tasks.plan_table_chunks(items["conns"], items["company"], _items_spec("code"), DATE)
    assert str(refused.value) == (
        "company 'chk' table 'items' (tables row id=7): chunk column 'code' is VARCHAR, not an integer type; "
        "set tables.chunk_column to an integer column or NULL"
    )
    with pytest.raises(ConfigError, match=r"chunk column 'nope' is not a column of the query's result"):
        tasks.plan_table_chunks(items["conns"], items["company"], _items_spec("nope"), DATE)
    assert _rows(items["target"]) == [(5, 5, "old", "kept")]


def test_rows_inserted_after_planning_above_max_and_below_min_are_copied_by_a_swap(items):
    execute(
        mysql_connect(items["db"]),
        "INSERT INTO items SELECT seq, 1000 + seq, 'c', 'planned' FROM seq_1_to_100",
        f"INSERT INTO `{items['target']}`.items SELECT seq, seq, 'old', 'stale' FROM seq_1_to_60",
    )

    def insert_outside_the_planned_range() -> None:
        execute(
            mysql_connect(items["db"]),
            "INSERT INTO items VALUES (201, 5000, 'c', 'above max'), (202, 1, 'c', 'below min'), "
            "(203, NULL, 'c', 'null'), (204, -7, 'c', 'negative')",
        )

    spec = _items_spec(load_mode="swap")
    chunks, _, result = _plan_extract_load(items, spec, insert_outside_the_planned_range)
    labels = [c.label("id") for c in chunks]
    assert labels[0].startswith("id < ") and labels[-2].startswith("id >= ") and labels[-1] == "id IS NULL"
    assert result is not None and result.rows == 104
    assert _rows(items["target"]) == _rows(items["db"])  # a full refresh: exactly the source, new rows too
    assert {r[3] for r in _rows(items["target"])} == {"planned", "above max", "below min", "null", "negative"}


def test_an_empty_source_still_plans_chunks_and_loads_nothing(items):
    chunks, manifests, result = _plan_extract_load(items, _items_spec())
    assert [c.label("id") for c in chunks] == ["id IS NOT NULL", "id IS NULL"]
    assert [m.rows for m in manifests] == [0, 0]
    assert result is not None and result.rows == 0 and not result.skipped
    assert _rows(items["target"]) == []
    loads = _load_rows(items["target"])
    assert [(t, n) for t, _, n, _ in loads] == [("items", 0)]


def test_a_load_missing_one_chunk_is_refused_and_leaves_the_target_unchanged(items):
    execute(mysql_connect(items["db"]), "INSERT INTO items SELECT seq, seq, 'c', 'n' FROM seq_1_to_100")
    chunks, manifests, _ = _plan_extract_load(items, _items_spec(), load=False)
    assert len(chunks) == 5
    given = [m.ref for m in manifests if m.chunk is not None and m.chunk.index != 1]
    with pytest.raises(TransferError) as refused:
        tasks.load_table(items["conns"], Settings(), items["company"], _items_spec(), given, DATE, "run-items")
    assert str(refused.value).startswith(
        "company 'chk' table 'items' (tables row id=7): refusing to load: the plan has 5 chunks but the load "
        "was given 4: chunk(s) [1] missing"
    )
    doubled = [m.ref for m in manifests] + [manifests[2].ref]
    with pytest.raises(TransferError, match=r"chunk\(s\) \[2\] given more than once"):
        tasks.load_table(items["conns"], Settings(), items["company"], _items_spec(), doubled, DATE, "run-items")
    assert _rows(items["target"]) == []
    conn = mysql_connect(items["target"])
    cursor = conn.cursor()
    cursor.execute("SHOW TABLES")
    assert [r[0] for r in cursor.fetchall()] == ["items"]  # refused before anything was written, ledger too
    conn.close()
