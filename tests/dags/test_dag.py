"""DAG tests: import, structure per company, the seed's retries, and a full dag.test() run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import REPO, mysql_connect

pytestmark = pytest.mark.integration

DAG_ID = "populate_report_databases"
DEMO_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def demo_data() -> None:
    """The demo admin/source/target data, created through the CLI exactly as `make demo` does."""
    subprocess.run(["report-pipeline", "demo-setup"], check=True, cwd=REPO, capture_output=True)
    Path(os.environ["REPORTS_SNAPSHOT_PATH"]).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def dagbag(demo_data):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dags


def test_one_group_per_active_company_with_an_extract_and_a_load_per_active_table(dagbag):
    dag = dagbag.dags[DAG_ID]
    groups = sorted(g for g in dag.task_group.children if g.startswith("company_"))
    assert groups == ["company_acme", "company_globex", "company_umbrella"]  # initech is inactive
    for alias in ("acme", "globex", "umbrella"):
        ids = sorted(t for t in dag.task_ids if t.startswith(f"company_{alias}."))
        assert ids == sorted(
            f"company_{alias}.{table}__{step}"
            for table in ("users", "orders", "events")  # audit_log is inactive
            for step in ("mysql_to_s3", "s3_to_mysql")
        )
        load = dag.get_task(f"company_{alias}.users__s3_to_mysql")
        assert load.upstream_task_ids == {f"company_{alias}.users__mysql_to_s3"}
        assert load.pool == "reports_target"
        assert dag.get_task(f"company_{alias}.users__mysql_to_s3").pool == "reports_source"


def test_every_task_retries_like_the_seed_retrier_1_2_4_seconds(dagbag):
    from report_pipeline.airflow.retry import SeedRetrier

    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert isinstance(task.retry_policy, SeedRetrier), task.task_id
        delays = [
            task.retry_policy.evaluate(RuntimeError("x"), try_number=n, max_tries=4).retry_delay.total_seconds()
            for n in (1, 2, 3)
        ]
        assert delays == [1.0, 2.0, 4.0], task.task_id
        # Airflow's own exponential backoff (with its hash jitter) stays off.
        assert not task.retry_exponential_backoff


def _rows(db: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = mysql_connect(db)
    cursor = conn.cursor()
    cursor.execute(sql, args)
    rows = sorted(cursor.fetchall())
    conn.close()
    return rows


def test_full_run_copies_every_row_of_every_active_company_exactly(dagbag, mysql_root):
    from airflow.utils.state import DagRunState

    for alias in ("acme", "globex", "umbrella"):
        for table in ("users", "orders", "events", "report_loads"):
            mysql_root.cursor().execute(f"DELETE FROM `{alias}`.`{table}`")
    dag = dagbag.dags[DAG_ID]
    run = dag.test(logical_date=DEMO_DATE)
    assert run.state == DagRunState.SUCCESS
    windows = {"acme": (1, 60), "globex": (2, 7), "umbrella": (4, 1)}
    for alias, (company, days) in windows.items():
        since = (DEMO_DATE - dt.timedelta(days=days)).date().isoformat()
        assert _rows(alias, "SELECT id, username FROM users") == _rows(
            "source", "SELECT id, username FROM users WHERE company = %s", (company,)
        )
        expected_orders = _rows(
            "source",
            "SELECT id, user_id, amount, status, created_at FROM orders WHERE company = %s AND created_at >= %s",
            (company, since),
        )
        assert expected_orders, "the demo window must select some orders"
        assert _rows(alias, "SELECT id, user_id, amount, status, created_at FROM orders") == expected_orders
        assert _rows(alias, "SELECT id, kind, payload, happened_at FROM events") == _rows(
            "source",
            "SELECT id, kind, payload, happened_at FROM events WHERE company = %s AND happened_at >= %s "
            "AND happened_at < %s",
            (company, since, DEMO_DATE.date().isoformat()),
        )
        loads = _rows(alias, "SELECT table_name, run_id FROM report_loads")
        assert [t for t, _ in loads] == ["events", "orders", "users"]
        assert {r for _, r in loads} == {run.run_id}
    # Nothing of the inactive company was touched.
    assert _rows("information_schema", "SELECT SCHEMA_NAME FROM SCHEMATA WHERE SCHEMA_NAME = 'initech'") == []
