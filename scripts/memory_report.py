"""The transfer's working set, extract and load measured apart: peak RSS minus RSS right after imports.

    source scripts/env.sh && .venv/bin/python scripts/memory_report.py [--wide-rows 60] [--events] [--events-rows N]

Each step runs in its own child process (so its peak RSS is its own) against the local MariaDB and
S3 servers that ``make services`` starts:

- ``wide``: ``bench_src.wide`` with rows of a 1 MB TEXT and a 1 MB BLOB of random bytes (hex in the
  CSV, incompressible), the worst case for memory per row and per compressed part;
- ``events`` (with ``--events``): the benchmark's 1 M-row ``bench_src.events`` (``make bench`` makes it);
  ``--events-rows 10000000`` uses (and if needed generates) ``bench_src.events_10000000`` instead;
- ``--no-wide`` leaves the wide table out.

Both are loaded with ``swap`` over ``REPORTS_LOAD_PARALLELISM`` sessions (default 2) and checked
exactly (row count and a checksum of every column). Not part of ``make test``: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import data as benchdata
from benchkit.machine import rss_mb
from serverkit import mysql_connect, run_sql, s3_client

WIDE_DDL = (
    "DROP TABLE IF EXISTS wide",
    "CREATE TABLE wide (id INT PRIMARY KEY, txt LONGTEXT, blb LONGBLOB) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)
WIDE_FINGERPRINT = "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('|', id, MD5(txt), MD5(blb)))) FROM {}"


def child(step: str, table: str, columns: tuple[str, ...], parallelism: int) -> dict[str, Any]:
    """Run one step (extract or load) of ``table`` in this process; its figures as a dict."""
    from report_pipeline.extract import ExtractRequest, extract
    from report_pipeline.load import LoadRequest, load
    from report_pipeline.manifest import Manifest
    from report_pipeline.settings import Settings
    from report_pipeline.storage import Bucket
    from report_pipeline.target.mysql import MySqlTarget
    from report_pipeline.validation import InsertTarget

    settings = Settings.from_env()
    bucket = Bucket(s3_client(), benchdata.BUCKET_OURS)
    after_imports = rss_mb()
    prefix = f"memory/{table}"
    started = time.perf_counter()
    if step == "extract":
        conn = mysql_connect(benchdata.SRC_DB)
        manifest = extract(
            conn,
            ExtractRequest(
                company="bench",
                table=table,
                bucket=bucket,
                prefix=prefix,
                query=f"SELECT {', '.join(columns)} FROM {table}",
                parameters=(),
                logical_date=benchdata.LOGICAL_DATE.isoformat(),
                run_id="memory",
                part_bytes=settings.part_bytes,
            ),
        )
        conn.close()
        rows, parts = manifest.rows, len(manifest.parts)
    else:
        manifest = Manifest.from_json(bucket.get(f"{prefix}/manifest.json"))
        conn = mysql_connect()
        result = load(
            MySqlTarget(conn, opener=mysql_connect),
            LoadRequest(
                company="bench",
                schema=benchdata.TGT_DB,
                target=InsertTarget(table, columns, "replace"),
                load_mode="swap",
                bucket=bucket,
                manifest_keys=(manifest.key,),
                success_key=f"{prefix}/_SUCCESS",
                logical_date=benchdata.LOGICAL_DATE,
                run_id="memory",
                parallelism=parallelism,
            ),
        )
        conn.close()
        rows, parts = result.rows, result.parts
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "step": step,
        "table": table,
        "rows": rows,
        "parts": parts,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_after_imports_mb": round(after_imports),
        "peak_rss_mb": round(peak),
        "working_set_mb": round(peak - after_imports),
    }


def run_child(step: str, table: str, columns: tuple[str, ...], parallelism: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", json.dumps([step, table, list(columns), parallelism])]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY-RESULT "):
            return dict(json.loads(line[len("MEMORY-RESULT ") :]))
    raise RuntimeError(f"{step} of {table} failed:\n{proc.stderr[-3000:]}")


def make_wide(rows: int) -> None:
    """``bench_src.wide``: ``rows`` rows of a ~1 MB TEXT and a 1 MB BLOB of random bytes."""
    statements = [
        *WIDE_DDL,
        # The BLOBs are filled from os.urandom below: random bytes do not compress.
        "INSERT INTO wide SELECT seq, REPEAT(CONCAT('wide text ', seq, ', \"quoted\"\\n'), 1048576 DIV 24), "
        f"NULL FROM seq_1_to_{rows}",
    ]
    run_sql(statements, benchdata.SRC_DB)
    conn = mysql_connect(benchdata.SRC_DB)
    cursor = conn.cursor()
    for row in range(1, rows + 1):
        cursor.execute("UPDATE wide SET blb = %s WHERE id = %s", (os.urandom(1024 * 1024), row))
    conn.commit()
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wide-rows", type=int, default=60, help="rows of 1 MB TEXT + 1 MB BLOB (60)")
    parser.add_argument("--events", action="store_true", help="also the 1 M-row bench_src.events")
    parser.add_argument("--events-rows", type=int, help="the events table with this many rows (implies --events)")
    parser.add_argument("--no-wide", dest="wide", action="store_false", help="leave the wide table out")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, table, columns, parallelism = json.loads(args.child)
        print("MEMORY-RESULT " + json.dumps(child(step, table, tuple(columns), parallelism)), flush=True)
        return 0

    benchdata.check_buckets()
    cases: list[tuple[str, tuple[str, ...], str]] = []
    if args.wide:
        make_wide(args.wide_rows)
        cases.append(("wide", ("id", "txt", "blb"), WIDE_FINGERPRINT))
    if args.events or args.events_rows:
        table, _ = benchdata.ensure_source(args.events_rows or benchdata.DEFAULT_ROWS)
        cases.append((table, benchdata.COLUMNS, benchdata.FINGERPRINT))
    results = []
    for table, columns, fingerprint in cases:
        run_sql(
            [
                f"DROP TABLE IF EXISTS {benchdata.TGT_DB}.{table}",
                f"CREATE TABLE {benchdata.TGT_DB}.{table} LIKE {benchdata.SRC_DB}.{table}",
                f"DROP TABLE IF EXISTS {benchdata.TGT_DB}.report_loads",
            ]
        )
        for step in ("extract", "load"):
            result = run_child(step, table, columns, args.parallelism)
            results.append(result)
            print(json.dumps(result), flush=True)
        same = benchdata.same_rows(f"{benchdata.SRC_DB}.{table}", f"{benchdata.TGT_DB}.{table}", fingerprint)
        print(f"{table}: exact copy: {same}", flush=True)
        run_sql([f"DROP TABLE IF EXISTS {benchdata.TGT_DB}.{table}"])
    benchdata.clean_buckets((benchdata.BUCKET_OURS,))
    print("\nstep     table   rows       parts  seconds  after imports MB  peak MB  working set MB")
    for r in results:
        print(
            f"{r['step']:<8} {r['table']:<7} {r['rows']:<10,} {r['parts']:<6} {r['seconds']:<8} "
            f"{r['rss_after_imports_mb']:<17} {r['peak_rss_mb']:<8} {r['working_set_mb']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
