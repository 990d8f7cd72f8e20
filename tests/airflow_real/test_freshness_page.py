"""The "Report freshness" page in the real local Airflow (``make airflow-up``): the plugin is listed by
the REST API, the page needs Airflow's login, shows each company table's last load as the target's
``report_loads`` holds it, with Airflow's task durations, filters by company and status, orders worst
first with totals and a pager, and renders in headless Chromium inside the UI (screenshots in
test-output/freshness.png and freshness-page.png).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tests.airflow_real.test_real_airflow import (
    API,
    DAG_ID,
    OUTPUT,
    REPO,
    Api,
    _LoginShim,
    chromium,
    iso,
    wait_for,
)
from tests.conftest import mysql_connect

pytestmark = pytest.mark.airflow_real

PAGE = f"{API}/report-freshness/"
TABLES = ("users", "orders", "events")


@pytest.fixture(scope="module")
def api() -> Api:
    def healthy() -> bool:
        try:
            health = requests.get(f"{API}/api/v2/monitor/health", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        return all((item or {}).get("status") == "healthy" for item in health.values())

    wait_for(f"a healthy Airflow at {API} (start it with make airflow-up)", healthy, timeout=60)
    return Api(API)


@pytest.fixture(scope="module")
def acme_run(api: Api) -> dict[str, Any]:
    """A manual run of acme alone, logical date now: fresh loads with Airflow task durations."""
    api.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    run_id = f"manual_freshness__{uuid.uuid4().hex[:8]}"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    api.request(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"dag_run_id": run_id, "logical_date": iso(now), "conf": {"companies": ["acme"]}},
    )
    run = api.wait_run(run_id)
    assert run["state"] == "success", api.explain_run(run_id)
    return run


REAL_SNAPSHOT = REPO / ".local" / "airflow-real" / "report_pipeline" / "admin_snapshot.json"
BROKEN = "freshness_broken"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``report-pipeline`` against the stack's admin DB, expiring the stack's parse-time snapshot."""
    env = {**os.environ, "REPORTS_SNAPSHOT_PATH": str(REAL_SNAPSHOT)}
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "report-pipeline"), *args], env=env, capture_output=True, text=True, timeout=180
    )


def _delete_admin_row() -> None:
    conn = mysql_connect("reports_admin")
    try:
        conn.cursor().execute("DELETE FROM `tables` WHERE name = %s", (BROKEN,))
        conn.commit()
    finally:
        conn.close()
    REAL_SNAPSHOT.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def acme_failure(api: Api, acme_run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A table whose source table does not exist, added through the CLI and run for acme: it fails.

    The row is deleted afterwards (and the stack's snapshot expired), so other tests see the demo plan.
    """
    _delete_admin_row()
    added = _cli(
        "add-table", "--name", BROKEN, "--query-select", "SELECT id FROM no_such_table WHERE company = %(company_id)s",
        "--query-insert", f"REPLACE INTO {BROKEN}(id) VALUES ",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    try:
        task_id = f"company_acme.{BROKEN}__mysql_to_s3"

        def has_task() -> bool:
            tasks = api.get(f"/dags/{DAG_ID}/tasks")["tasks"]
            return any(t["task_id"] == task_id for t in tasks)

        wait_for(f"the DAG to have {task_id}", has_task, timeout=180, interval=5)
        run_id = f"manual_freshness_fail__{uuid.uuid4().hex[:8]}"
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        api.request(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": iso(now), "conf": {"companies": ["acme"], "tables": [BROKEN]}},
        )

        def finished() -> dict[str, Any] | None:
            run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = wait_for(f"dag run {run_id} to finish", finished, timeout=300)
        assert run["state"] == "failed", api.explain_run(run_id)
        yield {"run": run, "task_id": task_id}
    finally:
        _delete_admin_row()


def _latest(table: str) -> tuple[int, str]:
    conn = mysql_connect("acme")
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT rows_loaded, run_id FROM report_loads WHERE table_name = %s ORDER BY id DESC LIMIT 1", (table,)
        )
        row = cursor.fetchone()
        assert row is not None, f"acme.report_loads has no load of {table}"
        return int(row[0]), str(row[1])
    finally:
        conn.close()


def test_the_plugin_is_listed_with_its_app_and_nav_entry(api: Api) -> None:
    plugins = {p["name"]: p for p in api.get("/plugins")["plugins"]}
    plugin = plugins.get("report_freshness")
    assert plugin is not None, f"plugins listed: {sorted(plugins)}"
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/report-freshness"]
    views = plugin["external_views"]
    assert [(v["name"], v["href"], v["destination"]) for v in views] == [
        ("Report freshness", "/report-freshness/", "nav")
    ]


def test_the_rendered_template_view_shows_the_query_and_connection_ids(api: Api, acme_run: dict[str, Any]) -> None:
    task = api.get(f"/dags/{DAG_ID}/dagRuns/{acme_run['dag_run_id']}/taskInstances/company_acme.users__mysql_to_s3")
    rendered = task["rendered_fields"]
    conn = mysql_connect("reports_admin")
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT query_select FROM `tables` WHERE name = 'users' AND status = 1")
        (query,) = cursor.fetchone()
    finally:
        conn.close()
    assert rendered["sql"] == query
    assert rendered["source_conn_id"] == "reports_source_db" and rendered["s3_conn_id"] == "reports_s3"
    load = api.get(f"/dags/{DAG_ID}/dagRuns/{acme_run['dag_run_id']}/taskInstances/company_acme.users__s3_to_mysql")
    assert load["rendered_fields"]["target_conn_id"] == "reports_target_db"
    # The load never runs the query: Airflow stores no copy of it for every load try (issue 21 item 5).
    assert "sql" not in load["rendered_fields"] and query not in json.dumps(load["rendered_fields"])


def test_the_page_needs_airflow_login(api: Api) -> None:
    assert requests.get(PAGE, timeout=30).status_code in (401, 403)
    assert requests.get(PAGE, headers={"Authorization": "Bearer not-a-token"}, timeout=30).status_code in (401, 403)


def test_the_page_shows_each_table_as_the_ledger_has_it(api: Api, acme_run: dict[str, Any]) -> None:
    resp = api.session.get(PAGE, params={"company": "acme"}, timeout=60)
    assert resp.status_code == 200, resp.text[:2000]
    text = resp.text
    for table in TABLES:
        rows, run_id = _latest(table)
        assert run_id == acme_run["dag_run_id"]
        match = re.search(rf'<tr data-company="acme" data-table="{table}">(.*?)</tr>', text, flags=re.S)
        assert match, f"no row for acme.{table}"
        cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), flags=re.S)
        assert cells[4] == f"{rows:,}", (table, cells)
        assert 'data-status="green"' in cells[5], (table, cells[5])
        assert "<rect" in cells[7], "no chart bars"
    # The filter: another company's rows are not on acme's page.
    assert 'data-company="globex"' not in text and 'data-company="umbrella"' not in text
    data = api.session.get(f"{PAGE}data", params={"company": "acme"}, timeout=60).json()
    for row in data:
        newest = row["loads"][0]
        assert newest["run_id"] == acme_run["dag_run_id"] and newest["rows"] == _latest(row["table"])[0]
        # The load task's duration comes from Airflow's task instance of that run.
        assert newest["seconds"] is not None and newest["seconds"] > 0, row
    everyone = api.session.get(PAGE, timeout=60).text
    assert {"acme", "globex", "umbrella"} <= set(re.findall(r'data-company="([^"]+)"', everyone))


def test_a_failed_table_shows_its_last_error_with_a_log_link(api: Api, acme_failure: dict[str, Any]) -> None:
    text = api.session.get(PAGE, params={"company": "acme"}, timeout=60).text
    match = re.search(rf'<tr data-company="acme" data-table="{BROKEN}">(.*?)</tr>', text, flags=re.S)
    assert match, f"no row for acme.{BROKEN}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), flags=re.S)
    assert cells[2] == "never" and 'data-status="red"' in cells[5], cells
    run_id = acme_failure["run"]["dag_run_id"]
    assert f"{BROKEN}__mysql_to_s3 failed" in cells[6] and "(try 4)" in cells[6], cells[6]
    assert f"/dags/{DAG_ID}/runs/{run_id}/tasks/{acme_failure['task_id']}?try_number=4" in cells[6], cells[6]
    # The tables that loaded keep their green status and no error.
    users = re.search(r'<tr data-company="acme" data-table="users">(.*?)</tr>', text, flags=re.S)
    assert users and 'data-status="green"' in users.group(1) and "failed" not in users.group(1)
    # Worst first: the failed table is the page's first row, and the status filter finds it alone.
    rows = re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', text)
    assert rows[0] == ("acme", BROKEN), rows
    failed = api.session.get(PAGE, params={"company": "acme", "status": "failed"}, timeout=60).text
    assert re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', failed) == [("acme", BROKEN)]
    assert re.search(r'data-total="failed"[^>]*><span class="badge red">1</span>', failed), "the totals' failed count"


def test_the_page_pages_and_refuses_an_unknown_status(api: Api, acme_run: dict[str, Any]) -> None:
    whole = api.session.get(PAGE, timeout=60).text
    every = re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', whole)
    totals = re.search(r'data-tables="(\d+)" data-companies="(\d+)"', whole)
    assert totals and int(totals.group(2)) == len({company for company, _ in every}), totals
    assert int(totals.group(1)) == len([row for row in every if row[1] != "*"])
    # Two rows a page: the pages hold the same rows in the same order, each once.
    pages = -(-len(every) // 2)
    seen: list[tuple[str, str]] = []
    for number in range(1, pages + 1):
        part = api.session.get(PAGE, params={"page": number, "per_page": 2}, timeout=60)
        assert part.status_code == 200 and f'data-page="{number}" data-pages="{pages}"' in part.text
        seen += re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', part.text)
    assert seen == every
    for bad in ({"status": "stale"}, {"page": "0"}, {"per_page": "100000"}):
        assert api.session.get(PAGE, params=bad, timeout=60).status_code == 422, bad
    assert api.session.get(f"{PAGE}data", params={"status": "stale"}, timeout=60).status_code == 422


def _browser(api: Api, target: str, *args: str) -> Any:
    handler = type("Shim", (_LoginShim,), {"token": api.token, "target": target})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return chromium(*args, f"http://127.0.0.1:{server.server_address[1]}/login")
    finally:
        server.shutdown()
        server.server_close()


def test_the_page_renders_in_chromium_inside_the_ui(api: Api, acme_failure: dict[str, Any]) -> None:
    OUTPUT.mkdir(exist_ok=True)
    dom = _browser(api, PAGE, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    (OUTPUT / "freshness.html").write_text(dom.stdout)
    assert "Report freshness" in dom.stdout and 'data-company="acme"' in dom.stdout
    page_shot = OUTPUT / "freshness-page.png"
    page_shot.unlink(missing_ok=True)
    _browser(api, PAGE, f"--screenshot={page_shot}")
    assert page_shot.exists() and page_shot.stat().st_size > 10_000
    # Inside the UI: the nav entry's route shows the page in Airflow's frame.
    shot = OUTPUT / "freshness.png"
    shot.unlink(missing_ok=True)
    result = _browser(api, f"{API}/plugin/report-freshness", f"--screenshot={shot}")
    assert shot.exists(), result.stderr[-3000:]
    assert shot.stat().st_size > 20_000, f"screenshot is only {shot.stat().st_size} bytes: blank page?"
    ui = _browser(api, f"{API}/plugin/report-freshness", "--dump-dom")
    assert 'name="password"' not in ui.stdout, "the UI shows its login form"
    assert "/report-freshness/" in ui.stdout, "the UI does not embed the page"


# Issue 22.3: the page fails closed. Every route, anonymous: 401; a logged-in user who may not read the
# DAG (SimpleAuthManager user ``rp_norole``, no role): 403; a viewer (``rp_reader``): 200. Through the REST
# client and in headless Chromium (the browser carries the UI's ``_token`` cookie, as after logging in).
ROUTES = (
    "/report-freshness/",
    "/report-freshness/data",
    "/report-freshness/?company=acme",
    "/report-freshness/data?company=acme",
)


def _token(user: str) -> str:
    resp = requests.post(f"{API}/auth/token", json={"username": user, "password": user}, timeout=30)
    assert resp.status_code in (200, 201), resp.text
    return str(resp.json()["access_token"])


def _as(token: str, target: str, *args: str) -> Any:
    handler = type("Shim", (_LoginShim,), {"token": token, "target": target})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return chromium(*args, f"http://127.0.0.1:{server.server_address[1]}/login")
    finally:
        server.shutdown()
        server.server_close()


def test_anonymous_is_refused_401_on_every_route(api: Api) -> None:
    for route in ROUTES:
        resp = requests.get(f"{API}{route}", timeout=30)
        assert resp.status_code == 401, (route, resp.status_code, resp.text[:200])
        assert "data-company" not in resp.text and "age_seconds" not in resp.text
    for route in ("/report-freshness/", "/report-freshness/data"):
        dom = chromium("--dump-dom", f"{API}{route}")
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "Not authenticated" in dom.stdout and "data-company" not in dom.stdout, dom.stdout[:500]


def test_a_user_who_may_not_read_the_dag_is_refused_403(api: Api) -> None:
    token = _token("rp_norole")
    # The same token reads nothing else of the DAG either: Airflow itself agrees.
    dag = requests.get(f"{API}/api/v2/dags/{DAG_ID}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert dag.status_code == 403, dag.status_code
    for route in ROUTES:
        resp = requests.get(f"{API}{route}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert resp.status_code == 403, (route, resp.status_code, resp.text[:200])
        assert "data-company" not in resp.text and "age_seconds" not in resp.text
    for route in ("/report-freshness/", "/report-freshness/data"):
        dom = _as(token, f"{API}{route}", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "Forbidden" in dom.stdout and "data-company" not in dom.stdout, dom.stdout[:500]


def test_a_reader_sees_the_page_and_its_data(api: Api) -> None:
    token = _token("rp_reader")
    for route in ROUTES:
        resp = requests.get(f"{API}{route}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert resp.status_code == 200, (route, resp.status_code, resp.text[:200])
    data = requests.get(f"{API}/report-freshness/data", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert isinstance(data.json(), list)
    dom = _as(token, PAGE, "--dump-dom")
    assert "Report freshness" in dom.stdout and "Forbidden" not in dom.stdout, dom.stdout[:500]
