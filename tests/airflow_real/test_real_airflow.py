"""The DAG in a real Airflow 3.3: api-server, scheduler (LocalExecutor), dag-processor and triggerer on
PostgreSQL, as ``make airflow-up`` (scripts/airflow_local.sh) starts them. Everything goes through the
public REST API, the ``airflow`` CLI and a headless browser, the way users reach the deployment; the
data is checked in the real MariaDB.

Run with ``make test-airflow``. When the stack is not reachable every test fails (never skips).
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.airflow_real.conftest import (
    assert_target_exact,
    company_id,
    loads_of_run,
    lookback_days,
    reset_targets,
    shadow_tables,
    source_db,
    source_table_locked,
)
from tests.conftest import mysql_connect

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
# The events table (swap) has rows only from 2026-11-22 22:00 on: these dates give every company a
# non-empty events window, so the backfill checks a swap load on the real scheduler.
BACKFILL_DATES = [dt.datetime(2026, 11, d, tzinfo=dt.UTC) for d in (23, 24, 25)]
RUN_TIMEOUT = float(os.environ.get("AIRFLOW_REAL_RUN_TIMEOUT", "300"))
# The source table every company reads that the backfill fixture holds locked (LOCK TABLES ... WRITE)
# from before the backfill starts until two companies' extracts of it are seen waiting on the lock, and
# HOLD_SECONDS more: those extracts then ran side by side at least that long, however fast tasks are.
HELD_TABLE = "users"
HOLD_SECONDS = 3.0
# Two tasks of different companies must have run side by side at least this long (scheduler's dates).
MIN_OVERLAP_SECONDS = 1.0
__all__ = ["company_id", "lookback_days", "source_db"]  # re-exported for the other real-stack tests


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

    def tries(self, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of a task instance as the scheduler recorded it (state, hostname, start/end)."""
        found = self.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"]
        return sorted(found, key=lambda t: t["try_number"])

    def settle(self) -> None:
        """Unpause the DAG and wait until the scheduler created every run that is due and none is queued or
        running, so nothing but the test's own run writes to the targets after the test reset them."""
        self.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

        def quiet() -> bool:
            dag = self.get(f"/dags/{DAG_ID}")
            due = parse_time(dag.get("next_dagrun_run_after"))
            if due is not None and due <= dt.datetime.now(dt.UTC):
                return False
            return not self.runs(state=["running", "queued"])

        wait_for("the DAG's due runs to be created and finished", quiet, RUN_TIMEOUT)

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
def globex_run(api: Api, active_dag: dict[str, Any], mysql: Any) -> dict[str, Any]:
    """A manual run for 2026-11-26 limited to globex, triggered through the REST API, on emptied targets.

    Every company's targets and ledger rows are cleared first (after the scheduler's own due runs
    finished), so what the targets hold afterwards is what this run loaded, and the swap table is loaded
    too (no newer swap in the ledger to refuse it)."""
    api.settle()
    reset_targets(mysql.cursor(), COMPANIES, TABLES)
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
    return api.wait_run(run_id)


@dataclass(frozen=True)
class Held:
    """What the backfill fixture saw while it held HELD_TABLE locked: in run ``run_id``, ``waiting``
    source sessions waiting on the lock at once, while ``tasks`` (its extracts) were running."""

    run_id: str
    waiting: int
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class Backfill:
    runs: list[dict[str, Any]]
    held: Held


def extracts_waiting(api: Api, mysql: Any, run_ids: list[str], table: str) -> Held | None:
    """A run in which at least two companies' extracts of ``table`` are running and at least two source
    sessions wait on its lock, or None."""
    cursor = mysql.cursor()
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for table metadata lock' "
        "AND INFO LIKE %s",
        (f"%{table}%",),
    )
    waiting = int(cursor.fetchone()[0])
    if waiting < 2:
        return None
    for run_id in run_ids:
        running = tuple(
            sorted(
                ti["task_id"]
                for ti in api.task_instances(run_id)
                if ti["state"] == "running" and ti["task_id"].endswith(f".{table}__mysql_to_s3")
            )
        )
        if len({group_of(task) for task in running}) >= 2:
            return Held(run_id, waiting, running)
    return None


@pytest.fixture(scope="session")
def backfill(api: Api, active_dag: dict[str, Any], mysql: Any) -> Backfill:
    """Three runs from ``airflow backfill create --max-active-runs 1`` for 2026-11-23..25 on emptied
    targets, all finished successfully; the source's HELD_TABLE was locked when they started, until two
    companies' extracts of it were seen waiting on the lock (see Held), and HOLD_SECONDS more."""
    api.settle()
    for backfill in api.get("/backfills", dag_id=DAG_ID, limit=100)["backfills"]:
        if backfill.get("completed_at") is None:
            api.request("PUT", f"/backfills/{backfill['id']}/cancel", expect=(200, 409))
    first, last = BACKFILL_DATES[0], BACKFILL_DATES[-1]
    api.delete_runs(api.runs(logical_date_gte=iso(first), logical_date_lte=iso(last + dt.timedelta(hours=23))))
    reset_targets(mysql.cursor(), COMPANIES, TABLES)
    started = dt.datetime.now(dt.UTC)
    with source_table_locked(HELD_TABLE):
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
                # One date at a time, oldest first, as README advises: Airflow 3's backfill runs up to 10
                # dates at once whatever the DAG's max_active_runs, and a swap table's older date that
                # finished after a newer one would be skipped (rightly) instead of loading its window.
                "--max-active-runs",
                "1",
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

        runs = sorted(wait_for("the backfill's three runs", created, timeout=60), key=lambda r: r["logical_date"])
        held = wait_for(
            f"two companies' {HELD_TABLE} extracts waiting on the held source lock",
            lambda: extracts_waiting(api, mysql, [r["dag_run_id"] for r in runs], HELD_TABLE),
            timeout=RUN_TIMEOUT,
            interval=0.5,
        )
        time.sleep(HOLD_SECONDS)
    assert sorted(parse_time(r["logical_date"]) for r in runs) == BACKFILL_DATES
    for run in runs:
        assert parse_time(run["run_after"]) is not None
        assert parse_time(run.get("queued_at") or run["run_after"]) >= started - dt.timedelta(seconds=5), run
    return Backfill([api.wait_run(r["dag_run_id"]) for r in runs], held)


@pytest.fixture(scope="session")
def backfill_runs(backfill: Backfill) -> list[dict[str, Any]]:
    return backfill.runs


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


def test_manual_run_limited_to_one_company(api: Api, globex_run: dict[str, Any], mysql: Any) -> None:
    run_id = globex_run["dag_run_id"]
    assert parse_time(globex_run["logical_date"]) == MANUAL_DATE
    tis = api.task_instances(run_id)
    by_group: dict[str, set[str]] = {}
    for ti in tis:
        by_group.setdefault(group_of(ti["task_id"]), set()).add(ti["state"])
    # What the scheduler did: every globex task (the swap table's load included) ran and succeeded on
    # some worker, the other companies' tasks were skipped.
    assert by_group.get("company_globex") == {"success"}, api.explain_run(run_id)
    for alias in ("acme", "umbrella"):
        assert by_group.get(f"company_{alias}") == {"skipped"}, api.explain_run(run_id)
    globex_tis = {ti["task_id"]: ti for ti in tis if group_of(ti["task_id"]) == "company_globex"}
    assert set(globex_tis) == {f"company_globex.{t}__{step}" for t in TABLES for step in ("mysql_to_s3", "s3_to_mysql")}
    for task_id, ti in globex_tis.items():
        assert ti["try_number"] >= 1 and ti["hostname"], (task_id, ti)

    # The targets were emptied before the run: every row in them now is this run's, and must be exactly
    # the source window of 2026-11-26 (globex looks back 7 days), every column, NULLs included.
    cursor = mysql.cursor()
    for table in TABLES:
        assert_target_exact(cursor, "globex", table, MANUAL_DATE)
    cursor.execute("SELECT amount FROM globex.orders")
    amounts = [r[0] for r in cursor.fetchall()]
    assert any(a is None for a in amounts) and any(isinstance(a, Decimal) for a in amounts)
    assert shadow_tables(cursor, "globex") == []
    # One ledger row per table: nothing loaded twice.
    loads = loads_of_run(cursor, "globex", run_id)
    assert {t: [(d, m) for d, _, m in rows] for t, rows in loads.items()} == {
        t: [(MANUAL_DATE.replace(tzinfo=None), "swap" if t == SWAP_TABLE else "upsert")] for t in TABLES
    }, loads
    for alias in ("acme", "umbrella"):
        for table in TABLES:
            cursor.execute(f"SELECT COUNT(*) FROM `{alias}`.`{table}`")
            assert cursor.fetchone()[0] == 0, f"{alias}.{table} was loaded by a globex-only run"


def test_backfill_runs_load_their_own_windows(api: Api, backfill_runs: list[dict[str, Any]], mysql: Any) -> None:
    cursor = mysql.cursor()
    for run, logical in zip(backfill_runs, BACKFILL_DATES, strict=True):
        assert run["state"] == "success" and run["run_type"] == "backfill"
        assert parse_time(run["logical_date"]) == logical
        # What the scheduler did: every task of every company succeeded (the swap loads were not
        # refused: the ledger held no newer swap, and the runs went oldest first).
        tis = api.task_instances(run["dag_run_id"])
        states = {ti["task_id"]: ti["state"] for ti in tis}
        expected = {f"company_{a}.{t}__{s}" for a in COMPANIES for t in TABLES for s in ("mysql_to_s3", "s3_to_mysql")}
        assert set(states) == expected, sorted(set(states) ^ expected)
        assert set(states.values()) == {"success"}, api.explain_run(run["dag_run_id"])
        for alias in COMPANIES:
            loads = loads_of_run(cursor, alias, run["dag_run_id"])
            assert {t: len(rows) for t, rows in loads.items()} == dict.fromkeys(TABLES, 1), (alias, loads)
    starts = [parse_time(r["start_date"]) for r in backfill_runs]
    assert starts == sorted(starts), f"the backfill did not run its dates oldest first: {starts}"

    # The targets were emptied before the backfill, so what they hold is its work: users in full; orders
    # (REPLACE, no upper bound) the union of the three windows, i.e. the oldest date's; events (swap, a full
    # refresh per date) exactly the newest date's window, nothing of the older ones left.
    for alias in COMPANIES:
        assert_target_exact(cursor, alias, "users", BACKFILL_DATES[0])
        assert_target_exact(cursor, alias, "orders", BACKFILL_DATES[0])
        assert_target_exact(cursor, alias, SWAP_TABLE, BACKFILL_DATES[-1])
        assert shadow_tables(cursor, alias) == []
    # Each date copied its own window: globex's orders since (day - 7 days) differ day by day, and the
    # oldest day's rows that only its window holds are in the target.
    cursor.execute(
        f"SELECT COUNT(*) FROM `{source_db()}`.orders WHERE company = %s AND created_at >= %s AND created_at < %s",
        (company_id("globex"), *(d.date() - dt.timedelta(days=lookback_days("globex")) for d in BACKFILL_DATES[:2])),
    )
    only_oldest = cursor.fetchone()[0]
    assert only_oldest > 0, "the demo data has no globex order only the oldest backfill date's window holds"


def overlaps(tis: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    """Pairs of task instances of different companies that ran at the same time, by the scheduler's
    start and end dates: (seconds both were running, task a, task b), longest first."""
    spans = [
        (ti["task_id"], parse_time(ti["start_date"]), parse_time(ti["end_date"]))
        for ti in tis
        if ti["state"] == "success" and ti["start_date"] and ti["end_date"]
    ]
    found = []
    for i, (task_a, start_a, end_a) in enumerate(spans):
        for task_b, start_b, end_b in spans[i + 1 :]:
            if group_of(task_a) == group_of(task_b):
                continue
            assert start_a and end_a and start_b and end_b
            seconds = (min(end_a, end_b) - max(start_a, start_b)).total_seconds()
            if seconds > 0:
                found.append((seconds, task_a, task_b))
    return sorted(found, reverse=True)


def test_companies_run_concurrently(api: Api, backfill: Backfill) -> None:
    """Tasks of different companies run at the same time. The interleaving is made to happen: with the
    source's HELD_TABLE locked, two companies' extracts of it were seen running at once with their
    queries waiting on the lock; by the scheduler's own start and end dates they then ran side by side
    at least MIN_OVERLAP_SECONDS, and succeeded once the lock was released (their rows are checked
    against the source by test_backfill_runs_load_their_own_windows)."""
    held = backfill.held
    assert held.waiting >= 2 and len({group_of(task) for task in held.tasks}) >= 2, held
    for run in backfill.runs:
        tis = api.task_instances(run["dag_run_id"])
        assert len({group_of(ti["task_id"]) for ti in tis if ti["state"] == "success"}) == len(COMPANIES)
    tis = [ti for ti in api.task_instances(held.run_id) if ti["task_id"] in held.tasks]
    assert tis and all(ti["state"] == "success" for ti in tis), [(ti["task_id"], ti["state"]) for ti in tis]
    found = overlaps(tis)
    assert found, f"the held extracts {held.tasks} did not overlap by the scheduler's dates"
    seconds, task_a, task_b = found[0]
    print(f"{held.run_id}: {task_a} and {task_b} ran side by side for {seconds:.1f} s ({held.waiting} waiting)")
    assert seconds >= MIN_OVERLAP_SECONDS, (
        f"the longest overlap of the held extracts is {seconds:.2f} s ({task_a}, {task_b} in {held.run_id})"
    )


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
