"""A newcomer's first manual trigger is green (issue 21 item 7): a run of every company triggered through
the REST API with logical date = now (what the UI's Trigger button sends) ends ``success`` with every task
``success``, and each target holds its source window for today: exactly for the swap table, every row
of it for the upsert tables (which keep what earlier runs added).

The demo's source rows are generated around the set-up's day as well as around ``DEMO_DATE``
(``report_pipeline_demo.source_rows``); before, today's windows were empty and the swaps of globex and
umbrella refused to empty their tables: 16 of 18 tasks green, the run failed.

Runs on whatever stack is up: ``make test-airflow`` (LocalExecutor) or ``make test-airflow EXECUTOR=celery``;
tests/airflow_real/test_celery.py calls ``trigger_now_and_check`` on the Celery stack too.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from tests.airflow_real.conftest import assert_target_exact, loads_of_run, source_window, target_diff
from tests.airflow_real.test_real_airflow import (
    COMPANIES,
    DAG_ID,
    SWAP_TABLE,
    TABLES,
    Api,
    active_dag,
    api,
    iso,
    mysql,
)

pytestmark = pytest.mark.airflow_real
__all__ = ["active_dag", "api", "mysql"]  # the session fixtures this module uses


def trigger_now_and_check(api: Api, mysql: Any) -> dict[str, Any]:
    """Trigger every company at logical date = now, as a user would; the run and every task must be green."""
    api.settle()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = f"first_trigger__{uuid.uuid4().hex[:8]}"
    api.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": iso(now), "conf": {}})
    run = api.wait_run(run_id)
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(run_id)}
    assert len(states) == len(COMPANIES) * len(TABLES) * 2, states
    assert set(states.values()) == {"success"}, api.explain_run(run_id)
    cursor = mysql.cursor()
    for alias in COMPANIES:
        # The swap table holds exactly today's window; the upsert tables hold every row of it, exactly,
        # next to what earlier runs (the demo date's longer windows) left there, as upserts do.
        assert_target_exact(cursor, alias, SWAP_TABLE, now)
        for table in (t for t in TABLES if t != SWAP_TABLE):
            count, problems = target_diff(cursor, alias, table, *source_window(alias, table, now))
            assert count > 0 and [p for p in problems if "not in the source window" not in p] == [], (alias, table)
        assert {t: len(rows) for t, rows in loads_of_run(cursor, alias, run_id).items()} == dict.fromkeys(TABLES, 1)
    return run


def test_a_run_triggered_now_ends_green_with_every_task_green(api: Api, active_dag: dict[str, Any], mysql: Any) -> None:
    trigger_now_and_check(api, mysql)
