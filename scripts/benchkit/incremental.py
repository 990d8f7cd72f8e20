"""The incremental row of the benchmark (issue 12): ``python scripts/bench.py --incremental [--rows N]``.

On a copy of the benchmark's mixed-type table with an ``updated_at`` cursor column:

1. a full ``swap`` of the table (the baseline: what a daily full refresh costs);
2. the first ``incremental`` run (no watermark: a full copy);
3. 0.5 % of rows updated, 0.5 % inserted and 0.1 % deleted at the source;
4. the second ``incremental`` run, without and then with delete detection (``keys``): only changed
   rows (and the key set) are read; its time and the rows it read, beside a full swap's;
5. target == source checked exactly (row count and the NULL-aware checksum of every column).

Runs in this process against the same servers as ``bench.py`` (no Airflow: its fixed per-task cost is
not included, and is the same for both kinds of run).

Before each timed run the tables' dirty pages are written out (``settle``) and the machine is given a
quiet second, as ``bench.py`` does for its contenders: MariaDB 10.11 does not flush when idle, so
otherwise a run pays for writing out what the run before it (a 5 M-row load) and the source changes
left in the buffer pool. Each row also shows the InnoDB pages the run read into and wrote from the
buffer pool (server-wide counters): where source and target share one small pool, a run that touches
rows spread over the whole target reads most of its pages from disk, and that, not the rows, is what
its time follows (see the note printed under the table).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from benchkit.data import BUCKET_OURS, COLS, SRC_DB, TGT_DB, ensure_source, same_rows
from benchkit.machine import innodb_pages, settle, wait_for_quiet
from serverkit import mysql_connect, run_sql, s3_client

TABLE = "inc_events"
INC_COLS = f"{COLS}, updated_at"
START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _pieces() -> Any:
    from report_pipeline import watermarks
    from report_pipeline.extract import ExtractRequest, extract
    from report_pipeline.incremental.cursor import CursorRequest
    from report_pipeline.load import LoadRequest, load
    from report_pipeline.storage import Bucket
    from report_pipeline.target.mysql import MySqlTarget
    from report_pipeline.validation import InsertTarget

    return watermarks, ExtractRequest, extract, CursorRequest, LoadRequest, load, Bucket, MySqlTarget, InsertTarget


def prepare(rows: int) -> None:
    """bench_src.inc_events: the generator's table plus ``updated_at``; bench_tgt.inc_events empty."""
    source, _ = ensure_source(rows)
    print(f"== copying {SRC_DB}.{source} into {SRC_DB}.{TABLE} with an updated_at cursor ...", flush=True)
    run_sql(
        [
            f"DROP TABLE IF EXISTS {SRC_DB}.{TABLE}",
            f"CREATE TABLE {SRC_DB}.{TABLE} LIKE {SRC_DB}.{source}",
            f"ALTER TABLE {SRC_DB}.{TABLE} ADD COLUMN updated_at DATETIME(6) NOT NULL, ADD KEY (updated_at)",
            f"INSERT INTO {SRC_DB}.{TABLE} SELECT {COLS}, created_at FROM {SRC_DB}.{source}",
            f"DROP TABLE IF EXISTS {TGT_DB}.{TABLE}",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_loads",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_watermarks",
            f"CREATE TABLE {TGT_DB}.{TABLE} LIKE {SRC_DB}.{TABLE}",
        ]
    )


def change_source(rows: int) -> tuple[int, int, int]:
    """Update 0.5 %, insert 0.5 %, delete 0.1 % of the rows, all stamped after the first run."""
    updated, inserted, deleted = rows // 200, rows // 200, rows // 1000
    stamp = "'2027-01-01 00:00:00'"
    run_sql(
        [
            # Spread over the table: every 200th id (updates) and every 1000th + 7 (deletes).
            f"UPDATE {SRC_DB}.{TABLE} SET amount = 1.2345, note = 'changed', updated_at = {stamp} "
            f"WHERE id % 200 = 0 LIMIT {updated}",
            f"DELETE FROM {SRC_DB}.{TABLE} WHERE id % 1000 = 7 LIMIT {deleted}",
            f"INSERT INTO {SRC_DB}.{TABLE} SELECT id + {rows}, company_id, username, note, amount, created_at, flag, "
            f"{stamp} FROM {SRC_DB}.{TABLE} WHERE id <= {inserted}",
        ]
    )
    return updated, inserted, deleted


def run_once(mode: str, day: int, watermark: str | None = None, deletes: bool = True) -> dict[str, Any]:
    """One extract + load of bench_src.inc_events into bench_tgt.inc_events; seconds, rows and pages read."""
    watermarks, ExtractRequest, extract, CursorRequest, LoadRequest, load, Bucket, MySqlTarget, InsertTarget = _pieces()
    settle()
    wait_for_quiet(30)
    pages_before = innodb_pages()
    logical = START + dt.timedelta(days=day)
    prefix = f"{TABLE}/{mode}-{day}"
    bucket = Bucket(s3_client(), BUCKET_OURS)
    incremental = mode == "incremental"
    t0 = time.perf_counter()
    src = mysql_connect(SRC_DB)
    manifest = extract(
        src,
        ExtractRequest(
            company="bench",
            table=TABLE,
            bucket=bucket,
            prefix=prefix,
            query=f"SELECT {INC_COLS} FROM {TABLE}",
            parameters=(),
            logical_date=logical.isoformat(),
            run_id=f"bench-{mode}-{day}",
            cursor=CursorRequest("updated_at", watermark, overlap=0) if incremental else None,
            key_columns=("id",) if incremental and deletes else (),
        ),
    )
    src.close()
    t1 = time.perf_counter()
    tgt = mysql_connect()
    result = load(
        MySqlTarget(tgt),
        LoadRequest(
            company="bench",
            schema=TGT_DB,
            target=InsertTarget(TABLE, tuple(c.strip() for c in INC_COLS.split(",")), "replace"),
            load_mode=mode,
            bucket=bucket,
            manifest_keys=(manifest.key,),
            success_key=f"{prefix}/_SUCCESS",
            logical_date=logical,
            run_id=f"bench-{mode}-{day}",
        ),
    )
    mark = watermarks.read(tgt.cursor(), TGT_DB, TABLE)
    tgt.close()
    t2 = time.perf_counter()
    pages_after = innodb_pages()
    keys = sum(p.rows for p in manifest.keys.parts) if manifest.keys else 0
    return {
        "mode": mode,
        "extract_s": t1 - t0,
        "load_s": t2 - t1,
        "total_s": t2 - t0,
        "rows_read": manifest.rows,
        "keys_read": keys,
        "rows_loaded": result.rows,
        "watermark": mark.cursor_value if mark else None,
        "pages_read": pages_after[0] - pages_before[0],
        "pages_written": pages_after[1] - pages_before[1],
    }


def exact() -> bool:
    return same_rows(f"{SRC_DB}.{TABLE}", f"{TGT_DB}.{TABLE}")


def main(rows: int) -> int:
    """Run the incremental row and print it beside the full swap."""
    prepare(rows)
    swap = run_once("swap", 0)
    first = run_once("incremental", 1)
    changed = change_source(rows)
    # The changed rows all carry one stamp, so both runs read the same rows (">=" the watermark).
    plain = run_once("incremental", 2, first["watermark"], deletes=False)
    second = run_once("incremental", 3, first["watermark"])
    second_exact = exact()
    # A day without deletes: the key set is still read from the source, but its checksum matches the
    # target's after the load, so it is not loaded.
    run_sql([f"UPDATE {SRC_DB}.{TABLE} SET note = 'again', updated_at = '2027-01-02' WHERE id % 200 = 100"])
    quiet = run_once("incremental", 4, second["watermark"])
    quiet_exact = exact()
    swap_after = run_once("swap", 5)
    print()
    print(
        f"incremental row, {rows:,}-row table; changes: {changed[0]:,} updated, {changed[1]:,} inserted, "
        f"{changed[2]:,} deleted"
    )
    print(
        f"{'run':<40}{'seconds':>9}{'extract':>9}{'load':>9}{'rows read':>12}{'keys read':>12}"
        f"{'pages in':>10}{'pages out':>10}"
    )
    for name, r in (
        ("full swap (before changes)", swap),
        ("incremental, first run (full)", first),
        ("incremental, changes only", plain),
        ("incremental, changes + deletes", second),
        ("incremental, changes, keys, no deletes", quiet),
        ("full swap (after changes)", swap_after),
    ):
        print(
            f"{name:<40}{r['total_s']:>9.2f}{r['extract_s']:>9.2f}{r['load_s']:>9.2f}"
            f"{r['rows_read']:>12,}{r['keys_read']:>12,}{r['pages_read']:>10,}{r['pages_written']:>10,}"
        )
    share = 100 * second["total_s"] / swap_after["total_s"]
    plain_share = 100 * plain["total_s"] / swap_after["total_s"]
    print(
        f"second incremental run: {plain_share:.1f}% of the full swap's time without delete detection, {share:.1f}% "
        f"with it (target <= 5%); target == source after it: "
        f"{second_exact}; Airflow's fixed per-task cost is not included (the same for both)"
    )
    run_sql([f"DROP TABLE IF EXISTS {TGT_DB}.{TABLE}"])
    print(
        f"the day without deletes: {100 * quiet['total_s'] / swap_after['total_s']:.1f}% of the full swap; "
        f"target == source: {quiet_exact}"
    )
    cold = plain["pages_read"] > plain["rows_read"] // 4
    print(
        "pages in/out: InnoDB pages (16 KiB) read into / written from the buffer pool during the run, server-wide. "
        "The changed rows are spread over the whole table (every 200th id), so the changes-only run touches about "
        f"one target page per changed row; it read {plain['pages_read']:,} pages for {plain['rows_read']:,} rows: "
        + (
            "the target's pages were not in the buffer pool (source and target share one pool here), and reading "
            "them is most of its time"
            if cold
            else "the target's pages were in the buffer pool"
        )
    )
    return 0 if second_exact and quiet_exact else 1
