"""Measure how long parsing the DAG files takes with a big admin config, and how often they query the admin DB.

    source scripts/env.sh && .venv/bin/python scripts/parse_report.py [--sizes 200x10,1000x20] [--shards 8]

For each size (companies x tables) a scratch admin schema (dropped at the end), then both layouts:

one DAG (REPORTS_DAG_SHARDS=1), a dags folder holding only ``populate_report_databases.py``, through
``airflow dags report`` (the duration Airflow itself reports for the file):
- cold: no snapshot yet, so the parse reads the admin DB once and writes the snapshot;
- warm: a fresh snapshot, the normal case within the TTL (expected: no admin-DB access at all);
- expired + admin DB unreachable: first parse (one failed connect) and the next (backed off);
- worker: a task's parse (parsing context set) with an expired snapshot and an unreachable admin DB;
- worker, warm (issue 21): a task's parse with a fresh snapshot, our modules already imported (as in a
  worker's task process): seconds, CPU and the memory it adds above those imports (RSS growth and peak);
- snapshot refresh (issue 21): no snapshot, so one admin read, the plan built and the snapshot written
  (``current_plan`` in a fresh interpreter, imports excluded), and the snapshot file's size.

N shards (REPORTS_DAG_SHARDS=N), a dags folder with the plain file and the N shard files:
- cold: one ``airflow dags report`` over the folder with no snapshot: admin reads of all files together;
- warm: each shard file parsed in a fresh interpreter, as the DAG processor parses each file in a
  process of its own (our modules imported afresh each time): max and median over the files;
- worker: one shard file's parse for one of its tasks (expired snapshot, admin DB down), and the same
  warm with the memory it adds (as above).

Figures of repeated runs are medians (``--warm-runs``); queries are padded to ``--query-chars``
characters (default 900, the issue's realistic size) with a NOT IN list.

``duration`` is Airflow's own figure (DagBag's time for the file: import plus bagging); ``cpu_s`` is
the CPU time of the same parse, which stays comparable on a busy machine. Bytecode is cached (in the
scratch directory) as in any installed deployment, so modules are not recompiled at every parse.
Admin-DB traffic is counted inside the parsing process by a ``sitecustomize`` that wraps mysqlclient's
connect and query, because the server's global counters also see other engineers' tests.
Not part of ``make test``: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from benchkit.parse_admin import create_admin, drop_admin  # noqa: E402
from benchkit.parse_probes import COUNTER, DAG_FILE, one_dag, sharded  # noqa: E402
from report_pipeline.shards import write_shard_files  # noqa: E402
from serverkit import mysql_url  # noqa: E402

HEADERS = [
    "situation",
    "duration",
    "dags",
    "tasks",
    "connects",
    "queries",
    "selects",
    "wall_s",
    "cpu_s",
    "rss_mb",
    "peak_mb",
    "snapshot_mb",
]


def print_table(title: str, results: list[tuple[str, dict[str, Any]]]) -> None:
    """One layout's figures."""
    table = [[name, *(str(r.get(h, "-")) for h in HEADERS[1:])] for name, r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(HEADERS, *table, strict=False)]
    print(title)
    for n, row in enumerate([HEADERS, *table]):
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))
    print(flush=True)


def main() -> int:
    """Build each scratch config, measure both layouts, print one table per size and layout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200x10,1000x20", help="companies x tables, comma-separated")
    parser.add_argument("--shards", type=int, default=8, help="REPORTS_DAG_SHARDS of the sharded layout")
    parser.add_argument("--layouts", default="one,shards", help="one, shards or both (comma-separated)")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a parse is given up")
    parser.add_argument("--query-chars", type=int, default=900, help="length the table queries are padded to")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rp-parse-"))
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(COUNTER)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    try:
        for size in args.sizes.split(","):
            companies, tables = (int(x) for x in size.split("x"))
            schema = f"rp_parse_{uuid.uuid4().hex[:8]}"
            create_admin(schema, companies, tables, args.query_chars)
            try:
                for layout in args.layouts.split(","):
                    count = 1 if layout == "one" else args.shards
                    folder = work / f"dags-{layout}"
                    shutil.rmtree(folder, ignore_errors=True)
                    folder.mkdir()
                    shutil.copy(DAG_FILE, folder)
                    write_shard_files(folder, count)
                    env = {
                        **base,
                        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(REPO / ".local" / "airflow")),
                        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
                        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": str(int(args.timeout)),
                        "AIRFLOW_CONN_REPORTS_ADMIN_DB": mysql_url(schema),
                        "REPORTS_SNAPSHOT_PATH": str(work / f"snapshot-{layout}.json"),
                        "REPORTS_SNAPSHOT_TTL": "300",
                        "REPORTS_DAG_SHARDS": str(count),
                        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "site"), os.environ.get("PYTHONPATH")])),
                        "RP_COUNT_FILE": str(work / "counts.json"),
                    }
                    down = {**env, "AIRFLOW_CONN_REPORTS_ADMIN_DB": "mysql://reports:reports@127.0.0.1:1/nowhere"}
                    if layout == "one":
                        results = one_dag(env, down, args.warm_runs, args.timeout)
                        title = f"{companies} companies x {tables} tables, one DAG ({companies * tables * 2} tasks)"
                    else:
                        results = sharded(env, down, count, args.warm_runs, args.timeout)
                        title = f"{companies} companies x {tables} tables, {count} shard DAGs (durations: max / median)"
                    print_table(f"{title}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", results)
            finally:
                drop_admin(schema)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
