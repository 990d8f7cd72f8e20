"""The fleet benchmark (issue 21 item 4, `make bench-fleet`): N companies x M small tables, one DAG run
through a real local Airflow stack, measured from outside.

    python scripts/bench_fleet.py measure --executor local --out test-output/bench-fleet-local.json
    python scripts/bench_fleet.py report test-output/bench-fleet-*.json [--before DIR]

``make bench-fleet`` sets up the data (scripts/load_data.py with FLEET_COMPANIES x FLEET_TABLES x
FLEET_ROWS), starts the second stack of `make test-load` (AIRFLOW_LOAD_PORT, AIRFLOW_LOAD_PG_PORT) once
with the LocalExecutor and once with Celery (2 workers), runs ``measure`` against each, then ``report``.

``measure`` triggers FLEET_RUNS runs (default 1) over every company and, while they run, samples every
process of the stack every 0.2 s from /proc (each component leads its own session, see
scripts/airflow_local.sh): CPU seconds per component (scheduler, executor workers and the task
processes under them, api-server, dag-processor) and the peak RSS of every task process. Before and
after, it counts the metadata DB's rows (task_instance, rendered_task_instance_fields and the bytes of
their rendered fields, xcom, asset_event, log, ...). Per-task Airflow overhead is a task instance's
start -> end minus our own work, which the task log brackets (``::endgroup::`` after the pre-execute
parse to ``::group::Post Execute``), read for a sample of FLEET_LOG_SAMPLE (30) task instances.
Every figure is printed; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
API = f"http://127.0.0.1:{os.environ.get('AIRFLOW_REAL_PORT', '8090')}"
REAL_HOME = REPO / os.environ.get("AIRFLOW_REAL_HOME", ".local/airflow-load")
DAG_ID = "populate_report_databases"
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
SAMPLE_SECONDS = 0.2
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Metadata tables whose rows a run adds (the ones `airflow db clean` trims, and the run's own).
TABLES = (
    "dag_run",
    "task_instance",
    "task_instance_history",
    "rendered_task_instance_fields",
    "xcom",
    "asset_event",
    "dagrun_asset_event",
    "log",
    "job",
    "task_instance_note",
    "task_reschedule",
    "trigger",
)


class Api:
    """The stack's REST API with a JWT from /auth/token."""

    def __init__(self) -> None:
        self.session = requests.Session()
        resp = self.session.post(f"{API}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{API}/api/v2{path}", timeout=120, **kwargs)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code} {resp.text[:1000]}")
        return resp.json() if resp.content else None

    def paged(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", path, params={"limit": 100, "offset": len(items)})
            items.extend(page[key])
            if not page[key] or len(items) >= page["total_entries"]:
                return items

    def log_events(self, run_id: str, ti: dict[str, Any]) -> list[dict[str, Any]]:
        resp = self.session.get(
            f"{API}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
            timeout=60,
        )
        resp.raise_for_status()
        content = resp.json().get("content") or []
        return [c for c in content if isinstance(c, dict) and c.get("timestamp")]


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- processes ---------------------------------------------------------------------------------------


def _components() -> dict[int, str]:
    """Session id -> component name, from the stack's pid files (each component leads its session)."""
    found = {}
    for pid_file in REAL_HOME.glob("*.pid"):
        try:
            found[int(pid_file.read_text().strip())] = pid_file.stem
        except ValueError:
            continue
    return found


def _stat(pid: int) -> tuple[int, float, int, str] | None:
    """(session, CPU seconds, RSS bytes, command line) of one process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): session is field 6, utime/stime 14/15, rss 24.
    return int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE, cmdline


class ProcessSampler(threading.Thread):
    """Every process of the stack's sessions, sampled until stopped: CPU per pid, peak RSS per task."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sessions = _components()
        self.cpu: dict[int, tuple[str, float]] = {}
        self.first_cpu: dict[int, float] = {}
        self.task_rss: dict[int, int] = {}
        self.stop_event = threading.Event()

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            got = _stat(pid)
            if got is None or got[0] not in self.sessions:
                continue
            session, cpu, rss, cmdline = got
            self.first_cpu.setdefault(pid, cpu)
            self.cpu[pid] = (self.sessions[session], cpu)
            # The task process (a fork of the supervisor) names itself "airflow worker -- <ti id>".
            if "airflow worker --" in cmdline:
                self.task_rss[pid] = max(self.task_rss.get(pid, 0), rss)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.join(timeout=30)
        self.sample()
        per: dict[str, float] = {}
        for pid, (component, cpu) in self.cpu.items():
            per[component] = per.get(component, 0.0) + cpu - self.first_cpu.get(pid, 0.0)
        rss = sorted(self.task_rss.values())
        return {
            "cpu_seconds": dict(per),
            "task_processes": len(rss),
            "task_rss_mb_median": statistics.median(rss) / 2**20 if rss else None,
            "task_rss_mb_max": rss[-1] / 2**20 if rss else None,
        }


# --- metadata DB -------------------------------------------------------------------------------------


def _pg() -> Any:
    import psycopg2

    port = int(os.environ.get("AIRFLOW_REAL_PG_PORT", "5434"))
    return psycopg2.connect(host="127.0.0.1", port=port, user="airflow", password="airflow", dbname="airflow")


def metadata_counts() -> dict[str, int]:
    """Rows per metadata table, the rendered fields' stored bytes and the whole DB's size."""
    conn = _pg()
    conn.autocommit = True
    cur = conn.cursor()
    found: dict[str, int] = {}
    for table in TABLES:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            continue
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        found[table] = int(cur.fetchone()[0])
    cur.execute("SELECT COALESCE(SUM(pg_column_size(rendered_fields)), 0) FROM rendered_task_instance_fields")
    found["rendered_fields_bytes"] = int(cur.fetchone()[0])
    cur.execute("SELECT COALESCE(SUM(pg_column_size(value)), 0) FROM xcom")
    found["xcom_bytes"] = int(cur.fetchone()[0])
    cur.execute("SELECT COALESCE(SUM(pg_column_size(extra)), 0) FROM asset_event")
    found["asset_event_extra_bytes"] = int(cur.fetchone()[0])
    cur.execute("SELECT pg_database_size(current_database())")
    found["database_bytes"] = int(cur.fetchone()[0])
    conn.close()
    return found


# --- one run -----------------------------------------------------------------------------------------


def _overhead(api: Api, run_id: str, tis: list[dict[str, Any]], sample: int) -> dict[str, Any]:
    """Per task: start -> end, our execute (bracketed in its log), and the difference, for a sample."""
    chosen = sorted((ti for ti in tis if ti["state"] == "success"), key=lambda ti: ti["task_id"])
    step = max(1, len(chosen) // max(1, sample))
    rows = []
    for ti in chosen[::step][:sample]:
        events = api.log_events(run_id, ti)
        marks = [(str(e.get("event", "")), _when(e["timestamp"])) for e in events]
        parse_done = "Worker startup parse complete"
        parsed = next((i for i, (text, _) in enumerate(marks) if text.startswith(parse_done)), None)
        if parsed is None:
            continue
        begin = next((t for text, t in marks[parsed:] if text.startswith("::endgroup::")), None)
        end = next((t for text, t in marks[parsed:] if text.startswith("::group::Post Execute")), None)
        if begin is None or end is None:
            continue
        total = (_when(ti["end_date"]) - _when(ti["start_date"])).total_seconds()
        ours = (end - begin).total_seconds()
        rows.append({"task_id": ti["task_id"], "total": total, "ours": ours, "airflow": total - ours})
    return {
        "sampled": len(rows),
        "task_seconds_median": statistics.median(r["total"] for r in rows) if rows else None,
        "execute_seconds_median": statistics.median(r["ours"] for r in rows) if rows else None,
        "airflow_seconds_median": statistics.median(r["airflow"] for r in rows) if rows else None,
    }


def measure(executor: str, runs: int, sample: int, out: Path) -> None:
    api = Api()
    tasks = api.call("GET", f"/dags/{DAG_ID}/tasks")["tasks"]
    for old in api.paged(f"/dags/{DAG_ID}/dagRuns", "dag_runs"):
        api.call("DELETE", f"/dags/{DAG_ID}/dagRuns/{old['dag_run_id']}")
    api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    results = []
    for number in range(runs):
        before = metadata_counts()
        sampler = ProcessSampler()
        sampler.start()
        run_id = f"fleet_{uuid.uuid4().hex[:10]}"
        t0 = time.monotonic()
        logical = LOGICAL_DATE + dt.timedelta(seconds=number)
        api.call(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": logical.isoformat(), "conf": {}},
        )
        while True:
            run = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                break
            time.sleep(1)
        wall = time.monotonic() - t0
        processes = sampler.stop()
        after = metadata_counts()
        tis = api.paged(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "task_instances")
        states = Counter(ti["state"] for ti in tis)
        starts = [_when(ti["start_date"]) for ti in tis if ti.get("start_date")]
        ends = [_when(ti["end_date"]) for ti in tis if ti.get("end_date")]
        span = (max(ends) - min(starts)).total_seconds() if starts and ends else wall
        result = {
            "run_id": run_id,
            "state": run["state"],
            "wall_seconds": wall,
            "task_instances": len(tis),
            "states": dict(states),
            "tasks_per_minute": 60.0 * len(tis) / span if span else None,
            "processes": processes,
            "overhead": _overhead(api, run_id, tis, sample),
            "growth": {k: after.get(k, 0) - before.get(k, 0) for k in after},
            "load_average": os.getloadavg()[0],
        }
        results.append(result)
        print(
            f"bench-fleet {executor}: run {number + 1}/{runs} {run['state']} in {wall:.1f} s, {len(tis)} task "
            f"instances {dict(states)}",
            flush=True,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"executor": executor, "dag_tasks": len(tasks), "runs": results}, indent=1))


# --- report ------------------------------------------------------------------------------------------


def _rows(data: dict[str, Any]) -> dict[str, str]:
    """The printed figures of one executor's file: medians over its runs."""
    runs = data["runs"]

    def med(get: Any) -> float | None:
        values = [v for v in (get(r) for r in runs) if v is not None]
        return statistics.median(values) if values else None

    def fmt(value: float | None, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    tis = med(lambda r: r["task_instances"]) or 1
    cpu = lambda name: med(lambda r: sum(v for k, v in r["processes"]["cpu_seconds"].items() if k.startswith(name)))  # noqa: E731
    growth = lambda key: med(lambda r: r["growth"].get(key))  # noqa: E731
    rendered = growth("rendered_fields_bytes")
    return {
        "run state(s)": ",".join(sorted({r["state"] for r in runs})),
        "task instances per run": fmt(tis, ".0f"),
        "DAG run wall time, s": fmt(med(lambda r: r["wall_seconds"])),
        "task instances per minute": fmt(med(lambda r: r["tasks_per_minute"])),
        "task start->end, s (median of sample)": fmt(med(lambda r: r["overhead"]["task_seconds_median"]), ".2f"),
        "  of which execute (ours), s": fmt(med(lambda r: r["overhead"]["execute_seconds_median"]), ".2f"),
        "  of which Airflow's, s": fmt(med(lambda r: r["overhead"]["airflow_seconds_median"]), ".2f"),
        "scheduler CPU, s (with LocalExecutor's tasks)": fmt(cpu("scheduler")),
        "celery workers CPU, s (with their tasks)": fmt(cpu("celery-worker")),
        "dag-processor CPU, s": fmt(cpu("dag-processor")),
        "api-server CPU, s": fmt(cpu("api-server")),
        "CPU per task instance, s (all components)": fmt(
            (med(lambda r: sum(r["processes"]["cpu_seconds"].values())) or 0) / tis, ".2f"
        ),
        "task process peak RSS, MB (median)": fmt(med(lambda r: r["processes"]["task_rss_mb_median"]), ".0f"),
        "task process peak RSS, MB (max)": fmt(med(lambda r: r["processes"]["task_rss_mb_max"]), ".0f"),
        "metadata rows added: task_instance": fmt(growth("task_instance"), ".0f"),
        "  rendered_task_instance_fields": fmt(growth("rendered_task_instance_fields"), ".0f"),
        "  rendered fields bytes per task instance": fmt(None if rendered is None else rendered / tis, ".0f"),
        "  xcom": fmt(growth("xcom"), ".0f"),
        "  asset_event": fmt(growth("asset_event"), ".0f"),
        "  asset_event extra bytes per event": fmt(
            None
            if not growth("asset_event")
            else (growth("asset_event_extra_bytes") or 0) / (growth("asset_event") or 1),
            ".0f",
        ),
        "  log (audit)": fmt(growth("log"), ".0f"),
        "  task_instance_history": fmt(growth("task_instance_history"), ".0f"),
        "metadata DB growth per run, MB": fmt((growth("database_bytes") or 0) / 2**20),
        "load average at the end": fmt(med(lambda r: r["load_average"])),
    }


def report(files: list[Path], before: Path | None) -> None:
    columns: list[tuple[str, dict[str, str]]] = []
    for path in sorted(files):
        data = json.loads(path.read_text())
        if before is not None and (before / path.name).exists():
            columns.append((f"{data['executor']} before", _rows(json.loads((before / path.name).read_text()))))
            columns.append((f"{data['executor']} after", _rows(data)))
        else:
            columns.append((data["executor"], _rows(data)))
    if not columns:
        print("bench-fleet: no results")
        return
    width = max(len(k) for k in columns[0][1])
    print(f"{'':<{width}}  " + "  ".join(f"{name:>16}" for name, _ in columns))
    for key in columns[0][1]:
        print(f"{key:<{width}}  " + "  ".join(f"{rows[key]:>16}" for _, rows in columns))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--executor", required=True)
    m.add_argument("--runs", type=int, default=int(os.environ.get("FLEET_RUNS", "1")))
    m.add_argument("--sample", type=int, default=int(os.environ.get("FLEET_LOG_SAMPLE", "30")))
    m.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report")
    r.add_argument("files", type=Path, nargs="+")
    r.add_argument("--before", type=Path, help="a folder with an earlier run's files of the same names")
    args = parser.parse_args()
    if args.command == "measure":
        measure(args.executor, args.runs, args.sample, args.out)
    else:
        report(args.files, args.before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
