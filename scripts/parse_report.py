"""Measure how long parsing the DAG file takes with a big admin config, and how often it queries the admin DB.

    source scripts/env.sh && .venv/bin/python scripts/parse_report.py [--companies 200] [--tables 10]

Creates a scratch admin schema (dropped at the end) with N companies x M tables, then runs
``airflow dags report`` (the duration Airflow itself reports for the file) in these situations:

- cold: no snapshot yet, so the parse reads the admin DB once and writes the snapshot;
- warm: a fresh snapshot, the normal case within the TTL (expected: no admin-DB access at all);
- expired + admin DB unreachable: first parse (one failed connect) and the next (backed off);
- worker: a task's parse (parsing context set) with an expired snapshot and an unreachable admin DB.

``duration`` is Airflow's own figure (wall clock of importing the file); for warm runs ``cpu_s`` adds
the CPU time of the same parse through DagBag, which stays comparable on a busy machine.
Admin-DB traffic is counted inside the parsing process by a ``sitecustomize`` that wraps mysqlclient's
connect and query, because the server's global counters also see other engineers' tests.
Not part of ``make test``: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def create_admin(schema: str, companies: int, tables: int) -> None:
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
                query_select=query.format(t=name),
                params_select=params,
                query_insert=f"REPLACE INTO {name}({cols}) VALUES",
                load_mode="swap" if n % 5 == 0 else "upsert",
            ),
        )
    conn.commit()
    conn.close()


def dags_report(env: dict[str, str], count_file: Path) -> dict[str, Any]:
    """One ``airflow dags report`` run: Airflow's parse duration, task count and admin-DB traffic."""
    count_file.unlink(missing_ok=True)
    started = time.monotonic()
    out = subprocess.run(
        [str(REPO / ".venv/bin/airflow"), "dags", "report", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.monotonic() - started
    # Log lines may precede the JSON document on stdout.
    start = out.stdout.index("[{")
    (row,) = [r for r in json.loads(out.stdout[start:]) if r["file"].endswith("populate_report_databases.py")]
    counts = json.loads(count_file.read_text()) if count_file.exists() else {}
    return {
        "duration": row["duration"],
        "tasks": row["task_num"],
        "dags": row["dag_num"],
        "wall_s": f"{wall:.1f}",
        **counts,
    }


def dagbag_cpu(env: dict[str, str]) -> dict[str, Any]:
    """CPU and wall seconds of loading the DAG file with DagBag in a fresh interpreter (Airflow pre-imported).

    CPU time barely depends on what else the machine runs, unlike the wall-clock duration above.
    """
    script = (
        "import json, time\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "c, w = time.process_time(), time.perf_counter()\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags' / 'populate_report_databases.py')!r})\n"
        "print('RESULT', json.dumps({'cpu_s': round(time.process_time() - c, 2),\n"
        "    'dagbag_wall_s': round(time.perf_counter() - w, 2), 'errors': len(bag.import_errors)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def main() -> int:
    """Build the scratch config, measure each situation, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()

    schema = f"rp_parse_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="rp-parse-"))
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(COUNTER)
    snapshot = work / "admin_snapshot.json"
    count_file = work / "counts.json"
    port = os.environ.get("REPORTS_MYSQL_PORT", "3307")
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(REPO / ".local" / "airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_REPORTS_ADMIN_DB": f"mysql://reports:reports@127.0.0.1:{port}/{schema}?charset=utf8mb4",
        "REPORTS_SNAPSHOT_PATH": str(snapshot),
        "REPORTS_SNAPSHOT_TTL": "300",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "site"), os.environ.get("PYTHONPATH")])),
        "RP_COUNT_FILE": str(count_file),
    }
    down = {**env, "AIRFLOW_CONN_REPORTS_ADMIN_DB": "mysql://reports:reports@127.0.0.1:1/nowhere"}
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        create_admin(schema, args.companies, args.tables)
        results.append(("cold: no snapshot, admin DB read", dags_report(env, count_file)))
        for n in range(args.warm_runs):
            results.append((f"warm snapshot #{n + 1}", {**dags_report(env, count_file), **dagbag_cpu(env)}))
        old = time.time() - 3600
        os.utime(snapshot, (old, old))
        results.append(("expired, admin DB down (1st)", dags_report(down, count_file)))
        results.append(("expired, admin DB down (backed off)", dags_report(down, count_file)))
        worker = {
            **down,
            "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "populate_report_databases",
            "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "company_pr0001.table_01__mysql_to_s3",
        }
        (snapshot.parent / (snapshot.name + ".failed")).unlink(missing_ok=True)
        results.append(("worker parse, expired, admin DB down", dags_report(worker, count_file)))
    finally:
        conn = _connect()
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{schema}`")
        conn.close()
        shutil.rmtree(work, ignore_errors=True)

    headers = [
        "situation",
        "duration",
        "dags",
        "tasks",
        "connects",
        "queries",
        "selects",
        "wall_s",
        "cpu_s",
        "dagbag_wall_s",
    ]
    table = [[name, *(str(r.get(h, "-")) for h in headers[1:])] for name, r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    print(
        f"populate_report_databases.py with {args.companies} companies x {args.tables} tables "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for n, row in enumerate([headers, *table]):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
