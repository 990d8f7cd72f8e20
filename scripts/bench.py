"""Transfer benchmark (issue 16): MySQL -> S3 (CSV) -> MySQL, the project's engine against baselines.

Run by ``make bench`` (local MariaDB and SeaweedFS S3, started by ``scripts/services.sh``; ports from
``REPORTS_MYSQL_PORT`` / ``REPORTS_S3_PORT``). One run:

1. creates, or reuses when it already holds the right rows, the source table ``bench_src.events``
   (1 M rows by default, ``--rows N``) and, with ``--big`` (the default), ``bench_src.events_5m``;
2. runs every contender ``--repeat`` times (3), interleaved with the others (a slow phase of a shared
   machine hits all of them), each run in its own subprocess into a freshly recreated, empty
   ``bench_tgt.events``, then checks the copy: row count and a NULL-aware checksum over all columns;
3. prints one table: medians and spread (min-max) of the work time (the contender's own clock, after
   its imports) and of the whole-process wall time, start-up (wall - work), rows/s, peak RSS, RSS right
   after imports (and one S3 client) and the working set (peak - that), exactness, the ratios to the
   chain, the load average before each run; then issue 16's targets; everything also goes to
   ``test-output/bench.json``.

Contenders:
  ours-upsert     report_pipeline.extract + report_pipeline.load, load mode upsert into the empty table (a first
                  load: through a shadow over 2 parallel sessions, issue 24)
  ours-upsert-populated  the same into a table already holding the rows, 10 % of them changed (one transaction)
  ours-swap       the same, load mode swap over 2 parallel target sessions (REPORTS_LOAD_PARALLELISM)
  ours-swap-1, ours-swap-defer   (``--only``) swap on one session; swap with secondary indexes built after
  ours-chunked-4  (``--chunked``) the extract split in 4 ``id`` ranges extracted concurrently, one load
  airflow         the providers' SqlToS3Operator + S3ToMySqlOperator, tuned to copy exactly
                  (also at 5 M unless --no-peers-big: it needs about 1 GB of RAM per million rows)
  limit           the server-native chain: SELECT INTO OUTFILE, S3 upload/download, LOAD DATA INFILE
  naive           (--naive) fetchall, CSV in memory, put_object; get_object, executemany REPLACE

The source generator, the baselines and the fidelity query are ported from the reference baselines in
``../shared/bench/`` (gen_source.sql, peers.py, NOTES.md), not imported, so this file runs without that
directory. Differences from peers.py: the databases are ``bench_src``/``bench_tgt`` as user ``reports``;
``limit`` writes its files under ``@@secure_file_priv``; imports are done before the work clock starts
for every contender (the wall time includes them); the checksum also sums the CRC32s, so that two equal
changed rows cannot cancel out in the XOR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHILD_STARTED = time.perf_counter()  # interpreter start-up before this line is in the parent's wall time
REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "test-output" / "bench.json"

MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = int(os.environ.get("REPORTS_MYSQL_PORT") or 3307)
S3_ENDPOINT = f"http://127.0.0.1:{int(os.environ.get('REPORTS_S3_PORT') or 8333)}"
DB: dict[str, Any] = {
    "host": MYSQL_HOST,
    "port": MYSQL_PORT,
    "user": "reports",
    "passwd": "reports",
    "charset": "utf8mb4",
}
S3: dict[str, Any] = {
    "endpoint_url": S3_ENDPOINT,
    "aws_access_key_id": "any",
    "aws_secret_access_key": "any",
    "region_name": "us-east-1",
}
SRC_DB, TGT_DB, TGT_TABLE = "bench_src", "bench_tgt", "events"
BUCKET_OURS, BUCKET_PEERS = "rp-bench-ours", "rp-bench-peers"
COLUMNS = ("id", "company_id", "username", "note", "amount", "created_at", "flag")
COLS = ", ".join(COLUMNS)
DEFAULT_ROWS = 1_000_000
BIG_ROWS = 5_000_000
CHUNKS = 4
RUN_PREFIX_DATE = "2026-11-26T000000Z"
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
CHILD_TIMEOUT_S = 3600

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


def mysql(db: str | None = None, **extra: Any) -> Any:
    import MySQLdb

    return MySQLdb.connect(db=db or "", **DB, **extra)


def s3_client() -> Any:
    import boto3

    return boto3.client("s3", **S3)


def run_sql(statements: tuple[str, ...] | list[str], db: str | None = None) -> None:
    conn = mysql(db)
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        conn.commit()
    finally:
        conn.close()


def query_one(sql: str, db: str | None = None) -> tuple[Any, ...]:
    conn = mysql(db)
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        return tuple(cursor.fetchone())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------
# Contenders: each runs in a child process (``bench.py --child SPEC``) and returns its stage times.
# ---------------------------------------------------------------------------------------------------


def _ours_pieces() -> tuple[Any, ...]:
    import boto3  # noqa: F401 - imported before the clock starts, like every contender's libraries
    import MySQLdb  # noqa: F401

    from report_pipeline.chunks import plan_chunks
    from report_pipeline.extract import ExtractRequest, extract
    from report_pipeline.load import LoadRequest, load
    from report_pipeline.storage import Bucket
    from report_pipeline.target.mysql import MySqlTarget
    from report_pipeline.validation import InsertTarget

    def load_into(conn: Any, request: Any) -> Any:
        # The opener lets a swap fork its extra sessions, as tasks.load_table does with the hook.
        return load(MySqlTarget(conn, opener=lambda: mysql(local_infile=1)), request)

    return ExtractRequest, extract, plan_chunks, LoadRequest, load_into, InsertTarget, Bucket


def contender_ours(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The project's engine, unchunked: one extract, one load (upsert, or swap over parallel sessions)."""
    ExtractRequest, extract, _, LoadRequest, load, InsertTarget, Bucket = _ours_pieces()
    table = spec["table"]
    prefix = f"{table}/{RUN_PREFIX_DATE}"

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        src = mysql(SRC_DB)
        bucket = Bucket(s3_client(), BUCKET_OURS)
        manifest = extract(
            src,
            ExtractRequest(
                company="bench",
                table=TGT_TABLE,
                bucket=bucket,
                prefix=prefix,
                query=f"SELECT {COLS} FROM {table}",
                parameters=(),
                logical_date=LOGICAL_DATE.isoformat(),
                run_id="bench",
                compress=spec.get("compress", True),
                part_bytes=spec["part_mb"] * 1024 * 1024,
            ),
        )
        src.close()
        t1 = time.perf_counter()
        tgt = mysql(local_infile=1)
        result = load(
            tgt,
            LoadRequest(
                company="bench",
                schema=TGT_DB,
                target=InsertTarget(TGT_TABLE, COLUMNS, "replace"),
                load_mode=spec["load_mode"],
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key=f"{prefix}/_SUCCESS",
                logical_date=LOGICAL_DATE,
                run_id="bench",
                parallelism=spec["parallelism"],
                defer_indexes=spec["defer_indexes"],
            ),
        )
        tgt.close()
        t2 = time.perf_counter()
        return {
            "stages_s": {"extract": t1 - t0, "load": t2 - t1},
            "parts": len(manifest.parts),
            "csv_mb": manifest.csv_bytes / 2**20,
            "stored_mb": manifest.stored_bytes / 2**20,
            "rows_loaded": result.rows,
            "load_skipped": result.skipped,
        }

    return run


def contender_ours_chunked(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The engine with the extract split in CHUNKS id ranges, extracted by CHUNKS threads, then one load."""
    from concurrent.futures import ThreadPoolExecutor

    ExtractRequest, extract, plan_chunks, LoadRequest, load, InsertTarget, Bucket = _ours_pieces()
    table = spec["table"]
    base = f"{table}/{RUN_PREFIX_DATE}"
    query = f"SELECT {COLS} FROM {table}"

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        bucket = Bucket(s3_client(), BUCKET_OURS)
        planner = mysql(SRC_DB)
        ranges = plan_chunks(planner, query, (), "id", math.ceil(spec["rows"] / CHUNKS))
        planner.close()

        def one(index: int, chunk: Any) -> Any:
            conn = mysql(SRC_DB)
            try:
                return extract(
                    conn,
                    ExtractRequest(
                        company="bench",
                        table=TGT_TABLE,
                        bucket=bucket,
                        prefix=f"{base}/chunk-{index:04d}",
                        query=query,
                        parameters=(),
                        logical_date=LOGICAL_DATE.isoformat(),
                        run_id="bench",
                        compress=spec.get("compress", True),
                        part_bytes=spec["part_mb"] * 1024 * 1024,
                        chunk_column="id",
                        chunk=chunk,
                    ),
                )
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=CHUNKS, thread_name_prefix="bench-chunk") as pool:
            manifests = list(pool.map(one, range(len(ranges)), ranges))
        t1 = time.perf_counter()
        tgt = mysql(local_infile=1)
        result = load(
            tgt,
            LoadRequest(
                company="bench",
                schema=TGT_DB,
                target=InsertTarget(TGT_TABLE, COLUMNS, "replace"),
                load_mode="upsert",
                bucket=bucket,
                manifest_keys=tuple(m.key for m in manifests),
                success_key=f"{base}/_SUCCESS",
                logical_date=LOGICAL_DATE,
                run_id="bench",
            ),
        )
        tgt.close()
        t2 = time.perf_counter()
        return {
            "stages_s": {"extract": t1 - t0, "load": t2 - t1},
            "chunks": [c.label("id") for c in ranges],
            "chunk_rows": [m.rows for m in manifests],
            "parts": sum(len(m.parts) for m in manifests),
            "csv_mb": sum(m.csv_bytes for m in manifests) / 2**20,
            "stored_mb": sum(m.stored_bytes for m in manifests) / 2**20,
            "rows_loaded": result.rows,
            "load_skipped": result.skipped,
        }

    return run


def _peer_bucket(client: Any, name: str = BUCKET_PEERS) -> None:
    try:
        client.create_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - it exists already (peers.py does the same)
        pass


def contender_airflow(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py airflow(): SqlToS3Operator (pandas) + S3ToMySqlOperator (LOAD DATA LOCAL).

    Tuned to copy exactly as peers.py does: na_rep NULL, no header or index, ESCAPED BY ''.
    """
    user, password = DB["user"], DB["passwd"]
    os.environ["AIRFLOW_CONN_SRC"] = f"mysql://{user}:{password}@{MYSQL_HOST}:{MYSQL_PORT}/{SRC_DB}?charset=utf8mb4"
    os.environ["AIRFLOW_CONN_TGT"] = (
        f"mysql://{user}:{password}@{MYSQL_HOST}:{MYSQL_PORT}/{TGT_DB}?charset=utf8mb4&local_infile=true"
    )
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "any",
            "password": "any",
            "extra": {"endpoint_url": S3_ENDPOINT, "region_name": "us-east-1"},
        }
    )
    from airflow.providers.amazon.aws.transfers.sql_to_s3 import SqlToS3Operator
    from airflow.providers.mysql.transfers.s3_to_mysql import S3ToMySqlOperator

    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        _peer_bucket(s3_client())
        op = SqlToS3Operator(
            task_id="x",
            query=f"SELECT {COLS} FROM {table}",
            sql_conn_id="src",
            s3_bucket=BUCKET_PEERS,
            s3_key=f"airflow/{table}.csv",
            replace=True,
            file_format="csv",
            df_kwargs={"index": False, "header": False, "na_rep": "NULL"},
        )
        op.execute({})
        t1 = time.perf_counter()
        op2 = S3ToMySqlOperator(
            task_id="y",
            s3_source_key=f"s3://{BUCKET_PEERS}/airflow/{table}.csv",
            mysql_table=TGT_TABLE,
            mysql_conn_id="tgt",
            mysql_duplicate_key_handling="REPLACE",
            mysql_extra_options="FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' " + f"({COLS})",
        )
        op2.execute({})
        t2 = time.perf_counter()
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1}}

    return run


def contender_limit(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py limit(): SELECT INTO OUTFILE, S3 upload/download, LOAD DATA INFILE (server-side).

    The server may only read and write files under @@secure_file_priv, so both files live there.
    """
    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        src = mysql(SRC_DB)
        cur = src.cursor()
        cur.execute("SELECT @@secure_file_priv")
        directory = cur.fetchone()[0]
        if not directory:
            raise RuntimeError("@@secure_file_priv is empty or NULL: the server-native chain needs a file directory")
        tag = uuid.uuid4().hex[:8]
        dumped = os.path.join(directory, f"bench_limit_{tag}.tsv")
        fetched = os.path.join(directory, f"bench_limit_{tag}_back.tsv")
        client = s3_client()
        _peer_bucket(client)
        stages: dict[str, float] = {}
        try:
            t = time.perf_counter()
            cur.execute(f"SELECT {COLS} FROM {table} INTO OUTFILE '{dumped}'")
            stages["outfile"] = time.perf_counter() - t
            src.close()
            t = time.perf_counter()
            client.upload_file(dumped, BUCKET_PEERS, f"limit/{table}.tsv")
            stages["upload"] = time.perf_counter() - t
            t1 = time.perf_counter()
            client.download_file(BUCKET_PEERS, f"limit/{table}.tsv", fetched)
            os.chmod(fetched, 0o644)  # the server reads it as its own user
            stages["download"] = time.perf_counter() - t1
            t = time.perf_counter()
            tgt = mysql(TGT_DB)
            cur2 = tgt.cursor()
            cur2.execute(f"LOAD DATA INFILE '{fetched}' INTO TABLE {TGT_TABLE} CHARACTER SET utf8mb4 ({COLS})")
            tgt.commit()
            tgt.close()
            stages["load_data"] = time.perf_counter() - t
            t2 = time.perf_counter()
        finally:
            for path in (dumped, fetched):
                try:
                    os.remove(path)
                except OSError:
                    pass
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1, **stages}}

    return run


def contender_naive(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Ported from peers.py naive(): fetchall -> CSV in memory -> put_object; get_object -> executemany REPLACE."""
    import csv
    import io

    table = spec["table"]

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        conn = mysql(SRC_DB)
        cur = conn.cursor()
        client = s3_client()
        _peer_bucket(client)
        cur.execute(f"SELECT {COLS} FROM {table}")
        rows: Any = cur.fetchall()
        buf = io.StringIO()
        writer = csv.writer(buf)
        for r in rows:
            writer.writerow(["\\N" if v is None else v for v in r])
        client.put_object(Bucket=BUCKET_PEERS, Key=f"naive/{table}.csv", Body=buf.getvalue().encode())
        conn.close()
        del rows, buf
        t1 = time.perf_counter()
        body = client.get_object(Bucket=BUCKET_PEERS, Key=f"naive/{table}.csv")["Body"].read().decode()
        rows = [[None if v == "\\N" else v for v in r] for r in csv.reader(io.StringIO(body))]
        tgt = mysql(TGT_DB)
        cur2 = tgt.cursor()
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        for i in range(0, len(rows), 5000):
            cur2.executemany(f"REPLACE INTO {TGT_TABLE} ({COLS}) VALUES ({placeholders})", rows[i : i + 5000])
        tgt.commit()
        tgt.close()
        t2 = time.perf_counter()
        return {"stages_s": {"extract": t1 - t0, "load": t2 - t1}}

    return run


CONTENDERS: dict[str, Callable[[dict[str, Any]], Callable[[], dict[str, Any]]]] = {
    "ours-upsert": contender_ours,
    "ours-upsert-populated": contender_ours,
    "ours-swap": contender_ours,
    "ours-swap-1": contender_ours,
    "ours-swap-defer": contender_ours,
    "ours-chunked-4": contender_ours_chunked,
    "airflow": contender_airflow,
    "limit": contender_limit,
    "naive": contender_naive,
}


# How each ours-* contender loads: (load mode, target sessions, secondary indexes after the rows).
OURS_LOADS: dict[str, tuple[str, int, bool]] = {
    # REPORTS_LOAD_PARALLELISM's default: a first load (empty table) uses it; an upsert into rows, one session.
    "ours-upsert": ("upsert", 2, False),
    "ours-upsert-populated": ("upsert", 2, False),
    "ours-swap": ("swap", 2, False),
    "ours-swap-1": ("swap", 1, False),
    "ours-swap-defer": ("swap", 2, True),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child_main(raw_spec: str) -> int:
    """Run one contender once and print one JSON line: stage times, total, peak RSS, RSS after imports."""
    spec = json.loads(raw_spec)
    spec["load_mode"], spec["parallelism"], spec["defer_indexes"] = OURS_LOADS.get(
        spec["contender"], ("upsert", 1, False)
    )
    run = CONTENDERS[spec["contender"]](spec)  # imports happen here, before the clock starts
    # One throwaway S3 client: botocore loads and caches its S3 service model (~25 MB) on the first
    # client, the same for every contender; a fixed cost like an import, not the transfer's memory.
    s3_client()
    rss_after_imports = _rss_mb()
    import_s = time.perf_counter() - CHILD_STARTED
    started = time.perf_counter()
    result = run()
    result["total_s"] = time.perf_counter() - started
    result["import_s"] = import_s
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_after_imports_mb"] = rss_after_imports
    # The transfer's own working set: what the run added on top of the interpreter and its imports.
    result["working_set_mb"] = result["peak_rss_mb"] - rss_after_imports
    result["airflow_imported"] = any(m == "airflow" or m.startswith("airflow.") for m in sys.modules)
    print("BENCH-RESULT " + json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------
# Parent: tables, target reset, fidelity, scheduling, report.
# ---------------------------------------------------------------------------------------------------


def table_name(rows: int) -> str:
    if rows == DEFAULT_ROWS:
        return "events"
    if rows == BIG_ROWS:
        return "events_5m"
    return f"events_{rows}"


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
    statements = [
        s.replace("@TABLE@", table).replace("@ROWS@", str(rows)).replace("@COMMENT@", GEN_TAG) for s in GEN_SOURCE
    ]
    run_sql(statements, SRC_DB)
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
    return [int(v or 0) for v in query_one(FINGERPRINT.format(qualified))]


def settle_source(table: str) -> None:
    """Write the source table's dirty pages to disk now (a fresh table is all dirty pages, and MariaDB 10.11
    does not flush when idle), so a later checkpoint does not bill that flushing to whichever contender runs."""
    conn = mysql()
    try:
        cursor = conn.cursor()
        cursor.execute(f"FLUSH TABLES {SRC_DB}.{table} FOR EXPORT")
        cursor.execute("UNLOCK TABLES")
    finally:
        conn.close()


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def wait_for_quiet(cap_s: float) -> tuple[float, float]:
    """Wait (at most cap_s) for a second in which the machine is less than half busy, as other work on a
    shared box (tests, Airflow) would otherwise be billed to whichever contender runs. Returns the
    seconds waited and the busy fraction of the last one-second sample (Linux only; else no wait)."""
    started = time.perf_counter()
    busy = 0.0
    if not os.path.exists("/proc/stat"):
        return 0.0, busy
    while True:
        total0, idle0 = _cpu_times()
        time.sleep(1.0)
        total1, idle1 = _cpu_times()
        busy = 1.0 - (idle1 - idle0) / max(1, total1 - total0)
        if busy < 0.5 or time.perf_counter() - started >= cap_s:
            return time.perf_counter() - started, busy


def clean_buckets(names: tuple[str, ...] = (BUCKET_PEERS, BUCKET_OURS)) -> None:
    """Delete what the contenders left in their own buckets (up to 400 MB per table), so runs do not pile up."""
    client = s3_client()
    for name in names:
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
            keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", ())]
            for i in range(0, len(keys), 1000):
                client.delete_objects(Bucket=name, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
        except Exception as exc:  # noqa: BLE001 - a missing bucket or a failed cleanup does not change results
            print(f"   (could not empty s3://{name}: {exc})", flush=True)


def check_buckets() -> None:
    """Both buckets must take multipart uploads (the peers' upload_file and Airflow's S3Hook use them)."""
    client = s3_client()
    for name in (BUCKET_OURS, BUCKET_PEERS):
        _peer_bucket(client, name)
        upload = client.create_multipart_upload(Bucket=name, Key="bench-preflight")
        client.abort_multipart_upload(Bucket=name, Key="bench-preflight", UploadId=upload["UploadId"])


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        cwd=REPO,
        check=False,
    )
    # Whole-process wall time: interpreter start-up, imports, the work, and exit.
    wall = time.perf_counter() - started
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result = dict(json.loads(line[len("BENCH-RESULT ") :]))
            result["wall_s"] = wall
            result["startup_s"] = wall - result["total_s"]
            return result
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    return {"error": f"exit {proc.returncode}: {tail}"}


def fmt_rows(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def plan(args: argparse.Namespace) -> list[tuple[int, list[str], int]]:
    """(rows, contenders, repeats) per table size, in run order."""
    sizes = [args.rows]
    if args.big and BIG_ROWS not in sizes:
        sizes.append(BIG_ROWS)
    out = []
    for rows in sizes:
        big = rows >= BIG_ROWS
        names = ["ours-upsert", "ours-upsert-populated", "ours-swap", "limit"]
        if args.chunked:
            names.append("ours-chunked-4")
        if not big or args.peers_big:
            names.append("airflow")
        if args.naive and (not big or args.peers_big):
            names.append("naive")
        if args.only:
            names = [n for n in args.only if n in CONTENDERS]
        out.append((rows, names, args.repeat))
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (table, contender): medians and spread (min-max) of the runs, worst RSS, exact only if all were."""
    rows: list[dict[str, Any]] = []
    keys: list[tuple[str, str]] = []
    for r in runs:
        if (r["table"], r["contender"]) not in keys:
            keys.append((r["table"], r["contender"]))
    for table, contender in keys:
        mine = [r for r in runs if r["table"] == table and r["contender"] == contender]
        good = [r for r in mine if "error" not in r]
        row: dict[str, Any] = {"table": table, "contender": contender, "rows": mine[0]["rows"], "runs": len(mine)}
        if not good:
            row.update(error=mine[0]["error"], exact_copy=False)
            rows.append(row)
            continue
        work = [r["total_s"] for r in good]
        wall = [r["wall_s"] for r in good]
        row.update(
            seconds=_median(work),
            work_min=min(work),
            work_max=max(work),
            wall_s=_median(wall),
            wall_min=min(wall),
            wall_max=max(wall),
            startup_s=_median([r["startup_s"] for r in good]),
            extract_s=_median([r["stages_s"]["extract"] for r in good]),
            load_s=_median([r["stages_s"]["load"] for r in good]),
            rows_per_s=mine[0]["rows"] / _median(work),
            peak_rss_mb=max(r["peak_rss_mb"] for r in good),
            rss_after_imports_mb=_median([r["rss_after_imports_mb"] for r in good]),
            working_set_mb=max(r["working_set_mb"] for r in good),
            load_average=[r["load_average_before"] for r in mine],
            exact_copy=len(good) == len(mine) and all(r["exact_copy"] for r in good),
            all_seconds=[round(r["total_s"], 2) for r in mine if "total_s" in r],
            all_wall_seconds=[round(r["wall_s"], 2) for r in mine if "wall_s" in r],
        )
        if any("error" in r for r in mine):
            row["error"] = next(r["error"] for r in mine if "error" in r)
        rows.append(row)
    for row in rows:
        chain = next((o for o in rows if o["table"] == row["table"] and o["contender"] == "limit"), None)
        if chain and "seconds" in chain and "seconds" in row:
            row["vs_chain"] = row["seconds"] / chain["seconds"]
            row["wall_vs_chain"] = row["wall_s"] / chain["wall_s"]
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = [
        "table",
        "contender",
        "runs",
        "work s (min-max)",
        "wall s (min-max)",
        "start-up s",
        "extract s",
        "load s",
        "rows/s",
        "peak RSS MB",
        "after imports MB",
        "working set MB",
        "exact",
        "work/chain",
        "wall/chain",
        "load avg",
    ]
    body = []
    for r in rows:
        if "seconds" not in r:
            body.append([r["table"], r["contender"], str(r["runs"]), "FAILED"] + [""] * 8 + ["no", "", "", ""])
            continue
        body.append(
            [
                r["table"],
                r["contender"],
                str(r["runs"]),
                f"{r['seconds']:.2f} ({r['work_min']:.2f}-{r['work_max']:.2f})",
                f"{r['wall_s']:.2f} ({r['wall_min']:.2f}-{r['wall_max']:.2f})",
                f"{r['startup_s']:.2f}",
                f"{r['extract_s']:.2f}",
                f"{r['load_s']:.2f}",
                f"{r['rows_per_s']:,.0f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['rss_after_imports_mb']:.0f}",
                f"{r['working_set_mb']:.0f}",
                "yes" if r["exact_copy"] else "NO",
                f"{r['vs_chain']:.2f}x" if "vs_chain" in r else "",
                f"{r['wall_vs_chain']:.2f}x" if "wall_vs_chain" in r else "",
                "/".join(f"{x:.1f}" for x in r["load_average"]),
            ]
        )
    numeric = set(range(2, 12)) | {13, 14}
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    line = "  ".join(
        h.rjust(w) if i in numeric else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for b in body:
        print(
            "  ".join(
                x.rjust(w) if i in numeric else x.ljust(w) for i, (x, w) in enumerate(zip(b, widths, strict=True))
            )
        )
    for r in rows:
        if "error" in r:
            print(f"\n{r['table']} / {r['contender']} failed:\n{r['error']}")


def evaluate_targets(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    """Issue 16's targets, each evaluated against this run's medians (missing contenders are skipped)."""

    def get(rows_n: int, contender: str) -> dict[str, Any] | None:
        table = table_name(rows_n)
        found = next((r for r in rows if r["table"] == table and r["contender"] == contender), None)
        return found if found and "seconds" in found else None

    targets: list[dict[str, Any]] = []
    for n in sizes:
        label = fmt_rows(n)
        limit = get(n, "limit")
        # Issue 24: a first load by upsert (into the empty table) is as fast as a swap.
        for contender, bound in (("ours-swap", 0.8), ("ours-upsert", 0.8)):
            ours = get(n, contender)
            if ours and limit:
                ratio = ours["seconds"] / limit["seconds"]
                targets.append(
                    {
                        "target": f"{contender} work time <= {bound}x the chain @{label} (medians)",
                        "text": f"{ours['seconds']:.2f} s vs {limit['seconds']:.2f} s -> {ratio:.2f}x",
                        "value": ratio,
                        "ok": ratio <= bound,
                    }
                )
        for contender in ("ours-upsert", "ours-swap"):
            ours = get(n, contender)
            if ours:
                targets.append(
                    {
                        "target": f"{contender} working set <= 64 MB @{label}",
                        "text": f"{ours['working_set_mb']:.0f} MB (peak {ours['peak_rss_mb']:.0f} MB, "
                        f"{ours['rss_after_imports_mb']:.0f} MB after imports)",
                        "value": ours["working_set_mb"],
                        "ok": ours["working_set_mb"] <= 64,
                    }
                )
    targets.append(
        {
            "target": "every run copied exactly (row count + checksum of all columns)",
            "text": ", ".join(f"{r['contender']}@{r['table']}" for r in rows if not r.get("exact_copy")) or "all",
            "value": all(r.get("exact_copy") for r in rows),
            "ok": all(r.get("exact_copy") for r in rows),
        }
    )
    return targets


def environment() -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    version = query_one("SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit")
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "mariadb": version[0],
        "innodb_buffer_pool_mb": int(version[1]) // 2**20,
        "innodb_flush_log_at_trx_commit": int(version[2]),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of the main source table (1,000,000)")
    parser.add_argument(
        "--big",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also run the {BIG_ROWS:,}-row table bench_src.events_5m (default on)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender, interleaved (3)")
    parser.add_argument(
        "--peers-big",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run airflow (and naive) on the 5M table (default on; about 1 GB of RAM per million rows)",
    )
    parser.add_argument("--naive", action="store_true", help="also run peers.py's naive pipeline")
    parser.add_argument("--chunked", action="store_true", help="run ours-chunked-4 on every table, not only 5M")
    parser.add_argument("--only", nargs="+", choices=sorted(CONTENDERS), help="run only these contenders")
    parser.add_argument("--part-mb", type=int, default=8, help="ours: part size in MB (the engine's default 8)")
    parser.add_argument("--no-compress", dest="compress", action="store_false", help="ours: store parts as plain CSV")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each run wait up to this many seconds for the machine to be under half busy (5; 0 = never)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"JSON results (default {OUTPUT})")
    parser.add_argument(
        "--incremental", action="store_true", help="only the incremental row (scripts/bench_incremental.py)"
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="only the reconcile row (scripts/bench_reconcile.py): 5M rows, 0.1%% drifted, beside a full swap",
    )
    parser.add_argument(
        "--no-reconcile", dest="with_reconcile", action="store_false", help="leave the reconcile row out of a full run"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.incremental:
        # Its own process: bench_incremental builds on this module, which must not import it back.
        script = Path(__file__).with_name("bench_incremental.py")
        return subprocess.call([sys.executable, str(script), "--rows", str(args.rows)])
    if args.reconcile:
        return reconcile_row(BIG_ROWS if args.big else args.rows, args.repeat)
    if args.rows < 1:
        parser.error("--rows must be positive")

    try:
        env = environment()
        check_buckets()
    except Exception as exc:  # noqa: BLE001 - tell the user how to get the servers, then stop
        print(
            f"bench: MariaDB on {MYSQL_HOST}:{MYSQL_PORT} or S3 on {S3_ENDPOINT} is not usable: {exc}\n"
            "start them with `bash scripts/services.sh start` (or `make services`); an S3 AccessDenied on"
            f" s3://{BUCKET_OURS} or s3://{BUCKET_PEERS} means the bucket was made by an S3 server with other"
            " identities: empty .local/seaweedfs",
            file=sys.stderr,
        )
        return 2

    started = time.perf_counter()
    schedule = plan(args)
    print(
        f"== bench on {env['cpus']} CPUs, MariaDB {env['mariadb']}, buffer pool {env['innodb_buffer_pool_mb']} MB; "
        + "; ".join(f"{fmt_rows(n)}: {', '.join(c)} x{r}" for n, c, r in schedule),
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    created: dict[str, float] = {}
    for rows, names, repeats in schedule:
        table, seconds = ensure_source(rows)
        if seconds is not None:
            created[table] = seconds
        t = time.perf_counter()
        settle_source(table)
        source_fp = fingerprint(f"{SRC_DB}.{table}")  # also warms the buffer pool for the first contender
        print(f"   source fingerprint {source_fp} ({time.perf_counter() - t:.1f} s)", flush=True)
        # Interleave the contenders across repeats, so a slow phase of the machine hits all of them.
        for attempt in range(repeats):
            for name in names:
                reset_target(table, populated=name == "ours-upsert-populated")
                waited, busy = wait_for_quiet(args.quiet_wait)
                load_average = os.getloadavg()[0]
                spec = {
                    "contender": name,
                    "table": table,
                    "rows": rows,
                    "part_mb": args.part_mb,
                    "compress": args.compress,
                }
                result = run_child(spec)
                result.update(
                    table=table,
                    contender=name,
                    rows=rows,
                    attempt=attempt + 1,
                    waited_for_quiet_s=round(waited, 1),
                    machine_busy_before=round(busy, 2),
                    load_average_before=round(load_average, 2),
                )
                if "error" not in result:
                    target_fp = fingerprint(f"{TGT_DB}.{TGT_TABLE}")
                    result.update(source_fp=source_fp, target_fp=target_fp, exact_copy=target_fp == source_fp)
                    if name.startswith("ours") and result.get("airflow_imported"):
                        result["error"] = "the pure package imported Airflow"
                    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_s"].items())
                    print(
                        f"   {table:<10} {name:<15} run {attempt + 1}/{repeats}: {result['total_s']:6.2f} s "
                        f"(wall {result['wall_s']:.2f}; {stages}), {result['peak_rss_mb']:.0f} MB "
                        f"(+{result['working_set_mb']:.0f} over imports), exact={result['exact_copy']}; "
                        f"machine {busy:.0%} busy before, load avg {load_average:.1f}",
                        flush=True,
                    )
                else:
                    print(
                        f"   {table:<10} {name:<15} run {attempt + 1}/{repeats}: FAILED {result['error']}", flush=True
                    )
                runs.append(result)
        reset_target(table)  # leave no 5 M-row copy behind in bench_tgt
        clean_buckets()

    summary = summarize(runs)
    sizes = [n for n, _, _ in schedule]
    targets = evaluate_targets(summary, sizes)
    print()
    print_table(summary)
    print()
    print("targets (issue 16):")
    for t in targets:
        print(f"  {t['target']}: {t['text']} -> {'OK' if t['ok'] else 'MISS'}")
    noisy = [r for r in runs if r.get("machine_busy_before", 0) >= 0.5]
    if noisy:
        print(
            f"  WARNING: {len(noisy)} of {len(runs)} runs started on a machine over half busy with other work "
            f"({', '.join(sorted({r['contender'] + '@' + r['table'] for r in noisy}))}): their times are inflated;"
            " rerun when the machine is quiet or with more --repeat"
        )
    elapsed = time.perf_counter() - started
    env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(
        f"\n(medians of the runs per row, (min-max) = spread; RSS = worst run; work s excludes interpreter start-up and"
        f" imports, wall s is the whole process, start-up = wall - work; bench took {elapsed:.0f} s;"
        f" load average {env['load_average_at_start'][0]:.1f} at start, {env['load_average_at_end'][0]:.1f} at end"
        f" on {env['cpus']} CPUs: other processes on this machine add noise)"
    )

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "environment": env,
                "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"},
                "tables_created_s": created,
                "summary": summary,
                "targets": targets,
                "runs": runs,
                "bench_seconds": elapsed,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results: {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}")
    reconciled = 0
    if args.with_reconcile and not args.only:
        print()
        reconciled = reconcile_row(BIG_ROWS if args.big else args.rows, args.repeat)
    return 0 if all(r.get("exact_copy") for r in summary) and reconciled == 0 else 1


def reconcile_row(rows: int, repeat: int) -> int:
    """The reconcile row, in its own process: bench_reconcile builds on this module, which must not import it back."""
    script = Path(__file__).with_name("bench_reconcile.py")
    return subprocess.call([sys.executable, str(script), "--rows", str(rows), "--repeat", str(repeat)])


if __name__ == "__main__":
    sys.exit(main())
