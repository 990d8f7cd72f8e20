"""A small table through ``report-pipeline run`` (issue 16 item 4): whole-process time and where it goes.

    source scripts/env.sh && PATH="$PWD/.venv/bin:$PATH" .venv/bin/python scripts/small_table.py [--repeat 5]

Needs the local servers and the demo companies (``make services`` and ``report-pipeline demo-setup``).
It makes ``source.bench_small`` with the benchmark's generator (``scripts/benchkit/data.py``, mixed types,
tricky text, NULLs; 4 companies x ``--rows`` rows, so acme's query returns ``--rows`` rows), a tables row
``bench_small`` binding the company, and ``acme.bench_small``; then, ``--repeat`` times, empties the
target and runs ``report-pipeline run --company acme --table bench_small`` as a user would (console
script, connections through MySqlHook/S3Hook), checking the copy exactly each time. It prints:

1. whole-process wall time of each run (median, spread) and the work time ``run`` reports;
2. a breakdown: interpreter, import steps (each measured as the difference of the fastest whole-process
   times of ``python -c`` children that import one step more), and, from one run instrumented in
   process, the admin read + plan, the S3 client, the extract and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.data import COLS, FINGERPRINT, GEN_TAG, generator_statements
from serverkit import query_one, run_sql

TABLE = "bench_small"
COMPANY, COMPANY_ID = "acme", 1
SOURCE_DB = "source"
QUERY = f"SELECT {COLS} FROM {TABLE} WHERE company_id = %(company_id)s"
INSERT = f"REPLACE INTO {TABLE}({COLS}) VALUES"
PY = sys.executable

# Import steps, each a child process doing one step more than the one before (medians of --repeat).
IMPORT_STEPS: tuple[tuple[str, str], ...] = (
    ("interpreter start-up", "pass"),
    ("report_pipeline.cli (ours)", "import report_pipeline.cli"),
    (
        "airflow package without settings.initialize() (_AIRFLOW__AS_LIBRARY)",
        "import os; os.environ['_AIRFLOW__AS_LIBRARY']='1'; import report_pipeline.cli, airflow",
    ),
    ("airflow settings.initialize() (logging, ORM, secrets masking)", "import report_pipeline.cli, airflow"),
    ("MySqlHook (providers mysql + common.sql)", "import report_pipeline.airflow.connections"),
    (
        "S3Hook + boto3",
        "import report_pipeline.airflow.connections; from airflow.providers.amazon.aws.hooks.s3 import S3Hook",
    ),
)


def setup(rows: int) -> None:
    """The source table, the admin row and acme's target table (idempotent)."""
    table_rows = rows * 4
    found = query_one(
        f"SELECT MAX(TABLE_COMMENT), MAX(TABLE_ROWS) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{SOURCE_DB}' AND TABLE_NAME = '{TABLE}'"
    )
    count = query_one(f"SELECT COUNT(*) FROM {SOURCE_DB}.{TABLE}")[0] if found[0] == GEN_TAG else None
    if count != table_rows:
        run_sql(generator_statements(TABLE, table_rows), SOURCE_DB)
    run_sql([f"CREATE TABLE IF NOT EXISTS {COMPANY}.{TABLE} LIKE {SOURCE_DB}.{TABLE}"])
    listed = query_one(f"SELECT COUNT(*) FROM reports_admin.`tables` WHERE name = '{TABLE}' AND status = 1")
    if not listed[0]:
        subprocess.run(
            ["report-pipeline", "add-table", "--name", TABLE, "--query-select", QUERY, "--query-insert", INSERT],
            check=True,
            capture_output=True,
        )


def fingerprint_of(qualified: str, where: str = "") -> list[int]:
    sql = FINGERPRINT.format(f"(SELECT * FROM {qualified}{where}) AS t")
    return [int(v or 0) for v in query_one(sql)]


def timed_run() -> tuple[float, float, str]:
    """One whole ``report-pipeline run``: wall seconds, the ``total s`` it printed, its stdout."""
    run_sql([f"TRUNCATE TABLE {COMPANY}.{TABLE}"])
    argv = ["report-pipeline", "run", "--company", COMPANY, "--table", TABLE, "--date", "2026-11-26"]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"report-pipeline run failed:\n{proc.stderr[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1].split()
    return wall, float(last[-1]), proc.stdout


def child_seconds(code: str, repeat: int) -> float:
    """The fastest of ``repeat`` children: an import does the same work each time, so noise only adds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        # Frozen before exiting, as the console script does: the step's imports, not the final collection.
        subprocess.run([PY, "-c", code + "; import gc; gc.freeze()"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times)


def instrumented() -> dict[str, float]:
    """One ``run`` in this process with a clock around each phase (``--child``): seconds per phase."""
    from report_pipeline import cli, tasks
    from report_pipeline.airflow import connections as hook_module
    from report_pipeline.airflow import console

    seconds: dict[str, float] = {}

    def clocked(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - started

        setattr(owner, name, wrapper)

    clocked(hook_module.HookConnections, "s3", "S3 client (S3Hook.get_conn)")
    clocked(cli, "_fresh_plan", "admin connection, read and plan")
    clocked(tasks, "extract_table", "extract (incl. its connections)")
    clocked(tasks, "load_table", "load (incl. its connections)")
    run_sql([f"TRUNCATE TABLE {COMPANY}.{TABLE}"])
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        saved, sys.stdout = sys.stdout, quiet
        try:
            cli.main(["run", "--company", COMPANY, "--table", TABLE, "--date", "2026-11-26"], console.hook_connections)
        finally:
            sys.stdout = saved
    seconds["whole run() call"] = time.perf_counter() - started
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows of acme's table (20,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("SMALL-RESULT " + json.dumps(instrumented()))
        return 0

    setup(args.rows)
    source_fp = fingerprint_of(f"{SOURCE_DB}.{TABLE}", f" WHERE company_id = {COMPANY_ID}")
    walls, works = [], []
    for _ in range(args.repeat):
        wall, work, _ = timed_run()
        exact = fingerprint_of(f"{COMPANY}.{TABLE}") == source_fp
        if not exact:
            raise RuntimeError(f"{COMPANY}.{TABLE} differs from the source after a run")
        walls.append(wall)
        works.append(work)
        print(f"run: wall {wall:.2f} s, work (run's total s) {work:.2f} s, exact {exact}", flush=True)
    print(
        f"\n{args.rows:,}-row copy through `report-pipeline run`, {args.repeat} runs, load average "
        f"{os.getloadavg()[0]:.1f}: wall median {statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}),"
        f" work median {statistics.median(works):.2f} s ({min(works):.2f}-{max(works):.2f}); every copy exact\n"
    )

    print("breakdown (fastest whole process of --repeat python -c children, each importing one step more):")
    before = 0.0
    for label, code in IMPORT_STEPS:
        total = child_seconds(code, args.repeat)
        print(f"  {label:<72} {total - before:6.3f} s  (cumulative {total:.3f})")
        before = total
    proc = subprocess.run([PY, __file__, "--child"], capture_output=True, text=True, check=True)
    phases = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("SMALL-RESULT "))[13:])
    print("in-process phases of one run (after the imports above; phases overlap where noted):")
    for label, value in phases.items():
        print(f"  {label:<72} {value:6.3f} s")
    rest = statistics.median(walls) - before - phases["whole run() call"]
    print(f"  {'rest of the median wall time (argument parsing, process exit, noise)':<72} {rest:6.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
