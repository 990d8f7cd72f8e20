"""A small table's extract + load task pair on the real local Airflow (issue 16 item 4): ours vs Airflow's.

    source scripts/env.sh && make airflow-up && .venv/bin/python scripts/airflow_task_pair.py [--repeat 3]

Uses the stack ``make airflow-up`` starts (REST API on ``AIRFLOW_REAL_PORT``, admin/admin) and the
``bench_small`` table of ``scripts/small_table.py`` (acme's 20,000 rows of the benchmark's mixed table).
It triggers one DAG run limited to acme/bench_small (params ``companies`` and ``tables``; the other
tasks skip), then ``--repeat`` times empties ``acme.bench_small`` and clears just that run's extract and
load task instances, so the pair runs again on an otherwise idle scheduler. Each task's time is split
at the task runner's own markers in the task log (REST API: ``queued_when``, ``start_date``,
``end_date``; log: ``::group::Pre Execute``, the worker's DAG parse, ``::endgroup::``, ``::group::Post
Execute``): executor pick-up, task process start, DAG parse on the worker, the rest of pre-execute,
execute (ours: our operator's work, with its connection and S3 client set-up), post-execute (XCom push)
and the state report; plus the scheduler's gap between the extract's end and the load's queueing and
the pair end to end. Each copy is checked exactly against the source.

``--compare-idle-sleep [A,B]`` (default 1,0.1) measures the pair under each value of the scheduler's
``scheduler_idle_sleep_time`` in one run: blocks of ``--block`` pairs, the values taking turns, the
scheduler restarted with the next value before each block (``scripts/airflow_local.sh
restart-scheduler``) and one unmeasured pair run first; then, still idle, the scheduler's CPU (its
process and its LocalExecutor workers, from /proc) over ``--idle-seconds``. Printed side by side;
every figure also in test-output/airflow-task-pair.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from report_pipeline.taskids import task_id

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serverkit
import small_table

REPO = Path(__file__).resolve().parent.parent
API = f"http://127.0.0.1:{os.environ.get('AIRFLOW_REAL_PORT', '8080')}"
DAG_ID = "populate_report_databases"
EXTRACT = task_id(small_table.COMPANY, small_table.TABLE, "mysql_to_s3")
LOAD = task_id(small_table.COMPANY, small_table.TABLE, "s3_to_mysql")
REAL_HOME = REPO / os.environ.get("AIRFLOW_REAL_HOME", ".local/airflow-real")
SNAPSHOT = REAL_HOME / "report_pipeline" / "admin_snapshot.json"


class Api:
    """The REST API with a JWT from /auth/token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        resp = self.session.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=10)
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code} {resp.text[:1000]}")
        return resp.json() if resp.content else None

    def ti(self, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def log_events(self, run_id: str, ti: dict[str, Any]) -> list[dict[str, Any]]:
        resp = self.session.get(
            f"{self.base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        resp.raise_for_status()
        content = resp.json().get("content") or []
        return [c for c in content if isinstance(c, dict) and c.get("timestamp")]


def when(value: str | None) -> dt.datetime:
    if not value:
        raise RuntimeError("a task instance has no start or end date yet")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait(what: str, probe: Any, timeout: float = 300, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def _at(events: list[dict[str, Any]], text: str, after: dt.datetime | None = None) -> dt.datetime:
    """The time of the first log event (at or after ``after``) whose text starts with ``text``."""
    for event in events:
        moment = when(event["timestamp"])
        if str(event.get("event", "")).startswith(text) and (after is None or moment >= after):
            return moment
    raise RuntimeError(f"no log line {text!r} in the task log")


def task_figures(name: str, ti: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, float]:
    """One task's time split at the task runner's own log markers (Airflow 3.3's task log groups)."""
    queued, start, end = when(ti.get("queued_when")), when(ti["start_date"]), when(ti["end_date"])
    pre = _at(events, "::group::Pre Execute")
    parse_from = _at(events, "Filling up the DagBag", pre)
    parse_to = _at(events, "Worker startup parse complete", parse_from)
    execute_from = _at(events, "::endgroup::", parse_to)
    post = _at(events, "::group::Post Execute", execute_from)
    post_end = _at(events, "::endgroup::", post)

    def seconds(a: dt.datetime, b: dt.datetime) -> float:
        return (b - a).total_seconds()

    return {
        f"{name}: queued -> start (executor)": seconds(queued, start),
        f"{name}: start -> first log line (task process)": seconds(start, pre),
        f"{name}: DAG parse on the worker": seconds(parse_from, parse_to),
        f"{name}: rest of pre-execute": seconds(pre, execute_from) - seconds(parse_from, parse_to),
        f"{name}: execute = ours": seconds(execute_from, post),
        f"{name}: post-execute (XCom push)": seconds(post, post_end),
        f"{name}: to end_date (state report, exit)": seconds(post_end, end),
        f"{name}: start -> end": seconds(start, end),
    }


def measure(api: Api, run_id: str) -> dict[str, float]:
    extract, load = api.ti(run_id, EXTRACT), api.ti(run_id, LOAD)
    figures: dict[str, float] = {}
    for name, ti in (("extract", extract), ("load", load)):
        figures.update(task_figures(name, ti, api.log_events(run_id, ti)))
    figures["scheduler: extract end -> load queued"] = (
        when(load.get("queued_when")) - when(extract["end_date"])
    ).total_seconds()
    figures["pair end to end (extract queued -> load end)"] = (
        when(load["end_date"]) - when(extract.get("queued_when"))
    ).total_seconds()
    ours = figures["extract: execute = ours"] + figures["load: execute = ours"]
    figures["of which ours (both executes)"] = ours
    figures["of which Airflow's"] = figures["pair end to end (extract queued -> load end)"] - ours
    return figures


def cpu_ticks(pid: int) -> dict[int, int]:
    """User + system CPU ticks of ``pid`` and of every process below it (from /proc), by pid."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree = {pid}
    grew = True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    ticks: dict[int, int] = {}
    for member in tree:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks[member] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def scheduler_pid() -> int:
    return int((REAL_HOME / "scheduler.pid").read_text().strip())


def idle_cpu(seconds: float) -> float:
    """Cores the idle scheduler (and its LocalExecutor workers) used over ``seconds``: the processes
    that ran through the whole sample (one that ended or began inside it would count wrong)."""
    pid = scheduler_pid()
    before, started = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    after, elapsed = cpu_ticks(pid), time.monotonic() - started
    used = sum(after[p] - before[p] for p in before.keys() & after.keys())
    return used / os.sysconf("SC_CLK_TCK") / elapsed


def restart_scheduler(api: Api, idle_sleep: str) -> None:
    """The scheduler restarted with ``scheduler_idle_sleep_time`` = ``idle_sleep``; back once it beats."""
    since = dt.datetime.now(dt.UTC)
    env = {**os.environ, "AIRFLOW_REAL_SCHEDULER_IDLE_SLEEP": idle_sleep}
    subprocess.run(["bash", str(REPO / "scripts" / "airflow_local.sh"), "restart-scheduler"], env=env, check=True)

    def beating() -> bool:
        health = api.session.get(f"{api.base}/api/v2/monitor/health", timeout=10).json().get("scheduler") or {}
        beat = health.get("latest_scheduler_heartbeat")
        return health.get("status") == "healthy" and bool(beat) and when(beat) > since

    wait("the restarted scheduler's heartbeat", beating, timeout=120, interval=1)


def print_row(label: str, columns: list[list[float]], digits: int) -> None:
    """One printed row: per column the median (min-max) of its figures."""
    cells = [f"{statistics.median(c):6.{digits}f} ({min(c):5.{digits}f}-{max(c):5.{digits}f})" for c in columns]
    print(f"  {label:<52} " + "".join(f"{c:>22}" for c in cells))


def run_pair(api: Api, run_id: str, source_fp: Any) -> dict[str, float]:
    """Empty the target, clear the run's extract and load, wait for both; the pair's figures."""
    serverkit.run_sql([f"TRUNCATE TABLE {small_table.COMPANY}.{small_table.TABLE}"])
    tries = {t: api.ti(run_id, t)["try_number"] for t in (EXTRACT, LOAD)}
    api.call(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={
            "dry_run": False,
            "only_failed": False,
            "dag_run_id": run_id,
            "task_ids": [EXTRACT, LOAD],
            "reset_dag_runs": True,
        },
    )

    def done() -> bool:
        tis = [api.ti(run_id, t) for t in (EXTRACT, LOAD)]
        if any(ti["state"] in ("failed", "upstream_failed") for ti in tis):
            raise RuntimeError(f"the pair failed: {[(ti['task_id'], ti['state']) for ti in tis]}")
        return all(ti["state"] == "success" and ti["try_number"] > tries[ti["task_id"]] for ti in tis)

    wait("the cleared pair to succeed", done)
    time.sleep(1.0)  # the log files' last lines
    if small_table.fingerprint_of(f"{small_table.COMPANY}.{small_table.TABLE}") != source_fp:
        raise RuntimeError("acme.bench_small differs from the source after the pair")
    return measure(api, run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="measured pairs (per idle sleep value) (3)")
    parser.add_argument("--date", default="2026-11-20", help="logical date of the run (2026-11-20)")
    parser.add_argument(
        "--compare-idle-sleep",
        nargs="?",
        const="1,0.1",
        metavar="A,B",
        help="measure under each scheduler_idle_sleep_time value, interleaved (1,0.1)",
    )
    parser.add_argument("--block", type=int, default=2, help="pairs per value before the next one takes its turn (2)")
    parser.add_argument("--idle-seconds", type=float, default=15, help="idle CPU sample per block (15)")
    args = parser.parse_args()
    values = [v.strip() for v in args.compare_idle_sleep.split(",")] if args.compare_idle_sleep else [""]

    small_table.setup(20_000)
    # The stack's DAG file builds from its own admin snapshot: expire it so the new table row shows up.
    SNAPSHOT.unlink(missing_ok=True)
    api = Api(API)
    api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    def has_tasks() -> bool:
        tasks = {t["task_id"] for t in api.call("GET", f"/dags/{DAG_ID}/tasks")["tasks"]}
        return {EXTRACT, LOAD} <= tasks

    wait("the DAG to list acme.bench_small's tasks (next parse)", has_tasks, timeout=240, interval=3)
    logical = dt.datetime.fromisoformat(args.date).replace(tzinfo=dt.UTC)
    # One run per logical date: drop this script's earlier runs first.
    for old in api.call("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]:
        if old["dag_run_id"].startswith("task_pair__"):
            api.call("DELETE", f"/dags/{DAG_ID}/dagRuns/{old['dag_run_id']}")
    run_id = f"task_pair__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    serverkit.run_sql([f"TRUNCATE TABLE {small_table.COMPANY}.{small_table.TABLE}"])
    api.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "dag_run_id": run_id,
            "logical_date": logical.isoformat(),
            "conf": {"companies": [small_table.COMPANY], "tables": [small_table.TABLE]},
        },
    )

    def finished() -> dict[str, Any] | None:
        run = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    run = wait(f"dag run {run_id}", finished)
    if run["state"] != "success":
        raise RuntimeError(f"dag run {run_id} ended {run['state']}")
    source_fp = small_table.fingerprint_of(
        f"{small_table.SOURCE_DB}.{small_table.TABLE}", f" WHERE company_id = {small_table.COMPANY_ID}"
    )
    results: dict[str, list[dict[str, float]]] = {v: [] for v in values}
    idle: dict[str, list[float]] = {v: [] for v in values}
    loads: list[float] = []
    blocks = math.ceil(args.repeat / args.block) if args.compare_idle_sleep else 1
    per_block = args.block if args.compare_idle_sleep else args.repeat
    try:
        for _ in range(blocks):
            for value in values:
                if value:
                    restart_scheduler(api, value)
                    run_pair(api, run_id, source_fp)  # unmeasured: the restarted scheduler's first
                    idle[value].append(idle_cpu(args.idle_seconds))
                for _ in range(min(per_block, args.repeat - len(results[value]))):
                    loads.append(os.getloadavg()[0])
                    figures = run_pair(api, run_id, source_fp)
                    results[value].append(figures)
                    total = figures["pair end to end (extract queued -> load end)"]
                    label = f" (idle sleep {value} s)" if value else ""
                    print(f"pair {len(results[value])}/{args.repeat}{label}: end to end {total:.2f} s", flush=True)
    finally:
        if args.compare_idle_sleep:
            restart_scheduler(api, os.environ.get("AIRFLOW_REAL_SCHEDULER_IDLE_SLEEP", "0.1"))

    print(
        f"\n20,000-row table, extract + load task pair on the real stack (LocalExecutor), {args.repeat} re-runs"
        f"{' per scheduler_idle_sleep_time, interleaved' if args.compare_idle_sleep else ''}, load average "
        f"{statistics.median(loads):.1f} (median); medians (min-max), seconds; every copy exact:"
    )
    if args.compare_idle_sleep:
        print(f"  {'scheduler_idle_sleep_time':<52} " + "".join(f"{v + ' s':>22}" for v in values))
    out = REPO / "test-output" / "airflow-task-pair.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"pairs": results, "idle_cpu_cores": idle, "load_average": loads}, indent=1))
    for key in results[values[0]][0]:
        print_row(key, [[r[key] for r in results[value]] for value in values], 2)
    if args.compare_idle_sleep:
        label = f"idle scheduler CPU, cores (per {args.idle_seconds:g} s sample)"
        print_row(label, [idle[value] for value in values], 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
