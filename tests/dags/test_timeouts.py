"""Issue 11.1: every task has an execution_timeout and the DAG a dagrun_timeout, from the settings."""

from __future__ import annotations

import datetime as dt


def _dag(env: dict[str, str]):
    from report_pipeline.airflow.factory import build_dag
    from report_pipeline.config import AdminRows, build_plan
    from report_pipeline.settings import Settings

    settings = Settings.from_env(env)
    rows = AdminRows(
        companies=[{"id": 1, "company_id": 1, "status": 1, "alias": "solo"}],
        tables=[
            {
                "id": 1,
                "name": "users",
                "query_select": "SELECT id FROM users",
                "params_select": "",
                "query_insert": "REPLACE INTO users (id) VALUES",
                "status": 1,
                "company_id": 1,
                "all_companies": 1,
            },
            {
                "id": 2,
                "name": "big",
                "query_select": "SELECT id FROM big",
                "params_select": "",
                "query_insert": "REPLACE INTO big (id) VALUES",
                "status": 1,
                "company_id": 1,
                "all_companies": 1,
                "chunk_column": "id",
                "chunk_rows": 1000,
            },
            {
                "id": 3,
                "name": "broken",
                "query_select": "DELETE FROM x",
                "params_select": "",
                "query_insert": "REPLACE INTO broken (id) VALUES",
                "status": 1,
                "company_id": 1,
            },
        ],
    )
    return build_dag(build_plan(rows, settings), settings)


def test_every_task_and_the_run_are_bounded_by_default():
    dag = _dag({})
    assert dag.dagrun_timeout == dt.timedelta(hours=23)
    assert len(dag.tasks) >= 5
    assert {t.task_id: t.execution_timeout for t in dag.tasks} == {t.task_id: dt.timedelta(hours=3) for t in dag.tasks}


def test_the_bounds_come_from_the_settings():
    dag = _dag({"REPORTS_TASK_TIMEOUT": "900", "REPORTS_DAGRUN_TIMEOUT": "7200"})
    assert dag.dagrun_timeout == dt.timedelta(hours=2)
    assert {t.execution_timeout for t in dag.tasks} == {dt.timedelta(minutes=15)}
