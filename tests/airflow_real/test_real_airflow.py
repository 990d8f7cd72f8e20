"""The DAG in a real Airflow 3.3: api-server, scheduler (LocalExecutor), dag-processor and triggerer on
PostgreSQL, as ``make airflow-up`` (scripts/airflow_local.sh) starts them. Everything goes through the
public REST API, the ``airflow`` CLI and a headless browser, the way users reach the deployment; the
data is checked in the real MariaDB.

Run with ``make test-airflow``. When the stack is not reachable every test fails (never skips).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from tests.conftest import mysql_connect

from report_pipeline_demo import DEMO_COMPANIES

pytestmark = pytest.mark.airflow_real

REPO = Path(__file__).resolve().parents[2]
REAL_HOME = REPO / ".local" / "airflow-real"
OUTPUT = REPO / "test-output"
API = f"http://127.0.0.1:{os.environ.get('AIRFLOW_REAL_PORT', '8080')}"
USER = os.environ.get("AIRFLOW_REAL_ADMIN_USER", "admin")
PASSWORD = os.environ.get("AIRFLOW_REAL_ADMIN_PASSWORD", "admin")
DAG_ID = "populate_report_databases"
COMPANIES = ("acme", "globex", "umbrella")
TABLES = ("users", "orders", "events")
SWAP_TABLE = "events"  # the demo table with load_mode swap
MANUAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
BACKFILL_DATES = [dt.datetime(2026, 11, d, tzinfo=dt.UTC) for d in (20, 21, 22)]
RUN_TIMEOUT = float(os.environ.get("AIRFLOW_REAL_RUN_TIMEOUT", "300"))


# --- helpers -----------------------------------------------------------------------------------------
def log_tails(lines: int = 40) -> str:
    """The ends of the components' logs, for failure messages."""
    parts = []
    for path in sorted(REAL_HOME.glob("*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"----- {path.relative_to(REPO)} (last {lines} lines)\n" + "\n".join(text))
    return "\n".join(parts) or f"(no logs in {REAL_HOME})"


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with the logs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last state: {last!r}\n{log_tails()}")


class Api:
    """The public REST API with a JWT from the simple auth manager's login endpoint."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        resp = self.session.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10)
        assert resp.status_code == 201, f"login as {USER} failed: HTTP {resp.status_code} {resp.text}"
        self.token = resp.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=30, **kwargs)
        assert resp.status_code in expect, f"{method} /api/v2{path}: HTTP {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return self.get(f"/dags/{DAG_ID}/dagRuns", limit=100, **params)["dag_runs"]

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]

    def delete_runs(self, runs: list[dict[str, Any]]) -> None:
        for run in runs:
            self.request("DELETE", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", expect=(204, 404))

    def task_log(self, run_id: str, ti: dict[str, Any]) -> str:
        resp = self.session.get(
            f"{self.base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
            f"{max(ti.get('try_number') or 1, 1)}",
            params={"full_content": "true", "map_index": ti.get("map_index", -1)},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        if resp.status_code != 200:
            return f"(log: HTTP {resp.status_code})"
        content = resp.json().get("content")
        if isinstance(content, list):
            return "\n".join(str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content)[-4000:]
        return str(content)[-4000:]

    def explain_run(self, run_id: str) -> str:
        """Task states of a run, with the logs of its failed tasks."""
        lines = [f"task instances of {run_id}:"]
        for ti in sorted(self.task_instances(run_id), key=lambda t: t["task_id"]):
            lines.append(f"  {ti['task_id']}: {ti['state']}")
        for ti in self.task_instances(run_id):
            if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
                lines.append(f"----- log of {ti['task_id']}\n{self.task_log(run_id, ti)}")
        return "\n".join(lines)

    def wait_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = wait_for(f"dag run {run_id} to finish", finished, timeout)
        assert run["state"] == "success", (
            f"dag run {run_id} ended {run['state']}\n{self.explain_run(run_id)}\n{log_tails()}"
        )
        return run


def group_of(task_id: str) -> str:
    return task_id.split(".", 1)[0]


def source_db() -> str:
    """The source schema, from the reports_source_db connection scripts/env.sh exports."""
    uri = os.environ.get("AIRFLOW_CONN_REPORTS_SOURCE_DB", "")
    if uri.startswith("{"):
        return str(json.loads(uri).get("schema") or "source")
    return urlparse(uri).path.lstrip("/") or "source"


def lookback_days(alias: str) -> int:
    for _, _, _, name, days in DEMO_COMPANIES:
        if name == alias:
            return days if days is not None else int(os.environ.get("REPORTS_DEFAULT_LOOKBACK_DAYS") or 1)
    raise KeyError(alias)


def company_id(alias: str) -> int:
    return next(cid for _, cid, _, name, _ in DEMO_COMPANIES if name == alias)


def expected_rows(cursor: Any, alias: str, logical: dt.datetime) -> dict[str, int]:
    """Rows each table's window holds in the source, counted independently of the pipeline's code:
    users has no window; orders: created_at >= logical date - look-back (the legacy query has no upper
    bound); events: happened_at in [logical date - look-back, logical date)."""
    date_to = logical.date()
    date_from = date_to - dt.timedelta(days=lookback_days(alias))
    cid, src = company_id(alias), source_db()
    counts = {}
    cursor.execute(f"SELECT COUNT(*) FROM `{src}`.users WHERE company = %s", (cid,))
    counts["users"] = cursor.fetchone()[0]
    cursor.execute(f"SELECT COUNT(*) FROM `{src}`.orders WHERE company = %s AND created_at >= %s", (cid, date_from))
    counts["orders"] = cursor.fetchone()[0]
    cursor.execute(
        f"SELECT COUNT(*) FROM `{src}`.events WHERE company = %s AND happened_at >= %s AND happened_at < %s",
        (cid, date_from, date_to),
    )
    counts["events"] = cursor.fetchone()[0]
    return counts


def report_loads(cursor: Any, alias: str, run: dict[str, Any]) -> dict[str, tuple[dt.datetime, int]]:
    """The ``report_loads`` rows a run wrote (a backfill's run ids repeat across sessions: rows written
    before the run started are an earlier session's)."""
    started = parse_time(run["start_date"])
    assert started is not None, run
    cursor.execute(
        f"SELECT table_name, logical_date, rows_loaded FROM `{alias}`.report_loads "
        "WHERE run_id = %s AND finished_at >= %s",
        (run["dag_run_id"], started.astimezone(dt.UTC).replace(tzinfo=None)),
    )
    rows = cursor.fetchall()
    loads = {str(name): (logical, int(count)) for name, logical, count in rows}
    assert len(loads) == len(rows), f"{alias}: one run loaded a table twice: {rows}"
    return loads


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def api() -> Api:
    """The running stack's REST API; fails (never skips) when the stack is not up and healthy."""

    def healthy() -> dict[str, Any] | None:
        try:
            health = requests.get(f"{API}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        states = {name: (item or {}).get("status") for name, item in health.items()}
        return health if states and all(s == "healthy" for s in states.values()) else None

    wait_for(f"a healthy Airflow at {API} (start it with make airflow-up)", healthy, timeout=60)
    return Api(API)


@pytest.fixture(scope="session")
def active_dag(api: Api) -> dict[str, Any]:
    """The DAG, unpaused as a user would before running it."""
    dag = api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    assert dag["is_paused"] is False
    return dag


@pytest.fixture(scope="session")
def mysql() -> Iterator[Any]:
    conn = mysql_connect(init_command="SET time_zone = '+00:00'")
    conn.autocommit(True)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def globex_run(api: Api, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A manual run for 2026-11-26 limited to globex, triggered through the REST API.

    On a fresh stack it is triggered before the DAG is unpaused, so it goes ahead of the scheduled run
    that unpausing a @daily DAG creates (max_active_runs=1 makes that one wait)."""
    # Earlier sessions' runs for that date would block the trigger (logical dates are unique).
    api.delete_runs(api.runs(logical_date_gte=iso(MANUAL_DATE), logical_date_lte=iso(MANUAL_DATE)))
    run_id = f"manual_globex__{uuid.uuid4().hex[:8]}"
    created = api.request(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": iso(MANUAL_DATE), "conf": {"companies": ["globex"]}},
        expect=(200,),
    )
    assert created["dag_run_id"] == run_id
    request.getfixturevalue("active_dag")
    return api.wait_run(run_id)


@pytest.fixture(scope="session")
def backfill_runs(api: Api, active_dag: dict[str, Any]) -> list[dict[str, Any]]:
    """Three runs from ``airflow backfill create`` for 2026-11-20..22, all finished successfully."""
    for backfill in api.get("/backfills", dag_id=DAG_ID, limit=100)["backfills"]:
        if backfill.get("completed_at") is None:
            api.request("PUT", f"/backfills/{backfill['id']}/cancel", expect=(200, 409))
    first, last = BACKFILL_DATES[0], BACKFILL_DATES[-1]
    api.delete_runs(api.runs(logical_date_gte=iso(first), logical_date_lte=iso(last + dt.timedelta(hours=23))))
    started = dt.datetime.now(dt.UTC)
    cli = subprocess.run(
        [
            "bash",
            "scripts/airflow_local.sh",
            "airflow",
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            first.date().isoformat(),
            "--to-date",
            last.date().isoformat(),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 0, f"airflow backfill create failed ({cli.returncode}):\n{cli.stdout}\n{cli.stderr}"

    def created() -> list[dict[str, Any]] | None:
        runs = api.runs(run_type="backfill", logical_date_gte=iso(first), logical_date_lte=iso(last))
        return runs if len(runs) == len(BACKFILL_DATES) else None

    runs = wait_for("the backfill's three runs", created, timeout=60)
    assert sorted(parse_time(r["logical_date"]) for r in runs) == BACKFILL_DATES
    for run in runs:
        assert parse_time(run["run_after"]) is not None
        assert parse_time(run.get("queued_at") or run["run_after"]) >= started - dt.timedelta(seconds=5), run
    return [api.wait_run(r["dag_run_id"]) for r in sorted(runs, key=lambda r: r["logical_date"])]


# --- tests ---------------------------------------------------------------------------------------------
def test_dag_listed_without_import_errors(api: Api) -> None:
    dag = api.get(f"/dags/{DAG_ID}")
    assert dag["dag_id"] == DAG_ID
    errors = api.get("/importErrors", limit=100)["import_errors"]
    mine = [e for e in errors if Path(e["filename"]).name == f"{DAG_ID}.py"]
    assert not mine, f"import error in the DAG file:\n{mine[0]['stack_trace']}"
    task_ids = {t["task_id"] for t in api.get(f"/dags/{DAG_ID}/tasks")["tasks"]}
    for alias in COMPANIES:
        for table in TABLES:
            assert f"company_{alias}.{table}__mysql_to_s3" in task_ids, sorted(task_ids)
            assert f"company_{alias}.{table}__s3_to_mysql" in task_ids, sorted(task_ids)
    assert not any(t.startswith("company_initech.") for t in task_ids), "the inactive company has tasks"


def newer_swap_exists(cursor: Any, alias: str, table: str, logical: dt.datetime) -> bool:
    """Whether a full refresh (swap) of a newer logical date was already loaded into this table.

    Then a run of an older date is refused for that table (its load task is skipped): a backfill or a
    late manual run must never swap older data over newer. A scheduled run of the unpaused DAG can
    have loaded a newer date before these tests run.
    """
    cursor.execute(
        f"SELECT COUNT(*) FROM `{alias}`.report_loads WHERE table_name = %s AND load_mode = 'swap' "
        "AND logical_date > %s",
        (table, logical.astimezone(dt.UTC).replace(tzinfo=None)),
    )
    return int(cursor.fetchone()[0]) > 0


def test_manual_run_limited_to_one_company(api: Api, globex_run: dict[str, Any], mysql: Any) -> None:
    run_id = globex_run["dag_run_id"]
    assert parse_time(globex_run["logical_date"]) == MANUAL_DATE
    tis = api.task_instances(run_id)
    by_group: dict[str, set[str]] = {}
    refused: set[str] = set()
    for ti in tis:
        if ti["task_id"] == f"company_globex.{SWAP_TABLE}__s3_to_mysql" and ti["state"] == "skipped":
            assert newer_swap_exists(mysql.cursor(), "globex", SWAP_TABLE, MANUAL_DATE), api.explain_run(run_id)
            refused.add(SWAP_TABLE)
            continue
        by_group.setdefault(group_of(ti["task_id"]), set()).add(ti["state"])
    assert by_group.get("company_globex") == {"success"}, api.explain_run(run_id)
    for alias in ("acme", "umbrella"):
        assert by_group.get(f"company_{alias}") == {"skipped"}, api.explain_run(run_id)

    # globex has a 7-day look-back: its orders since 2026-11-19 are in the target, value for value.
    cursor = mysql.cursor()
    cursor.execute(
        f"SELECT id, user_id, amount, status, created_at FROM `{source_db()}`.orders "
        "WHERE company = 2 AND created_at >= '2026-11-19' ORDER BY id"
    )
    source_rows = [tuple(r) for r in cursor.fetchall()]
    assert len(source_rows) == 15, source_rows  # 11-hour steps back from 2026-11-26: n = 1..15
    marks = ", ".join(["%s"] * len(source_rows))
    cursor.execute(
        f"SELECT id, user_id, amount, status, created_at FROM globex.orders WHERE id IN ({marks}) ORDER BY id",
        [r[0] for r in source_rows],
    )
    target_rows = [tuple(r) for r in cursor.fetchall()]
    assert target_rows == source_rows
    assert any(r[2] is None for r in target_rows) and any(isinstance(r[2], Decimal) for r in target_rows)

    loads = report_loads(cursor, "globex", globex_run)
    assert set(loads) == set(TABLES) - refused, loads
    expected = expected_rows(cursor, "globex", MANUAL_DATE)
    for table, (logical, rows) in loads.items():
        assert logical == MANUAL_DATE.replace(tzinfo=None), (table, logical)
        assert rows == expected[table], (table, rows, expected)
    for alias in ("acme", "umbrella"):
        assert report_loads(cursor, alias, globex_run) == {}, f"{alias} loaded in a globex-only run"


def test_backfill_runs_load_their_own_windows(backfill_runs: list[dict[str, Any]], mysql: Any) -> None:
    cursor = mysql.cursor()
    globex_orders = []
    for run, logical in zip(backfill_runs, BACKFILL_DATES, strict=False):
        assert run["state"] == "success" and run["run_type"] == "backfill"
        assert parse_time(run["logical_date"]) == logical
        for alias in COMPANIES:
            loads = report_loads(cursor, alias, run)
            expected_tables = set(TABLES)
            if SWAP_TABLE not in loads and newer_swap_exists(cursor, alias, SWAP_TABLE, logical):
                expected_tables.discard(SWAP_TABLE)  # refused: a newer full refresh is already in place
            assert set(loads) == expected_tables, (alias, run["dag_run_id"], loads)
            expected = expected_rows(cursor, alias, logical)
            for table, (loaded_for, rows) in loads.items():
                assert loaded_for == logical.replace(tzinfo=None), (alias, table, loaded_for)
                assert rows == expected[table], (alias, table, logical.date(), rows, expected)
            if alias == "globex":
                globex_orders.append(loads["orders"][1])
    # Every day has its own window: globex's orders since (day - 7 days) shrink day by day.
    assert globex_orders == sorted(globex_orders, reverse=True) and len(set(globex_orders)) == 3, globex_orders


def test_companies_run_concurrently(api: Api, backfill_runs: list[dict[str, Any]]) -> None:
    """In one run, tasks of two different company groups were running at the same time."""
    checked = []
    for run in backfill_runs:
        spans = [
            (ti["task_id"], parse_time(ti["start_date"]), parse_time(ti["end_date"]))
            for ti in api.task_instances(run["dag_run_id"])
            if ti["state"] == "success" and ti["start_date"] and ti["end_date"]
        ]
        assert len({group_of(t) for t, _, _ in spans}) == len(COMPANIES), spans
        for i, (task_a, start_a, end_a) in enumerate(spans):
            for task_b, start_b, end_b in spans[i + 1 :]:
                if group_of(task_a) != group_of(task_b) and start_a < end_b and start_b < end_a:
                    overlap = (min(end_a, end_b) - max(start_a, start_b)).total_seconds()
                    print(f"{run['dag_run_id']}: {task_a} and {task_b} overlap by {overlap:.1f} s")
                    return
        checked.append(run["dag_run_id"])
    pytest.fail(f"no two tasks of different companies overlapped in any of {checked}")


class _LoginShim(http.server.BaseHTTPRequestHandler):
    """Sets the ``_token`` cookie the UI's own login page sets, then sends the browser to the UI.

    Cookies are per host, not per port, so a cookie set by this server on 127.0.0.1 goes to the
    api-server on 127.0.0.1 too: the browser then holds exactly what logging in through the form leaves.
    """

    token = ""
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Set-Cookie", f"_token={self.token}; Path=/; SameSite=Lax")
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed (bash scripts/airflow_local.sh ui-deps)"
    profile = tempfile.mkdtemp(prefix="rp-chromium-")
    try:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--window-size=1600,1000",
                "--virtual-time-budget=15000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_ui_shows_the_company_groups(api: Api, globex_run: dict[str, Any]) -> None:
    page = f"{API}/dags/{DAG_ID}/runs/{globex_run['dag_run_id']}"
    handler = type("Shim", (_LoginShim,), {"token": api.token, "target": page})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    login = f"http://127.0.0.1:{server.server_address[1]}/login"
    try:
        OUTPUT.mkdir(exist_ok=True)
        shot = OUTPUT / "airflow_dag_page.png"
        shot.unlink(missing_ok=True)
        result = chromium(f"--screenshot={shot}", login)
        assert shot.exists(), f"no screenshot written: {result.returncode}\n{result.stderr[-3000:]}"
        assert shot.stat().st_size > 20_000, f"screenshot is only {shot.stat().st_size} bytes: blank page?"
        dom = chromium("--dump-dom", login)
        assert dom.returncode == 0, dom.stderr[-3000:]
        (OUTPUT / "airflow_dag_page.html").write_text(dom.stdout)
    finally:
        server.shutdown()
        server.server_close()
    text = dom.stdout
    assert 'name="password"' not in text, "the UI shows its login form: the token cookie was not accepted"
    assert globex_run["dag_run_id"] in text, "the run page does not show the run"
    for alias in COMPANIES:
        assert f"company_{alias}" in text, f"company_{alias} missing: see test-output/airflow_dag_page.html"
