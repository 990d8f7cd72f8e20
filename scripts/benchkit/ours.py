"""The project's engine as a contender: ``report_pipeline.extract`` + ``report_pipeline.load`` (upsert
or swap, unchunked), and the same with the extract split in CHUNKS ``id`` ranges extracted concurrently."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from benchkit.data import BUCKET_OURS, COLS, COLUMNS, LOGICAL_DATE, RUN_PREFIX_DATE, SRC_DB, TGT_DB, TGT_TABLE
from serverkit import mysql_connect, s3_client

CHUNKS = 4

# How each ours-* contender loads: (load mode, target sessions, secondary indexes after the rows).
OURS_LOADS: dict[str, tuple[str, int, bool]] = {
    # REPORTS_LOAD_PARALLELISM's default: a first load (empty table) uses it; an upsert into rows, one session.
    "ours-upsert": ("upsert", 2, False),
    "ours-upsert-populated": ("upsert", 2, False),
    "ours-swap": ("swap", 2, False),
    "ours-swap-1": ("swap", 1, False),
    "ours-swap-defer": ("swap", 2, True),
}


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
        return load(MySqlTarget(conn, opener=mysql_connect), request)

    return ExtractRequest, extract, plan_chunks, LoadRequest, load_into, InsertTarget, Bucket


def contender_ours(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The project's engine, unchunked: one extract, one load (upsert, or swap over parallel sessions)."""
    ExtractRequest, extract, _, LoadRequest, load, InsertTarget, Bucket = _ours_pieces()
    table = spec["table"]
    prefix = f"{table}/{RUN_PREFIX_DATE}"

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        src = mysql_connect(SRC_DB)
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
        tgt = mysql_connect()
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
        planner = mysql_connect(SRC_DB)
        ranges = plan_chunks(planner, query, (), "id", math.ceil(spec["rows"] / CHUNKS))
        planner.close()

        def one(index: int, chunk: Any) -> Any:
            conn = mysql_connect(SRC_DB)
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
        tgt = mysql_connect()
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
