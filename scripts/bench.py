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
``../shared/bench/`` (gen_source.sql, peers.py, NOTES.md), not imported, so the bench runs without that
directory. The pieces live in ``scripts/benchkit/``; this file is the entry point (and each child's).
Differences from peers.py: the databases are ``bench_src``/``bench_tgt`` as user ``reports``; ``limit``
writes its files under ``@@secure_file_priv``; imports are done before the work clock starts for every
contender (the wall time includes them); the checksum also sums the CRC32s, so that two equal changed
rows cannot cancel out in the XOR.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Interpreter start-up before this line is in the parent's wall time, the imports below in the child's
# import time (``child_main``).
CHILD_STARTED = time.perf_counter()

from benchkit.child import CONTENDERS, child_main  # noqa: E402
from benchkit.data import BIG_ROWS, DEFAULT_ROWS  # noqa: E402
from benchkit.session import OUTPUT, run_transfers  # noqa: E402


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
        "--incremental", action="store_true", help="only the incremental row (scripts/benchkit/incremental.py)"
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="only the reconcile row (scripts/benchkit/reconcile.py): 5M rows, 0.1%% drifted, beside a full swap",
    )
    parser.add_argument(
        "--no-reconcile", dest="with_reconcile", action="store_false", help="leave the reconcile row out of a full run"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, CHILD_STARTED)
    if args.incremental:
        from benchkit import incremental

        return incremental.main(args.rows)
    if args.reconcile:
        from benchkit import reconcile

        return reconcile.main(BIG_ROWS if args.big else args.rows, args.repeat)
    if args.rows < 1:
        parser.error("--rows must be positive")
    transfers = run_transfers(args)
    if transfers == 2:
        return 2  # the servers are not usable (run_transfers said so)
    reconciled = 0
    if args.with_reconcile and not args.only:
        from benchkit import reconcile

        print()
        reconciled = reconcile.main(BIG_ROWS if args.big else args.rows, args.repeat)
    return 0 if transfers == 0 and reconciled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
