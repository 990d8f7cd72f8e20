"""The DAG-parse measurements of ``scripts/parse_report.py`` (its docstring says what each situation is):
``airflow dags report`` runs, single-file DagBag parses in fresh interpreters, a worker's parse and the
snapshot refresh, and the admin-DB traffic each makes (counted in the parsing process by COUNTER)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report_pipeline.shards import DAG_ID, shard_dag_id, shard_of
from report_pipeline.taskids import task_id

REPO = Path(__file__).resolve().parents[2]
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
        each = [file_parse(env, path, timeout) for path in files]
        results.append(
            (
                f"warm snapshot #{n + 1}, each file alone",
                {
                    "duration": _spread([p["duration"] for p in each]),
                    "cpu_s": _spread([p["cpu_s"] for p in each]),
                    "dags": sum(p["dags"] for p in each),
                    "tasks": f"{max(p['tasks'] for p in each)} max, {sum(p['tasks'] for p in each)} all",
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
