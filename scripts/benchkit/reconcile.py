"""The reconcile row of the benchmark (issue 20 item 7): ``python scripts/bench.py --reconcile [--repeat N]``.

On a copy of the benchmark's mixed-type table (5 M rows by default, ids doubled so that target-only rows
can sit at random positions between them), interleaved ``--repeat`` times:

1. a full ``swap`` of the table into ``bench_tgt.rec_events`` (the baseline: what reloading costs), which
   also makes the target exact again;
2. drift behind the pipeline's back: 0.1 % of the rows, at random positions, a third each changed in the
   target, removed from it, and added to it (odd ids between the source's even ones);
3. ``reconcile --repair`` (``report_pipeline.reconciliation.reconcile_table``, as the CLI and the task run
   it; the table detects deletes, so the added rows are deleted): its time (the comparison and the
   repair apart) and the rows each server read, then target == source checked exactly (row count and
   the NULL-aware checksum of every column).

Runs in this process against the same servers as ``bench.py`` (no Airflow), medians of the repeats.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from typing import Any

from benchkit.data import (
    BIG_ROWS,
    BUCKET_OURS,
    COLS,
    COLUMNS,
    GEN_TAG,
    SRC_DB,
    TGT_DB,
    clean_buckets,
    ensure_source,
    same_rows,
)
from benchkit.machine import innodb_pages, settle, wait_for_quiet
from serverkit import LocalConnections, mysql_connect, query_one, run_sql, s3_client

TABLE = "rec_events"
DAY = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
DRIFT_SHARE = 0.001


def prepare(rows: int) -> None:
    """bench_src.rec_events: the generator's table with ids doubled (made once, tagged like the generator's)."""
    source, _ = ensure_source(rows)
    tag = f"{GEN_TAG} x2 {rows}"
    found = query_one(
        f"SELECT MAX(TABLE_COMMENT) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{SRC_DB}' "
        f"AND TABLE_NAME = '{TABLE}'"
    )
    if found[0] != tag:
        print(f"== copying {SRC_DB}.{source} into {SRC_DB}.{TABLE} with doubled ids ...", flush=True)
        others = COLS.replace("id, ", "", 1)
        run_sql(
            [
                f"DROP TABLE IF EXISTS {SRC_DB}.{TABLE}",
                f"CREATE TABLE {SRC_DB}.{TABLE} LIKE {SRC_DB}.{source}",
                f"ALTER TABLE {SRC_DB}.{TABLE} COMMENT = '{tag}'",
                f"INSERT INTO {SRC_DB}.{TABLE} SELECT 2 * id, {others} FROM {SRC_DB}.{source}",
            ]
        )
    run_sql(
        [
            f"DROP TABLE IF EXISTS {TGT_DB}.{TABLE}",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_loads",
            f"DROP TABLE IF EXISTS {TGT_DB}.report_reconciles",
            f"CREATE TABLE {TGT_DB}.{TABLE} LIKE {SRC_DB}.{TABLE}",
        ]
    )


def _pieces() -> Any:
    from report_pipeline import reconciliation
    from report_pipeline.config import Company, build_table
    from report_pipeline.settings import Settings

    spec = build_table(
        {
            "id": 1,
            "name": TABLE,
            "status": 1,
            "query_select": f"SELECT {COLS} FROM {TABLE}",
            "params_select": "",
            "query_insert": f"REPLACE INTO {TABLE} ({COLS}) VALUES ",
            "all_companies": 1,
            "load_mode": "incremental",
            "cursor_column": "created_at",
            "delete_detection": "keys",
        }
    )
    company = Company(1, 1, 1, "bench", BUCKET_OURS, TGT_DB, 0, "default")
    return reconciliation, spec, company, Settings()


def swap(attempt: int) -> dict[str, Any]:
    """A full swap of the table (extract every row, load a shadow, RENAME): the reload reconcile avoids."""
    from report_pipeline.extract import ExtractRequest, extract
    from report_pipeline.load import LoadRequest, load
    from report_pipeline.storage import Bucket
    from report_pipeline.target.mysql import MySqlTarget
    from report_pipeline.validation import InsertTarget

    settle()
    wait_for_quiet(30)
    pages = innodb_pages()
    bucket = Bucket(s3_client(), BUCKET_OURS)
    prefix = f"{TABLE}/swap-{attempt}"
    t0 = time.perf_counter()
    src = mysql_connect(SRC_DB)
    manifest = extract(
        src,
        ExtractRequest(
            company="bench",
            table=TABLE,
            bucket=bucket,
            prefix=prefix,
            query=f"SELECT {COLS} FROM {TABLE}",
            parameters=(),
            logical_date=DAY.isoformat(),
            run_id=f"bench-swap-{attempt}",
        ),
    )
    src.close()
    tgt = mysql_connect()
    result = load(
        MySqlTarget(tgt, opener=mysql_connect),
        LoadRequest(
            company="bench",
            schema=TGT_DB,
            target=InsertTarget(TABLE, COLUMNS, "replace"),
            load_mode="swap",
            bucket=bucket,
            manifest_keys=(manifest.key,),
            success_key=f"{prefix}/_SUCCESS",
            logical_date=DAY + dt.timedelta(days=attempt),
            run_id=f"bench-swap-{attempt}",
            parallelism=2,
        ),
    )
    tgt.close()
    seconds = time.perf_counter() - t0
    after = innodb_pages()
    return {
        "seconds": seconds,
        "source_read": manifest.rows,
        "target_read": 0,
        "copied": result.rows,
        "pages_read": after[0] - pages[0],
    }


def make_drift(rows: int, seed: int) -> tuple[int, int, int]:
    """Change, remove and add 0.1 % of the target's rows at random positions (a third each)."""
    picked = random.Random(seed).sample(range(1, rows + 1), max(3, int(rows * DRIFT_SHARE)))
    third = len(picked) // 3
    changed, missing, extra = picked[:third], picked[third : 2 * third], picked[2 * third :]
    others = COLS.replace("id, ", "", 1)

    def ids(values: list[int], plus: int = 0) -> str:
        return ", ".join(str(2 * v + plus) for v in values)

    run_sql(
        [
            f"UPDATE {TGT_DB}.{TABLE} SET note = CONCAT(IFNULL(note, ''), ' drifted') WHERE id IN ({ids(changed)})",
            f"DELETE FROM {TGT_DB}.{TABLE} WHERE id IN ({ids(missing)})",
            f"INSERT INTO {TGT_DB}.{TABLE} SELECT id + 1, {others} FROM {TGT_DB}.{TABLE} WHERE id IN ({ids(extra)})",
        ]
    )
    return len(changed), len(missing), len(extra)


def reconcile(attempt: int) -> dict[str, Any]:
    """``reconcile --repair`` of the drifted table: total time, the comparison's share, rows read per server."""
    reconciliation, spec, company, settings = _pieces()
    real = reconciliation.find_drift
    timing: dict[str, float] = {}

    def timed(*args: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(*args)
        finally:
            timing["compare"] = time.perf_counter() - t

    reconciliation.find_drift = timed
    settle()
    wait_for_quiet(30)
    pages = innodb_pages()
    t0 = time.perf_counter()
    try:
        result = reconciliation.reconcile_table(
            LocalConnections(SRC_DB),
            settings,
            company,
            spec,
            DAY + dt.timedelta(days=attempt),
            f"bench-rec-{attempt}",
            repair=True,
        )
    finally:
        reconciliation.find_drift = real
    seconds = time.perf_counter() - t0
    after = innodb_pages()
    d = result.drift
    return {
        "seconds": seconds,
        "compare_s": timing["compare"],
        "repair_s": seconds - timing["compare"],
        "source_read": d.rows_read[0] + result.rows_copied,
        "target_read": d.rows_read[1],
        "copied": result.rows_copied,
        "deleted": result.rows_deleted,
        "found": (len(d.changed), len(d.missing), len(d.extra)),
        "ranges": (d.differing_ranges, d.ranges, d.split),
        "outcome": result.outcome,
        "pages_read": after[0] - pages[0],
    }


def exact() -> bool:
    return same_rows(f"{SRC_DB}.{TABLE}", f"{TGT_DB}.{TABLE}")


def main(rows: int = BIG_ROWS, repeat: int = 3) -> int:
    """Run the reconcile row (``repeat`` interleaved swap / drift / reconcile rounds) and print it."""
    prepare(rows)
    swaps, reconciles, drifts, exacts = [], [], [], []
    for attempt in range(1, repeat + 1):
        swaps.append(swap(attempt))
        exacts.append(exact())
        drifts.append(make_drift(rows, attempt))
        reconciles.append(reconcile(attempt))
        exacts.append(exact())
        r, s = reconciles[-1], swaps[-1]
        print(
            f"   run {attempt}/{repeat}: swap {s['seconds']:.2f} s; drift {drifts[-1]}; reconcile + repair "
            f"{r['seconds']:.2f} s (compare {r['compare_s']:.2f}), found {r['found']}, {r['ranges'][0]:,} of "
            f"{r['ranges'][1]:,} ranges ({r['ranges'][2]}), copied {r['copied']:,}, deleted {r['deleted']:,}, "
            f"{r['outcome']}; exact {exacts[-1]}",
            flush=True,
        )
    run_sql([f"DROP TABLE IF EXISTS {TGT_DB}.{TABLE}"])
    clean_buckets((BUCKET_OURS,))

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    changed, missing, extra = drifts[0]
    print()
    print(
        f"reconcile row, {rows:,}-row table; drift per run: {changed:,} changed, {missing:,} missing, {extra:,} extra "
        f"({100 * DRIFT_SHARE:.1f} %, random positions); medians of {repeat} interleaved runs"
    )
    print(
        f"{'run':<28}{'seconds':>9}{'(min-max)':>16}{'compare':>9}{'repair':>9}{'source rows read':>18}"
        f"{'target rows read':>18}{'rows copied':>13}{'pages in':>10}"
    )
    for name, runs in (("full swap", swaps), ("reconcile --repair", reconciles)):
        spread = f"({min(r['seconds'] for r in runs):.2f}-{max(r['seconds'] for r in runs):.2f})"
        compare = f"{med(runs, 'compare_s'):.2f}" if "compare_s" in runs[0] else "-"
        repair = f"{med(runs, 'repair_s'):.2f}" if "repair_s" in runs[0] else "-"
        print(
            f"{name:<28}{med(runs, 'seconds'):>9.2f}{spread:>16}{compare:>9}{repair:>9}"
            f"{int(med(runs, 'source_read')):>18,}{int(med(runs, 'target_read')):>18,}{int(med(runs, 'copied')):>13,}"
            f"{int(med(runs, 'pages_read')):>10,}"
        )
    share = 100 * med(reconciles, "seconds") / med(swaps, "seconds")
    print(
        f"reconcile + repair took {share:.0f} % of the full swap's time; target == source after every run: "
        f"{all(exacts)}. Rows read: the comparison checksums every row on each server (only range sums and the "
        "differing ranges' key checksums cross the wire); the repair re-extracts only the differing rows."
    )
    return 0 if all(exacts) else 1
