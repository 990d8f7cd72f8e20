"""The benchmark's data: the source generator (ported from ``../shared/bench/gen_source.sql``), the
bench schemas, target tables and buckets, and the NULL-aware fingerprint every copy is checked with."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

from serverkit import empty_bucket, query_one, run_sql, s3_client

SRC_DB, TGT_DB, TGT_TABLE = "bench_src", "bench_tgt", "events"
BUCKET_OURS, BUCKET_PEERS = "rp-bench-ours", "rp-bench-peers"
COLUMNS = ("id", "company_id", "username", "note", "amount", "created_at", "flag")
COLS = ", ".join(COLUMNS)
DEFAULT_ROWS = 1_000_000
BIG_ROWS = 5_000_000
RUN_PREFIX_DATE = "2026-11-26T000000Z"
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)

# Ported from ../shared/bench/gen_source.sql (mixed types, tricky text, NULLs; rows = sequence size).
# @TABLE@ and @ROWS@ are filled in; run over a utf8mb4 connection (the emoji). The table comment tags a
# table made by this exact generator, so a reused table is known to hold the same data.
GEN_SOURCE = (
    "DROP TABLE IF EXISTS @TABLE@",
    """CREATE TABLE @TABLE@ (
  id BIGINT PRIMARY KEY,
  company_id INT NOT NULL,
  username VARCHAR(64) CHARACTER SET utf8mb4,
  note TEXT CHARACTER SET utf8mb4 NULL,
  amount DECIMAL(14,4) NULL,
  created_at DATETIME(6) NOT NULL,
  flag TINYINT NOT NULL,
  KEY (company_id), KEY (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='@COMMENT@'""",
    r"""INSERT INTO @TABLE@
SELECT seq, 1 + (seq % 4),
  CONCAT('user_', seq, IF(seq % 97 = 0, ' 😀', '')),
  CASE WHEN seq % 11 = 0 THEN NULL
       WHEN seq % 13 = 0 THEN ''
       WHEN seq % 17 = 0 THEN CONCAT('line1\nline2, "quoted" \\ back ', seq)
       ELSE CONCAT('note ', seq, ', with comma') END,
  IF(seq % 7 = 0, NULL, (seq * 37 % 100000) / 100 + 0.0001),
  TIMESTAMP('2026-01-01') + INTERVAL (seq % 31536000) SECOND + INTERVAL (seq % 1000000) MICROSECOND,
  seq % 2
FROM seq_1_to_@ROWS@""",
)
GEN_TAG = "report-pipeline bench gen_source " + hashlib.sha1("\n".join(GEN_SOURCE).encode()).hexdigest()[:12]

# Ported from peers.py's FP: row count plus an order-independent checksum of every column, NULL-aware
# (CONCAT_WS skips NULLs, so each nullable column spells its NULL). SUM next to BIT_XOR catches pairs.
FINGERPRINT = (
    "SELECT COUNT(*), BIT_XOR(c), SUM(c) FROM (SELECT CRC32(CONCAT_WS('|', id, company_id, "
    "IFNULL(username,'<N>'), IFNULL(note,'<N>'), IFNULL(amount,'<N>'), created_at, flag)) AS c FROM {}) AS fp"
)


def generator_statements(table: str, rows: int) -> list[str]:
    """The generator's statements for ``table`` with ``rows`` rows, tagged with GEN_TAG."""
    return [s.replace("@TABLE@", table).replace("@ROWS@", str(rows)).replace("@COMMENT@", GEN_TAG) for s in GEN_SOURCE]


def table_name(rows: int) -> str:
    """The source table of a size: ``events``, ``events_5m``, else ``events_<rows>``."""
    if rows == DEFAULT_ROWS:
        return "events"
    if rows == BIG_ROWS:
        return "events_5m"
    return f"events_{rows}"


def fmt_rows(rows: int) -> str:
    """1000000 -> 1M, 20000 -> 20k."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def ensure_source(rows: int) -> tuple[str, float | None]:
    """Create bench_src.<table> with ``rows`` rows unless a table made by this generator already has them."""
    table = table_name(rows)
    run_sql(
        [
            f"CREATE DATABASE IF NOT EXISTS {SRC_DB} CHARACTER SET utf8mb4",
            f"CREATE DATABASE IF NOT EXISTS {TGT_DB} CHARACTER SET utf8mb4",
        ]
    )
    found = query_one(
        f"SELECT MAX(TABLE_COMMENT) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{SRC_DB}' "
        f"AND TABLE_NAME = '{table}'"
    )
    if found[0] == GEN_TAG:
        count = query_one(f"SELECT COUNT(*), MIN(id), MAX(id) FROM {SRC_DB}.{table}")
        if tuple(int(v or 0) for v in count) == (rows, 1, rows):
            print(f"== reusing {SRC_DB}.{table} ({rows:,} rows)", flush=True)
            return table, None
    print(f"== creating {SRC_DB}.{table} with {rows:,} rows (gen_source.sql) ...", flush=True)
    started = time.perf_counter()
    run_sql(generator_statements(table, rows), SRC_DB)
    seconds = time.perf_counter() - started
    print(f"   created in {seconds:.1f} s", flush=True)
    return table, seconds


def reset_target(source_table: str, populated: bool = False) -> None:
    """An empty target table; ``populated``: holding the source's rows with 10 % of them changed (untimed)."""
    run_sql(
        [
            f"DROP TABLE IF EXISTS {TGT_DB}.{TGT_TABLE}",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_loads",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_as_of",
            f"CREATE TABLE {TGT_DB}.{TGT_TABLE} LIKE {SRC_DB}.{source_table}",
        ]
        + (
            [
                f"INSERT INTO {TGT_DB}.{TGT_TABLE} SELECT * FROM {SRC_DB}.{source_table}",
                f"UPDATE {TGT_DB}.{TGT_TABLE} SET note = CONCAT('stale ', id), flag = 1 - flag WHERE id % 10 = 0",
            ]
            if populated
            else []
        )
    )


def fingerprint(qualified: str) -> list[int]:
    """FINGERPRINT of a table (``schema.table``) as integers."""
    return [int(v or 0) for v in query_one(FINGERPRINT.format(qualified))]


def same_rows(source: str, target: str, fingerprint_sql: str = FINGERPRINT) -> bool:
    """Whether two tables (``schema.table``) hold the same rows by ``fingerprint_sql``."""
    return bool(query_one(fingerprint_sql.format(source)) == query_one(fingerprint_sql.format(target)))


def ensure_bucket(client: Any, name: str = BUCKET_PEERS) -> None:
    """Create the bucket unless it exists (as peers.py does)."""
    try:
        client.create_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - it exists already (peers.py does the same)
        pass


def clean_buckets(names: tuple[str, ...] = (BUCKET_PEERS, BUCKET_OURS)) -> None:
    """Delete what the contenders left in their own buckets (up to 400 MB per table), so runs do not pile up."""
    client = s3_client()
    for name in names:
        try:
            empty_bucket(client, name)
        except Exception as exc:  # noqa: BLE001 - a missing bucket or a failed cleanup does not change results
            print(f"   (could not empty s3://{name}: {exc})", flush=True)


def check_buckets() -> None:
    """Both buckets must take multipart uploads (the peers' upload_file and Airflow's S3Hook use them)."""
    client = s3_client()
    for name in (BUCKET_OURS, BUCKET_PEERS):
        ensure_bucket(client, name)
        upload = client.create_multipart_upload(Bucket=name, Key="bench-preflight")
        client.abort_multipart_upload(Bucket=name, Key="bench-preflight", UploadId=upload["UploadId"])
