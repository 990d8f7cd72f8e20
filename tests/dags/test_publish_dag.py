"""Issue 24 item 1 in the DAG: a company that publishes its day together gets a publish task after its swap
tables' loads, and a full ``dag.test()`` run makes them live through it (ledger, as-of) on the real servers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, mysql_connect

pytestmark = pytest.mark.integration

DAG_ID = "populate_report_databases"
DEMO_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def _rows(db: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql, args)
    found = sorted(cursor.fetchall())
    conn.close()
    return found


@pytest.fixture(scope="module")
def dagbag() -> Any:
    """The demo data, with acme publishing its day together (the admin column set the way an operator would)."""
    subprocess.run(["report-pipeline", "demo-setup"], check=True, cwd=REPO, capture_output=True)
    conn = mysql_connect("reports_admin")
    cursor = conn.cursor()
    cursor.execute("UPDATE companies SET publish_together = 1 WHERE alias = 'acme'")
    conn.commit()
    conn.close()
    Path(os.environ["REPORTS_SNAPSHOT_PATH"]).unlink(missing_ok=True)
    from airflow.dag_processing.dagbag import DagBag

    yield DagBag(dag_folder=str(REPO / "dags"))
    conn = mysql_connect("reports_admin")
    cursor = conn.cursor()
    cursor.execute("UPDATE companies SET publish_together = 0")
    conn.commit()
    conn.close()
    Path(os.environ["REPORTS_SNAPSHOT_PATH"]).unlink(missing_ok=True)


def test_the_publish_task_follows_the_swap_tables_loads_only(dagbag):
    dag = dagbag.dags[DAG_ID]
    publish = dag.get_task("company_acme.publish_day")
    # events is the demo's swap table; users and orders are upserts, which cannot join (they go live as they load).
    assert publish.upstream_task_ids == {"company_acme.events__s3_to_mysql"}
    assert publish.trigger_rule == "all_done"
    assert [a.name for a in publish.outlets] == ["reports.acme.events"]
    assert dag.get_task("company_acme.events__s3_to_mysql").outlets == []
    assert "company_globex.publish_day" not in dag.task_ids


def test_a_full_run_publishes_the_day_through_the_publish_task(dagbag, mysql_root):
    from airflow.utils.state import DagRunState, TaskInstanceState

    for table in ("users", "orders", "events", "report_loads"):
        mysql_root.cursor().execute(f"DELETE FROM acme.`{table}`")
    run = dagbag.dags[DAG_ID].test(logical_date=DEMO_DATE)
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["company_acme.publish_day"] == TaskInstanceState.SUCCESS
    since = (DEMO_DATE - dt.timedelta(days=60)).date().isoformat()
    assert _rows("acme", "SELECT id, kind, payload, happened_at FROM events") == _rows(
        "source",
        "SELECT id, kind, payload, happened_at FROM events WHERE company = 1 AND happened_at >= %s "
        "AND happened_at < %s",
        (since, DEMO_DATE.date().isoformat()),
    )
    loads = _rows("acme", "SELECT table_name, run_id FROM report_loads")
    assert loads == [("events", run.run_id), ("orders", run.run_id), ("users", run.run_id)]
    as_of = dict(_rows("acme", "SELECT table_name, data_as_of FROM report_as_of"))
    # events is bounded by the run's window (date_to): its data is as of the logical day's start.
    assert as_of["events"] == DEMO_DATE.replace(tzinfo=None)
    assert as_of["*"] == min(as_of[t] for t in ("users", "orders", "events"))
    assert _rows("acme", "SELECT COUNT(*) FROM report_pending") == [(0,)]


def test_validate_says_which_tables_can_join(dagbag):
    out = subprocess.run(["report-pipeline", "validate", "--offline"], cwd=REPO, capture_output=True, text=True)
    assert (
        "note: company 'acme' (companies row id=1) publishes its day together: events go live at once, in one "
        "RENAME; users (upsert), orders (upsert) cannot join (an upsert or incremental load goes live in its own "
        "transaction, with no copy to hold back): they go live as they load"
    ) in out.stdout, out.stdout + out.stderr
    assert "company 'globex'" not in out.stdout
