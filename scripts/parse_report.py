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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from report_pipeline import admin  # noqa: E402
from report_pipeline.shards import DAG_ID, shard_dag_id, shard_of, write_shard_files  # noqa: E402
from report_pipeline.taskids import task_id  # noqa: E402

DAG_FILE = REPO / "dags" / f"{DAG_ID}.py"

COUNTER = """
import atexit, json, os
_out = os.environ.get("RP_COUNT_FILE")
if _out:
    _counts = {"connects": 0, "queries": 0, "selects": 0}
    try:
        import MySQLdb.connections as _mc
        _init, _query = _mc.Connection.__init__, _mc.Connection.query
        def _counting_init(self, *a, **k):
            _counts["connects"] += 1
            return _init(self, *a, **k)
        def _counting_query(self, q):
            _counts["queries"] += 1
            text = q.decode(errors="replace") if isinstance(q, (bytes, bytearray)) else str(q)
            _counts["selects"] += text.lstrip().upper().startswith("SELECT")
            return _query(self, q)
        _mc.Connection.__init__, _mc.Connection.query = _counting_init, _counting_query
    except ImportError:
        pass
    atexit.register(lambda: open(_out, "w").write(json.dumps(_counts)))
"""

TABLE_QUERIES = (
    # Legacy seed-style rows (positional %s bound from params_select) and new-style named rows.
    ("SELECT id, username FROM {t} WHERE company = %s AND created_at >= %s", "company[1],date"),
    (
        "SELECT id, kind, payload FROM {t} WHERE company = %(company_id)s AND happened_at >= %(date_from)s "
        "AND happened_at < %(date_to)s",
        "",
    ),
)


def _connect(db: str = "") -> Any:
    import MySQLdb

    return MySQLdb.connect(
        host="127.0.0.1",
        port=int(os.environ.get("REPORTS_MYSQL_PORT", "3307")),
        user="reports",
        passwd="reports",
        db=db,
        charset="utf8mb4",
    )


def padded(query: str, chars: int) -> str:
    """``query`` with ``AND id NOT IN (0, 1, ...)`` appended until it is about ``chars`` characters long."""
    if len(query) >= chars:
        return query
    values, n = [], 0
    while len(query) + len(" AND id NOT IN ()") + len(", ".join(values)) < chars:
        values.append(str(n))
        n += 1
    return f"{query} AND id NOT IN ({', '.join(values)})"


def create_admin(schema: str, companies: int, tables: int, query_chars: int = 0) -> None:
    """A scratch admin schema with ``companies`` active companies x ``tables`` active tables."""
    conn = _connect()
    conn.cursor().execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    conn.select_db(schema)
    admin.init_admin(conn)
    cur = conn.cursor()
    for n in range(1, companies + 1):
        admin.add_company(cur, 1000 + n, f"pr{n:04d}", row_id=n)
        admin.set_lookback(cur, 1000 + n, n % 30 + 1)
    for n in range(1, tables + 1):
        query, params = TABLE_QUERIES[n % 2]
        name = f"table_{n:02d}"
        cols = "id, username" if params else "id, kind, payload"
        admin.add_table(
            cur,
            admin.TableRow(
                id=n,
                name=name,
                query_select=padded(query.format(t=name), query_chars),
                params_select=params,
                query_insert=f"REPLACE INTO {name}({cols}) VALUES",
                load_mode="swap" if n % 5 == 0 else "upsert",
            ),
        )
    conn.commit()
    conn.close()


def dags_report(env: dict[str, str], count_file: Path, timeout: float) -> dict[str, Any]:
    """One ``airflow dags report`` over the env's dags folder: per-file durations and tasks, admin-DB traffic."""
    count_file.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        out = subprocess.run(
            [str(REPO / ".venv/bin/airflow"), "dags", "report", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"duration": f"> {timeout:.0f} s (killed)"}
    wall = time.monotonic() - started
    # Log lines may precede the JSON document on stdout.
    rows = json.loads(out.stdout[out.stdout.index("[{") :])
    counts = json.loads(count_file.read_text()) if count_file.exists() else {}
    seconds = [_seconds(r["duration"]) for r in rows if int(r["dag_num"])]
    return {
        "duration": _spread(seconds),
        "tasks": sum(int(r["task_num"]) for r in rows),
        "dags": sum(int(r["dag_num"]) for r in rows),
        "wall_s": f"{wall:.1f}",
        **counts,
    }


def _seconds(duration: str) -> float:
    h, m, s = duration.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _spread(values: list[float]) -> str:
    """One figure, or "max / median" of several files' figures."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{max(values):.2f} / {statistics.median(values):.2f}" if values else "-"


def file_parse(env: dict[str, str], path: Path, timeout: float) -> dict[str, Any]:
    """Parse one DAG file with DagBag in a fresh interpreter (Airflow pre-imported, as in the DAG processor).

    ``duration`` is DagBag's own figure for the file (what ``airflow dags report`` prints); CPU time
    barely depends on what else the machine runs, unlike durations.
    """
    script = (
        "import json, time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "c = time.process_time()\n"
        f"bag = DagBag(dag_folder={str(path)!r})\n"
        "(stat,) = bag.dagbag_stats\n"
        "print('RESULT', json.dumps({'cpu_s': time.process_time() - c, 'duration': stat.duration.total_seconds(),\n"
        "    'tasks': stat.task_num, 'dags': stat.dag_num, 'errors': len(bag.import_errors)}))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"duration": float("inf"), "cpu_s": float("inf"), "tasks": 0, "dags": 0, "errors": 0}
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


WORKER_SCRIPT = """
import json, os, resource, time
from airflow.dag_processing.dagbag import DagBag
import report_pipeline.airflow.factory, report_pipeline.airflow.operators  # a task process has them already
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
c, w = time.process_time(), time.perf_counter()
bag = DagBag(dag_folder=PATH)
cpu, wall = time.process_time() - c, time.perf_counter() - w
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
(stat,) = bag.dagbag_stats
print("RESULT", json.dumps({"duration": stat.duration.total_seconds(), "cpu_s": cpu, "wall_s": wall,
    "rss_mb": (rss() - before) / 2**20, "peak_mb": max(0, peak - before) / 2**20, "tasks": stat.task_num}))
"""

REFRESH_SCRIPT = """
import json, time
from airflow.providers.mysql.hooks.mysql import MySqlHook  # imports a refresh needs, excluded
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.airflow.factory import current_plan
from report_pipeline.settings import Settings
settings = Settings.from_env()
settings.snapshot_path.unlink(missing_ok=True)
c, w = time.process_time(), time.perf_counter()
plan, source = current_plan(settings)
cpu, wall = time.process_time() - c, time.perf_counter() - w
print("RESULT", json.dumps({"wall_s": wall, "cpu_s": cpu, "origin": source.origin,
    "snapshot_mb": settings.snapshot_path.stat().st_size / 2**20}))
"""


def _run_script(env: dict[str, str], script: str, timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=timeout
    )
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    return dict(json.loads(line.removeprefix("RESULT ")))


def warm_worker(env: dict[str, str], path: Path, task: str, runs: int, timeout: float) -> dict[str, Any]:
    """A worker's parse for ``task`` from a fresh snapshot, medians of ``runs`` (see the module docstring)."""
    worker = {**env, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": _dag_id_of(path), "_AIRFLOW_PARSING_CONTEXT_TASK_ID": task}
    found = [_run_script(worker, WORKER_SCRIPT.replace("PATH", repr(str(path))), timeout) for _ in range(runs)]
    return {
        "duration": f"{statistics.median(f['duration'] for f in found):.3f}",
        "cpu_s": f"{statistics.median(f['cpu_s'] for f in found):.3f}",
        "rss_mb": f"{statistics.median(f['rss_mb'] for f in found):.1f}",
        "peak_mb": f"{statistics.median(f['peak_mb'] for f in found):.1f}",
        "tasks": found[0]["tasks"],
    }


def refresh(env: dict[str, str], runs: int, timeout: float) -> dict[str, Any]:
    """The snapshot refresh alone: admin read, plan, snapshot written; medians of ``runs``."""
    found = [_run_script(env, REFRESH_SCRIPT, timeout) for _ in range(runs)]
    assert all(f["origin"] == "admin-db" for f in found), found
    return {
        "duration": f"{statistics.median(f['wall_s'] for f in found):.2f}",
        "cpu_s": f"{statistics.median(f['cpu_s'] for f in found):.2f}",
        "snapshot_mb": f"{found[-1]['snapshot_mb']:.2f}",
    }


def _dag_id_of(path: Path) -> str:
    return path.stem


def one_dag(env: dict[str, str], down: dict[str, str], warm_runs: int, timeout: float) -> list[Any]:
    """The single-DAG layout's situations (see the module docstring)."""
    count_file, snapshot = Path(env["RP_COUNT_FILE"]), Path(env["REPORTS_SNAPSHOT_PATH"])
    snapshot.unlink(missing_ok=True)
    results: list[tuple[str, dict[str, Any]]] = [
        ("cold: no snapshot, admin DB read", dags_report(env, count_file, timeout))
    ]
    if "killed" in str(results[0][1]["duration"]):
        return results  # a parse that does not finish: the warm ones would not either
    for n in range(warm_runs):
        parsed = file_parse(env, Path(env["AIRFLOW__CORE__DAGS_FOLDER"]) / DAG_FILE.name, timeout)
        cpu = {"cpu_s": f"{parsed['cpu_s']:.2f}"}
        results.append((f"warm snapshot #{n + 1}", {**dags_report(env, count_file, timeout), **cpu}))
    old = time.time() - 3600
    os.utime(snapshot, (old, old))
    results.append(("expired, admin DB down (1st)", dags_report(down, count_file, timeout)))
    results.append(("expired, admin DB down (backed off)", dags_report(down, count_file, timeout)))
    worker = {
        **down,
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": DAG_ID,
        "_AIRFLOW_PARSING_CONTEXT_TASK_ID": task_id("pr0001", "table_01", "mysql_to_s3"),
    }
    (snapshot.parent / (snapshot.name + ".failed")).unlink(missing_ok=True)
    results.append(("worker parse, expired, admin DB down", dags_report(worker, count_file, timeout)))
    results.append((f"snapshot refresh (median of {warm_runs})", refresh(env, warm_runs, timeout)))
    path = Path(env["AIRFLOW__CORE__DAGS_FOLDER"]) / DAG_FILE.name
    task = task_id("pr0001", "table_01", "mysql_to_s3")
    results.append((f"worker parse, warm (median of {warm_runs})", warm_worker(env, path, task, warm_runs, timeout)))
    return results


def sharded(env: dict[str, str], down: dict[str, str], shards: int, warm_runs: int, timeout: float) -> list[Any]:
    """The N-shard layout's situations (see the module docstring)."""
    count_file, snapshot = Path(env["RP_COUNT_FILE"]), Path(env["REPORTS_SNAPSHOT_PATH"])
    folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    files = sorted(folder.glob(f"{DAG_ID}_shard_*.py"))
    snapshot.unlink(missing_ok=True)
    results: list[tuple[str, dict[str, Any]]] = [
        (f"cold: no snapshot, {shards} files in 1 process", dags_report(env, count_file, timeout))
    ]
    for n in range(warm_runs):
        parsed = [file_parse(env, path, timeout) for path in files]
        results.append(
            (
                f"warm snapshot #{n + 1}, each file alone",
                {
                    "duration": _spread([p["duration"] for p in parsed]),
                    "cpu_s": _spread([p["cpu_s"] for p in parsed]),
                    "dags": sum(p["dags"] for p in parsed),
                    "tasks": f"{max(p['tasks'] for p in parsed)} max, {sum(p['tasks'] for p in parsed)} all",
                },
            )
        )
    old = time.time() - 3600
    os.utime(snapshot, (old, old))
    worker = {
        **down,
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": shard_dag_id(1),
        # A company of shard 1, so the worker's task is one the file builds.
        "_AIRFLOW_PARSING_CONTEXT_TASK_ID": task_id(_first_of(1, shards), "table_01", "mysql_to_s3"),
    }
    parsed = file_parse(worker, files[0], timeout)
    results.append(
        (
            "worker parse of shard 1, expired, DB down",
            {"duration": f"{parsed['duration']:.2f}", "cpu_s": f"{parsed['cpu_s']:.2f}", "tasks": parsed["tasks"]},
        )
    )
    (snapshot.parent / (snapshot.name + ".failed")).unlink(missing_ok=True)
    os.utime(snapshot)  # fresh again
    task = str(worker["_AIRFLOW_PARSING_CONTEXT_TASK_ID"])
    results.append(
        (f"worker parse of shard 1, warm (median of {warm_runs})", warm_worker(env, files[0], task, warm_runs, timeout))
    )
    return results


def _first_of(shard: int, shards: int) -> str:
    """The first scratch company (``pr0001``..) in a shard."""
    return next(f"pr{n:04d}" for n in range(1, 100_000) if shard_of(f"pr{n:04d}", shards) == shard)


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
    port = os.environ.get("REPORTS_MYSQL_PORT", "3307")
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
                        "AIRFLOW_CONN_REPORTS_ADMIN_DB": f"mysql://reports:reports@127.0.0.1:{port}/{schema}?charset=utf8mb4",
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
                conn = _connect()
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{schema}`")
                conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
