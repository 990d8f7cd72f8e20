"""A full run of ``make bench``: the schedule (table sizes x contenders x repeats), each run in its own
child process into a fresh target, the copy checked, then the summary, the targets and the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchkit.child import CONTENDERS, run_child
from benchkit.data import (
    BIG_ROWS,
    BUCKET_OURS,
    BUCKET_PEERS,
    SRC_DB,
    TGT_DB,
    TGT_TABLE,
    check_buckets,
    clean_buckets,
    ensure_source,
    fingerprint,
    fmt_rows,
    reset_target,
)
from benchkit.machine import REPO, environment, settle_source, wait_for_quiet
from benchkit.summary import evaluate_targets, print_table, summarize
from serverkit import MYSQL_HOST, mysql_port, s3_endpoint

OUTPUT = REPO / "test-output" / "bench.json"


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


def run_transfers(args: argparse.Namespace) -> int:
    """The transfer rows: every scheduled run, the table, the targets, the JSON file. 0 when every copy
    was exact, 1 when one was not, 2 when the servers are not usable."""
    try:
        env = environment()
        check_buckets()
    except Exception as exc:  # noqa: BLE001 - tell the user how to get the servers, then stop
        print(
            f"bench: MariaDB on {MYSQL_HOST}:{mysql_port()} or S3 on {s3_endpoint()} is not usable: {exc}\n"
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
    for target in targets:
        print(f"  {target['target']}: {target['text']} -> {'OK' if target['ok'] else 'MISS'}")
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
    return 0 if all(r.get("exact_copy") for r in summary) else 1
