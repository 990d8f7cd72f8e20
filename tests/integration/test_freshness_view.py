"""Issue 21 item 5: the freshness page at fleet size, against the real MariaDB.

The page judges every row from its newest load (``freshness.survey``: ``ledger.latest_many``), orders
them worst first (failed, red, amber, green; the oldest data first), counts them over the whole fleet,
and reads the chart's history for the one page it shows (``freshness.add_history``). Six companies with
ledgers this test writes, at ages it chooses:

    c1  orders, users, events: loaded 2 h ago (green), 15 loads each
    c2  orders 40 h ago (amber); users, events green
    c3  orders 80 h ago (red); users green; events never loaded (red, "never")
    c4  no ledger at all: three tables never loaded
    c5  all green; events has a failure after its last load (set as Airflow's facts would)
    c6  all green
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import freshness, ledger
from report_pipeline.config import AdminRows, Plan, build_plan
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration
TABLES = ("orders", "users", "events")
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LOADS = 15
# (company, table) -> hours since its newest load; a table of a ledger company missing here: never loaded.
AGES = {
    **{(c, t): 2.0 for c in ("c1", "c2", "c3", "c5", "c6") for t in TABLES},
    ("c2", "orders"): 40.0,
    ("c3", "orders"): 80.0,
}
del AGES[("c3", "events")]
NO_LEDGER = "c4"


class CountingCursor:
    """The page's cursor, counting the statements it sends."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.statements: list[str] = []

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self.statements.append(sql)
        return self.cursor.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def _plan(prefix: str) -> Plan:
    companies = [{"id": i, "company_id": i, "status": 1, "alias": f"c{i}"} for i in range(1, 7)]
    tables = [
        {
            "id": n,
            "name": name,
            "status": 1,
            "query_select": f"SELECT id FROM {name} WHERE company = %s",
            "params_select": "company[1]",
            "query_insert": f"REPLACE INTO {name}(id) VALUES",
            "params_insert": "",
        }
        for n, name in enumerate(TABLES, start=1)
    ]
    settings = Settings.from_env({"REPORTS_TARGET_SCHEMA_TEMPLATE": prefix + "{alias}"})
    return build_plan(AdminRows(companies=companies, tables=tables), settings)


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Plan]:
    plan = _plan(f"fv{uuid.uuid4().hex[:6]}_")
    conn = mysql_connect()
    conn.autocommit(True)
    cursor = conn.cursor()
    try:
        for cp in plan.companies:
            schema = cp.company.schema
            execute(conn, f"CREATE DATABASE `{schema}`")
            if cp.company.alias == NO_LEDGER:
                continue
            ledger.ensure(cursor, schema)
            for day in reversed(range(LOADS)):  # oldest first: ids grow with time, as loads record them
                for table in TABLES:
                    hours = AGES.get((cp.company.alias, table))
                    if hours is None:
                        continue
                    cursor.execute(
                        f"INSERT INTO `{schema}`.report_loads (table_name, logical_date, run_id, rows_loaded, "
                        "finished_at, load_mode, load_key, manifest_keys) VALUES (%s, %s, %s, %s, %s, 'upsert', %s, "
                        "'[]')",
                        (
                            table,
                            _naive(NOW) - dt.timedelta(days=day + 1),
                            f"scheduled__{day}",
                            1000 * cp.company.id + day,
                            _naive(NOW) - dt.timedelta(hours=hours, days=day),
                            uuid.uuid4().hex * 2,
                        ),
                    )
        yield plan
    finally:
        for cp in plan.companies:
            execute(conn, f"DROP DATABASE IF EXISTS `{cp.company.schema}`")
        conn.close()


def _survey(plan: Plan, **kwargs: Any) -> list[freshness.TableFreshness]:
    conn = mysql_connect()
    try:
        rows = freshness.survey(plan, conn.cursor(), schedule="@daily", now=NOW, **kwargs)
    finally:
        conn.close()
    # Airflow's facts: c5.events failed after its last load (the adapter's _failures sets this).
    for row in rows:
        if (row.company, row.table) == ("c5", "events"):
            row.failure = freshness.Failure("company_c5.events__mysql_to_s3", "scheduled__x", None, 4, "http://log")
    return rows


def _tables(rows: list[freshness.TableFreshness]) -> list[tuple[str, str]]:
    return [(r.company, r.table) for r in rows]


def test_each_row_holds_its_newest_load_and_the_totals_count_what_the_ledgers_hold(fleet: Plan) -> None:
    rows = _survey(fleet)
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        for row in rows:
            if row.table == "*":
                continue
            schema = row.schema
            newest = ledger.latest(cursor, schema, row.table) if ledger.exists(cursor, schema) else None
            assert row.loads == ([newest] if newest else []), (row.company, row.table)
    finally:
        conn.close()
    # What this test wrote: 18 tables of 6 companies; amber c2.orders; red c3.orders, c3.events, c4's three.
    totals = freshness.Totals.of(rows)
    assert totals == freshness.Totals(companies=6, tables=18, failed=1, red=5, amber=1, green=12)
    by_key = {(r.company, r.table): r for r in rows}
    assert by_key[("c3", "orders")].last.rows_loaded == 3000  # the newest of its 15 loads: day 0
    assert by_key[("c3", "events")].age_seconds is None and by_key[("c4", "users")].loads == []


def test_rows_come_worst_first(fleet: Plan) -> None:
    page = freshness.page_of(_survey(fleet), per_page=100)
    order = _tables(page.rows)
    # The failed row first; then red: never loaded (c3.events, c4's tables and company rows without an
    # as-of), then 80 h old; then amber; then green.
    assert order[0] == ("c5", "events")
    red = [k for k, r in zip(order, page.rows, strict=True) if r.status == "red" and r.failure is None]
    assert order[1 : 1 + len(red)] == red
    never = [k for k in red if page.rows[order.index(k)].age_seconds is None]
    assert red[: len(never)] == never and ("c3", "orders") == red[len(never)]
    assert {("c3", "events"), ("c4", "orders"), ("c4", "users"), ("c4", "events")} <= set(never)
    statuses = [r.status for r in page.rows[1:]]
    assert statuses == sorted(statuses, key=["red", "amber", "green"].index)
    assert order[1 + len(red)] == ("c2", "orders")  # the one amber row
    assert len(order) == page.matching == 6 * (len(TABLES) + 1)  # every table and each company's row


def test_pages_split_the_ordered_rows_without_gaps_or_repeats(fleet: Plan) -> None:
    rows = _survey(fleet)
    whole = _tables(freshness.page_of(rows, per_page=100).rows)
    pages = [freshness.page_of(rows, page=n, per_page=5) for n in range(1, 6)]
    assert [p.pages for p in pages] == [5] * 5 and [p.number for p in pages] == [1, 2, 3, 4, 5]
    assert [p.first for p in pages] == [1, 6, 11, 16, 21]
    assert [key for p in pages for key in _tables(p.rows)] == whole
    assert [len(p.rows) for p in pages] == [5, 5, 5, 5, 4]
    # Past the end: the last page; the totals are the fleet's on every page.
    assert _tables(freshness.page_of(rows, page=99, per_page=5).rows) == _tables(pages[-1].rows)
    assert {p.totals for p in pages} == {freshness.Totals.of(rows)}


def test_the_status_filter_keeps_the_totals_of_the_whole_fleet(fleet: Plan) -> None:
    rows = _survey(fleet)
    red = freshness.page_of(rows, status="red", per_page=100)
    assert red.rows and all(r.status == "red" for r in red.rows)
    assert len([r for r in red.rows if r.table != "*"]) == red.totals.red == 5
    failed = freshness.page_of(rows, status="failed")
    assert _tables(failed.rows) == [("c5", "events")] and failed.matching == 1
    assert _tables(freshness.page_of(rows, status="amber").rows) == [("c2", "orders")]
    assert red.totals == failed.totals == freshness.Totals.of(rows)
    with pytest.raises(ValueError, match="purple"):
        freshness.page_of(rows, status="purple")
    # One company: its rows and its totals only.
    c3 = freshness.page_of(_survey(fleet, company="c3"))
    assert {r.company for r in c3.rows} == {"c3"}
    assert c3.totals == freshness.Totals(companies=1, tables=3, failed=0, red=2, amber=0, green=1)


def test_the_page_reads_history_for_its_rows_only_in_one_query(fleet: Plan) -> None:
    rows = _survey(fleet)
    page = freshness.page_of(rows, status="green", per_page=4)
    conn = mysql_connect()
    try:
        cursor = CountingCursor(conn.cursor())
        freshness.add_history(page.rows, cursor)
        assert len(cursor.statements) == 1, cursor.statements
        for row in page.rows:
            assert row.loads == ledger.history(cursor, row.schema, row.target, freshness.HISTORY)
            assert len(row.loads) == freshness.HISTORY
            assert [x.rows_loaded for x in row.loads] == [1000 * int(row.company[1:]) + d for d in range(12)]
    finally:
        conn.close()
    # The rows not shown keep their newest load only.
    assert all(len(r.loads) <= 1 for r in rows if r not in page.rows)


def test_the_survey_reads_a_fleet_in_a_few_statements(fleet: Plan) -> None:
    counts = []
    conn = mysql_connect()
    try:
        for companies in (2, 6):
            cursor = CountingCursor(conn.cursor())
            freshness.survey(Plan(companies=fleet.companies[:companies]), cursor, schedule="@daily", now=NOW)
            counts.append(len(cursor.statements))
    finally:
        conn.close()
    # Which schemas have a ledger, then their newest rows; which have an as-of table (none here, so no read).
    assert counts == [3, 3], counts


def test_the_rendered_page_shows_totals_filters_and_a_pager(fleet: Plan) -> None:
    rows = _survey(fleet)
    page = freshness.page_of(rows, status="red", page=2, per_page=3)
    conn = mysql_connect()
    try:
        freshness.add_history(page.rows, conn.cursor())
    finally:
        conn.close()
    html = freshness.render_page(
        page.rows, ["c1", "c2"], selected=None, schedule="@daily", now=NOW, base_path="/rf/", status="red", page=page
    )
    shown = re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', html)
    assert shown == _tables(page.rows) and len(shown) == 3
    assert 'data-tables="18" data-companies="6"' in html
    assert re.search(r'data-total="red"[^>]*><span class="badge red">5</span> red', html)
    assert re.search(r'data-total="failed"[^>]*><span class="badge red">1</span> failed', html)
    assert '<option value="red" selected>' in html
    assert 'href="/rf/?status=red&amp;per_page=3"' in html  # previous: page 1
    assert 'href="/rf/?status=red&amp;page=3&amp;per_page=3"' in html  # next
    assert f"page 2 of {page.pages}" in html and 'name="per_page" value="3"' in html


def test_latest_and_history_for_many_schemas(fleet: Plan) -> None:
    schemas = [cp.company.schema for cp in fleet.companies]
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        newest = ledger.latest_many(cursor, [*schemas, "fv_no_such_schema"])
        assert newest["fv_no_such_schema"] == {} and newest[schemas[3]] == {}  # c4: no ledger
        assert sorted(newest[schemas[2]]) == ["orders", "users"]  # c3.events never loaded
        pairs = [(schemas[0], "orders"), (schemas[2], "USERS"), (schemas[2], "events")]
        found = ledger.history_many(cursor, pairs, 3)
        assert [x.rows_loaded for x in found[(schemas[0], "orders")]] == [1000, 1001, 1002]
        # The caller's spelling is the key (names compare case-insensitively in the ledger).
        assert [x.rows_loaded for x in found[(schemas[2], "USERS")]] == [3000, 3001, 3002]
        assert found[(schemas[2], "events")] == []
    finally:
        conn.close()


def test_ensure_adds_the_table_id_index_to_an_older_ledger_once(scratch_db: str) -> None:
    conn = mysql_connect()
    conn.autocommit(True)
    cursor = conn.cursor()

    def indexes() -> set[str]:
        cursor.execute(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = 'report_loads'",
            (scratch_db,),
        )
        return {str(r[0]) for r in cursor.fetchall()}

    try:
        ledger.ensure(cursor, scratch_db)
        assert "ix_report_loads_table_id" in indexes()
        # A ledger of before: no index. ensure adds it, and again is a no-op.
        cursor.execute(f"ALTER TABLE `{scratch_db}`.report_loads DROP INDEX ix_report_loads_table_id")
        ledger.ensure(cursor, scratch_db)
        ledger.ensure(cursor, scratch_db)
        assert "ix_report_loads_table_id" in indexes()

        # Two loads racing: the look says "missing", another load added it since: "duplicate key name" is fine.
        class Stale:
            def __init__(self, inner: Any) -> None:
                self.inner = inner
                self.looked = False

            def execute(self, sql: str, parameters: Any = None) -> Any:
                self.looked = "information_schema.STATISTICS" in sql
                return self.inner.execute(sql, parameters)

            def fetchone(self) -> Any:
                row = self.inner.fetchone()
                return (row[0], 0) if self.looked else row

        stale = Stale(cursor)
        ledger.ensure(stale, scratch_db)
        assert stale.looked is False  # it went on to the ALTER, which failed as a duplicate, quietly
        assert "ix_report_loads_table_id" in indexes()
    finally:
        conn.close()


# --- the page's routes (FastAPI) over the same ledgers -------------------------------------------------


@pytest.fixture
def client(fleet: Plan, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin's app with an access check that lets a reader in, over this test's plan and ledgers."""
    import importlib
    import sys
    import types

    from fastapi.testclient import TestClient

    import report_pipeline.airflow.factory as factory
    import report_pipeline.airflow.freshness_app as app_module

    security = types.ModuleType("airflow.api_fastapi.core_api.security")
    security.get_user = lambda: "reader"  # type: ignore[attr-defined]
    security.requires_access_dag = lambda method, param_dag_id: lambda request, user: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "airflow.api_fastapi.core_api.security", security)
    reloaded = importlib.reload(app_module)
    monkeypatch.setattr(factory, "current_plan", lambda settings: (fleet, None))
    monkeypatch.setattr(reloaded, "HookConnections", lambda: types.SimpleNamespace(target=mysql_connect))
    monkeypatch.setattr(reloaded, "_failures", lambda rows, base_url, dags: None)  # no Airflow run of this plan
    yield TestClient(reloaded.app)
    monkeypatch.undo()
    importlib.reload(app_module)


def test_the_page_route_pages_filters_and_refuses_a_bad_status(client: Any) -> None:
    first = client.get("/")
    assert first.status_code == 200, first.text[:500]
    rows = re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', first.text)
    assert len(rows) == 6 * (len(TABLES) + 1)  # 24 rows: one page of 50
    assert 'data-tables="18" data-companies="6"' in first.text and 'data-pages="1"' in first.text
    assert rows.index(("c3", "orders")) < rows.index(("c2", "orders")) < rows.index(("c1", "orders"))
    second = client.get("/", params={"status": "red", "page": 2, "per_page": 4})
    assert second.status_code == 200
    shown = re.findall(r'<tr data-company="([^"]+)" data-table="([^"]+)">', second.text)
    assert len(shown) == 4 and 'data-page="2" data-pages="3"' in second.text  # 11 red rows
    assert all('data-status="red"' in row for row in re.findall(r"<tr data-company.*?</tr>", second.text, re.S))
    # The rows shown carry their chart's history (c3.orders: 12 bars).
    c3 = client.get("/", params={"company": "c3", "status": "red"}).text
    orders = re.search(r'<tr data-company="c3" data-table="orders">(.*?)</tr>', c3, re.S)
    assert orders and orders.group(1).count("<rect") == freshness.HISTORY
    for bad in ({"status": "purple"}, {"page": 0}, {"per_page": 0}, {"per_page": freshness.MAX_PER_PAGE + 1}):
        response = client.get("/", params=bad)
        assert response.status_code == 422, (bad, response.status_code)
    assert client.get("/", params={"status": ""}).status_code == 200  # the form's "every status"


def test_the_json_takes_the_status_filter_too(client: Any) -> None:
    everything = client.get("/data").json()
    assert len(everything) == 18 and all(len(r["loads"]) <= freshness.HISTORY for r in everything)
    amber = client.get("/data", params={"status": "amber"}).json()
    assert [(r["company"], r["table"]) for r in amber] == [("c2", "orders")]
    assert client.get("/data", params={"status": "stale"}).status_code == 422
