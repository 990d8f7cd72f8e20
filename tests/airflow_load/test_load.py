"""Issue 7, "Load": LOAD_COMPANIES (50) companies x 5 tables x LOAD_ROWS (10 000) rows through a real Airflow
3.3 scheduler (LocalExecutor, parallelism 8), the second deployment ``make test-load`` starts on
AIRFLOW_REAL_PORT (8090) over the load schemas of scripts/load_data.py.

One DAG run is triggered through the REST API; while it runs, a thread samples the MariaDB process list
every 100 ms for connections to the source schema. Then: the run and every task instance succeeded,
every target table holds exactly its company's slice of the source (COUNT and an order-independent
checksum of every column), every load wrote its ``report_loads`` row, and the source connections never
exceeded the ``reports_source`` pool's slots (but reached 2, so the extracts really ran side by side).
The figures (wall time, peak connections, samples) go to test-output/load-report.txt.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("load_data", REPO / "scripts" / "load_data.py")
assert _spec is not None and _spec.loader is not None
load_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_data)

API = f"http://127.0.0.1:{os.environ.get('AIRFLOW_REAL_PORT', '8090')}"
REAL_HOME = REPO / os.environ.get("AIRFLOW_REAL_HOME", ".local/airflow-load")
USER = os.environ.get("AIRFLOW_REAL_ADMIN_USER", "admin")
PASSWORD = os.environ.get("AIRFLOW_REAL_ADMIN_PASSWORD", "admin")
DAG_ID = "populate_report_databases"
LOGICAL_DATE = "2026-11-26T00:00:00Z"
RUN_TIMEOUT = float(os.environ.get("LOAD_RUN_TIMEOUT", "3600"))
# pyproject's 900 s per-test timeout would cut a long run short: the run has its own RUN_TIMEOUT.
pytestmark = [pytest.mark.airflow_real, pytest.mark.timeout(RUN_TIMEOUT + 900)]
SAMPLE_SECONDS = 0.1
REPORT = REPO / "test-output" / "load-report.txt"
COMPANIES = load_data.aliases()
ROWS = load_data.rows_per_table()
TABLES = load_data.TABLE_NAMES
# The run's windows (logical date 2026-11-26, 60 days look-back), written out independently of the
# pipeline's parameter binding: the expected slice of each source table per company.
WINDOWS = {
    "ld_orders": "AND created_at >= '2026-09-27'",
    "ld_events": "AND happened_at >= '2026-09-27' AND happened_at < '2026-11-26'",
}
# What counts as a source connection: the pipeline's user on the load source schema (the sampler's own
# connection has no default schema, and the admin/target connections use other schemas).
SOURCE_CONNECTIONS_SQL = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'reports' AND DB = %s"


def log_tails(lines: int = 30) -> str:
    parts = []
    for path in sorted(REAL_HOME.glob("*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"----- {path} (last {lines} lines)\n" + "\n".join(text))
    return "\n".join(parts) or f"(no logs in {REAL_HOME})"


class Api:
    def __init__(self) -> None:
        self.session = requests.Session()
        try:
            resp = self.session.post(f"{API}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10)
        except requests.ConnectionError as exc:
            pytest.fail(f"the load deployment is not reachable at {API} (make test-load starts it): {exc}")
        assert resp.status_code == 201, f"login failed: HTTP {resp.status_code} {resp.text}"
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{API}/api/v2{path}", timeout=60, **kwargs)
        assert resp.status_code in expect, f"{method} /api/v2{path}: HTTP {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    def paged(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", path, params={"limit": 100, "offset": len(items)})
            items.extend(page[key])
            if not page[key] or len(items) >= page["total_entries"]:
                return items


class Sampler(threading.Thread):
    """Counts source connections in the server's process list every 100 ms until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[int] = []
        self.error: BaseException | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            conn = load_data.mysql()
            cur = conn.cursor()
            while not self.stop_event.is_set():
                cur.execute(SOURCE_CONNECTIONS_SQL, (load_data.SOURCE_SCHEMA,))
                self.samples.append(int(cur.fetchone()[0]))
                self.stop_event.wait(SAMPLE_SECONDS)
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


@pytest.fixture(scope="module")
def load_run() -> dict[str, Any]:
    """Trigger one run over every load company and wait for it, sampling source connections."""
    api = Api()
    pool = api.call("GET", "/pools/reports_source")
    dag = api.call("GET", f"/dags/{DAG_ID}")
    tasks = api.call("GET", f"/dags/{DAG_ID}/tasks")["tasks"]
    expected_tasks = {
        f"company_{alias}.{table}__{step}"
        for alias in COMPANIES
        for table in TABLES
        for step in ("mysql_to_s3", "s3_to_mysql")
    }
    missing = expected_tasks - {t["task_id"] for t in tasks}
    assert not missing, f"the DAG lacks {len(missing)} tasks, e.g. {sorted(missing)[:5]} (load data not set up?)"
    assert dag["timetable_summary"] in (None, "None", "") or "None" in str(dag["timetable_summary"]), (
        f"the load DAG must run only when triggered (REPORTS_SCHEDULE=none), has {dag['timetable_summary']!r}"
    )
    for run in api.paged(f"/dags/{DAG_ID}/dagRuns", "dag_runs"):
        api.call("DELETE", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", expect=(204, 404))
    api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    sampler = Sampler()
    sampler.start()
    # The sampler must see a source connection when there is one (else "never above the pool" means nothing).
    probe = load_data.mysql(load_data.SOURCE_SCHEMA)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(sampler.samples):
        time.sleep(SAMPLE_SECONDS)
    probe.close()
    assert any(sampler.samples), f"the sampler never saw its probe connection: {sampler.samples[-20:]} {sampler.error}"
    time.sleep(1)
    sampler.samples.clear()

    run_id = f"load_{uuid.uuid4().hex[:10]}"
    t0 = time.monotonic()
    api.call(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": LOGICAL_DATE, "conf": {}},
    )
    run: dict[str, Any] = {}
    try:
        while time.monotonic() - t0 < RUN_TIMEOUT:
            run = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                break
            time.sleep(2)
    finally:
        wall = time.monotonic() - t0
        sampler.stop()
    tis = api.paged(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "task_instances")
    result = {
        "api": api,
        "run_id": run_id,
        "run": run,
        "wall": wall,
        "tis": tis,
        "expected_tasks": expected_tasks,
        "samples": list(sampler.samples),
        "sampler_error": sampler.error,
        "pool_slots": int(pool["slots"]),
    }
    write_report(result)
    return result


def _duration(run: dict[str, Any]) -> float | None:
    if not run.get("start_date") or not run.get("end_date"):
        return None
    start = dt.datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def write_report(result: dict[str, Any]) -> None:
    samples = result["samples"]
    states = Counter(ti["state"] for ti in result["tis"])
    tries = Counter(ti.get("try_number") for ti in result["tis"])
    durations = sorted(ti["duration"] for ti in result["tis"] if ti.get("duration") is not None)
    lines = [
        f"load test {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}: {len(COMPANIES)} companies x {len(TABLES)} tables x "
        f"{ROWS} rows = {len(COMPANIES) * len(TABLES) * ROWS} rows, {len(result['expected_tasks'])} tasks",
        f"run {result['run_id']}: state {result['run'].get('state')}, wall time {result['wall']:.1f} s "
        f"(trigger to observed end), run start->end {_duration(result['run'])} s",
        f"task instances: {dict(states)}, try numbers {dict(tries)}",
        f"task duration s: median {durations[len(durations) // 2]:.2f}, max {durations[-1]:.2f}"
        if durations
        else "task durations: none",
        f"machine: {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}",
        f"source connections (process list, every {SAMPLE_SECONDS} s, {len(samples)} samples): "
        f"max {max(samples, default=0)}, reports_source pool slots {result['pool_slots']}, "
        f"histogram {dict(sorted(Counter(samples).items()))}",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def test_run_and_every_task_succeed(load_run: dict[str, Any]) -> None:
    run, tis = load_run["run"], load_run["tis"]
    bad = sorted(f"{ti['task_id']}: {ti['state']}" for ti in tis if ti["state"] != "success")
    assert run.get("state") == "success", (
        f"run {load_run['run_id']} ended {run.get('state')!r} after {load_run['wall']:.0f} s; "
        f"{len(bad)} tasks not successful, e.g. {bad[:20]}\n{log_tails()}"
    )
    assert {ti["task_id"] for ti in tis} == load_run["expected_tasks"]
    assert not bad, f"{len(bad)} task instances not successful: {bad[:20]}"


def _checksum(cursor: Any, schema: str, table: str, columns: list[str], where: str) -> tuple[int, int]:
    parts = ", ".join(f"IFNULL(CAST(`{c}` AS CHAR), '<NULL>')" for c in columns)
    cursor.execute(
        f"SELECT COUNT(*), IFNULL(BIT_XOR(CRC32(CONCAT_WS('|', {parts}))), 0) FROM `{schema}`.`{table}` {where}"
    )
    count, crc = cursor.fetchone()
    return int(count), int(crc)


def test_every_target_equals_its_source_slice(load_run: dict[str, Any]) -> None:
    conn = load_data.mysql()
    cur = conn.cursor()
    wrong = []
    for company_id, alias in enumerate(COMPANIES, start=1):
        schema = load_data.SCHEMA_TEMPLATE.format(alias=alias)
        for table in TABLES:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            columns = [r[0] for r in cur.fetchall()]
            assert columns, f"{schema}.{table} does not exist"
            source = _checksum(
                cur, load_data.SOURCE_SCHEMA, table, columns, f"WHERE company = {company_id} {WINDOWS.get(table, '')}"
            )
            assert source[0] == ROWS, f"source slice {table}/company {company_id} has {source[0]} rows, not {ROWS}"
            target = _checksum(cur, schema, table, columns, "")
            if target != source:
                wrong.append(f"{schema}.{table}: target (rows, crc) {target} != source {source}")
    conn.close()
    assert not wrong, f"{len(wrong)} of {len(COMPANIES) * len(TABLES)} targets differ:\n" + "\n".join(wrong[:30])


def test_every_load_is_recorded_in_report_loads(load_run: dict[str, Any]) -> None:
    conn = load_data.mysql()
    cur = conn.cursor()
    missing = []
    for alias in COMPANIES:
        schema = load_data.SCHEMA_TEMPLATE.format(alias=alias)
        cur.execute(
            f"SELECT table_name, rows_loaded FROM `{schema}`.report_loads WHERE run_id = %s "
            "AND logical_date = '2026-11-26 00:00:00'",
            (load_run["run_id"],),
        )
        got = {r[0]: int(r[1]) for r in cur.fetchall()}
        if got != dict.fromkeys(TABLES, ROWS):
            missing.append(f"{schema}: {got}")
    conn.close()
    assert not missing, "report_loads rows missing or wrong:\n" + "\n".join(missing[:20])


def test_source_connections_stay_within_the_pool(load_run: dict[str, Any]) -> None:
    samples, slots = load_run["samples"], load_run["pool_slots"]
    expected_slots = int(os.environ.get("LOAD_SOURCE_SLOTS", "4"))
    assert slots == expected_slots, f"the reports_source pool has {slots} slots, the load test set up {expected_slots}"
    assert load_run["sampler_error"] is None, f"the process-list sampler failed: {load_run['sampler_error']!r}"
    assert len(samples) >= 50, f"only {len(samples)} samples of the process list"
    peak = max(samples)
    histogram = json.dumps(dict(sorted(Counter(samples).items())))
    assert peak <= slots, (
        f"{peak} concurrent source connections, more than the reports_source pool's {slots} slots ({histogram})"
    )
    assert peak >= 2, (
        f"never more than {peak} source connection at once: the extracts did not run in parallel ({histogram})"
    )


def test_no_load_task_stores_the_query_in_its_rendered_fields(load_run: dict[str, Any]) -> None:
    """Issue 21 item 5: the Rendered Template view of each extract shows its query; the loads' (which
    Airflow stores for every task try) hold the extract's small result and connection ids only."""
    api, queries = load_run["api"], [row[2][0] for row in load_data.admin_tables()]
    loads = sorted(ti["task_id"] for ti in load_run["tis"] if ti["task_id"].endswith("__s3_to_mysql"))
    for task_id in loads[:: max(1, len(loads) // 10)]:
        ti = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{load_run['run_id']}/taskInstances/{task_id}")
        stored = json.dumps(ti["rendered_fields"])
        assert "sql" not in ti["rendered_fields"] and not any(q in stored for q in queries), (task_id, stored)
        assert len(stored) < 1000, (task_id, len(stored), stored)
    extract = loads[0].replace("__s3_to_mysql", "__mysql_to_s3")
    ti = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{load_run['run_id']}/taskInstances/{extract}")
    assert ti["rendered_fields"]["sql"] in queries
