"""Issue 21 item 5: what a fleet's size must not multiply.

- The freshness page reads companies' ledgers in batches (two queries per ``SCHEMAS_PER_QUERY``), not
  two queries per company: the same statements for 2 companies as for 7, and the loads each ledger holds.
- Metrics: one name per kind for the whole fleet where the StatsD flavour carries tags; a real StatsD
  listener (a UDP socket) receives what Airflow's ``Stats`` sends from a fresh process.
- The load task's Rendered Template view no longer stores the table's query (its extract's does).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import freshness, ledger
from report_pipeline.config import AdminRows, Plan, build_plan
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
TABLES = ("orders", "users", "events")


class CountingCursor:
    """The page's cursor, counting the statements it sends to the server."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.statements: list[str] = []

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self.statements.append(sql)
        return self.cursor.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


def _plan(prefix: str, companies: int) -> Plan:
    rows = [{"id": i, "company_id": i, "status": 1, "alias": f"c{i}"} for i in range(1, companies + 1)]
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
    return build_plan(AdminRows(companies=rows, tables=tables), settings)


@pytest.fixture
def fleet(mysql_root: Any) -> Iterator[tuple[str, Plan]]:
    """7 companies: c1-c6 with ledgers (company n holds n loads of each table but the last), c7 never loaded."""
    prefix = f"fg{uuid.uuid4().hex[:6]}_"
    plan = _plan(prefix, 7)
    cursor = mysql_root.cursor()
    for cp in plan.companies:
        execute(mysql_root, f"CREATE DATABASE `{cp.company.schema}`")
        if cp.company.id == 7:
            continue
        ledger.ensure(cursor, cp.company.schema)
        for table in TABLES[:-1]:
            for day in range(cp.company.id):
                ledger.record(
                    cursor,
                    cp.company.schema,
                    ledger.LoadRecord(
                        table,
                        dt.datetime(2026, 11, 1 + day),
                        f"scheduled__{day}",
                        100 * cp.company.id + day,
                        "upsert",
                        uuid.uuid4().hex * 2,
                        (f"{table}/{day}/manifest.json",),
                    ),
                )
    yield prefix, plan
    for cp in plan.companies:
        execute(mysql_root, f"DROP DATABASE IF EXISTS `{cp.company.schema}`")


def _read(plan: Plan, companies: int) -> tuple[list[freshness.TableFreshness], int]:
    shown = Plan(companies=plan.companies[:companies])
    conn = mysql_connect()
    try:
        cursor = CountingCursor(conn.cursor())
        rows = freshness.collect(shown, cursor, schedule="@daily", now=NOW, history=4)
        return rows, len(cursor.statements)
    finally:
        conn.close()


def test_the_freshness_page_reads_ledgers_in_batches_not_per_company(fleet: tuple[str, Plan]) -> None:
    _, plan = fleet
    _, few_statements = _read(plan, 2)
    many, many_statements = _read(plan, 7)
    # Two for the ledgers and (at most) two for the as-of tables, whatever the number of companies.
    assert few_statements == many_statements <= 4, (few_statements, many_statements)
    many = [r for r in many if r.table != "*"]  # each company's "all tables" row (report_as_of)
    assert len(many) == 7 * len(TABLES)
    # Each row holds exactly what its own ledger says: the newest `history` loads, newest first.
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        for row, cp in zip(many[:: len(TABLES)], plan.companies, strict=True):
            assert row.company == cp.company.alias
            own = ledger.recent(cursor, cp.company.schema, 4) if ledger.exists(cursor, cp.company.schema) else {}
            for table_row in many[many.index(row) : many.index(row) + len(TABLES)]:
                assert table_row.loads == own.get(table_row.table, []), (cp.company.alias, table_row.table)
    finally:
        conn.close()
    by_key = {(r.company, r.table): r for r in many}
    assert [x.rows_loaded for x in by_key[("c6", "orders")].loads] == [605, 604, 603, 602]
    assert by_key[("c6", "events")].loads == [] and by_key[("c6", "events")].status == "red"
    assert by_key[("c7", "users")].loads == []


# --- metrics -----------------------------------------------------------------------------------------

_SEND = """
import sys
from report_pipeline.airflow.metrics import TableMetrics
import datetime as dt
for company in ("acme", "globex", "initech"):
    for table in ("users", "orders"):
        m = TableMetrics(company, table)
        m.extracted(10, 100, 50, 0.5)
        m.loaded(10, 100, 0.25, dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
        assert not m.failed
"""


def _metric_names(**metrics: str) -> set[str]:
    """The metric names a fresh process sends to a real StatsD listener (UDP) with these [metrics] options."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }
    )
    env.update({f"AIRFLOW__METRICS__{k.upper()}": v for k, v in metrics.items()})
    subprocess.run([sys.executable, "-c", _SEND], env=env, check=True, timeout=300)
    packets: list[str] = []
    try:
        while True:
            packets.extend(listener.recv(65536).decode().splitlines())
    except TimeoutError:
        pass
    finally:
        listener.close()
    # "airflow.report_pipeline.load.rows,company=acme,table=users:10|g": the name ends at "," or ":".
    # (Airflow sends metrics of its own too, e.g. airflow.serde.load_serializers.)
    names = {p.split(":", 1)[0].split(",", 1)[0] for p in packets}
    return {n for n in names if n.startswith("airflow.report_pipeline.")}


FIGURES = {
    "extract.rows", "extract.bytes", "extract.stored_bytes", "extract.duration",
    "load.rows", "load.bytes", "load.duration", "data_age",
}  # fmt: skip


def test_metric_names_are_one_per_kind_where_statsd_carries_tags() -> None:
    names = _metric_names(statsd_influxdb_enabled="True")
    assert names == {f"airflow.report_pipeline.{f}" for f in FIGURES}, sorted(names)


def test_plain_statsd_which_drops_tags_also_gets_the_per_table_names() -> None:
    names = _metric_names()
    assert {f"airflow.report_pipeline.{f}" for f in FIGURES} <= names
    assert "airflow.report_pipeline.globex.orders.load.rows" in names
    assert len(names) == len(FIGURES) * (1 + 3 * 2)


# --- rendered fields -----------------------------------------------------------------------------------


def test_the_load_task_stores_no_query_in_its_rendered_fields() -> None:
    """Airflow stores each task try's rendered template fields; the load's hold the extract's small
    XCom and connection ids, not the table's query (shown by the extract, which runs it)."""
    from report_pipeline.airflow.operators import ReportMySqlToS3Operator, ReportS3ToMySqlOperator

    assert "sql" in ReportMySqlToS3Operator.template_fields
    assert "sql" not in ReportS3ToMySqlOperator.template_fields
    assert json.dumps(list(ReportS3ToMySqlOperator.template_fields)) == '["extracted", "target_conn_id", "s3_conn_id"]'
