"""Retries that ride out a failover (issue 21 item 6): the target refuses every connection for 20 seconds
from the moment the load first reaches it, as during an Aurora failover; with the deployment's retry
settings (REPORTS_RETRIES / REPORTS_RETRY_DELAY / REPORTS_RETRY_BACKOFF / REPORTS_RETRY_JITTER) the load
task is retried by Airflow itself (``dag.test()`` honours retry policies) until the target is back, and
the target ends exact. The seed's default (1 + 2 + 4 s) would have given up after 7 s.

The outage is a ``FaultProxy`` in front of the real local MariaDB: its listening socket closed for 20 s
(connections refused), armed to start at the first byte the target sends the load (its greeting).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid

import pytest
from tests.conftest import execute, mysql_connect, s3_client
from tests.faults.proxy import FaultProxy
from tests.faults.test_faults import run_dag_test

from report_pipeline.airflow.retry import SeedRetrier, retry_arguments
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 20.0
RETRY_ENV = {
    "REPORTS_RETRIES": "4",
    "REPORTS_RETRY_DELAY": "3",
    "REPORTS_RETRY_BACKOFF": "2",
    "REPORTS_RETRY_JITTER": "0.3",
}


def test_the_seed_default_is_exact_and_gives_up_before_a_failover_ends() -> None:
    default = retry_arguments(Settings.from_env({}))
    assert default["retries"] == 3
    policy = default["retry_policy"]
    waits = [policy.delay(n).total_seconds() for n in (1, 2, 3)]
    assert waits == [1.0, 2.0, 4.0] and sum(waits) < OUTAGE_SECONDS
    longer = retry_arguments(Settings.from_env(RETRY_ENV))
    assert longer["retries"] == 4
    jittered = longer["retry_policy"]
    for _ in range(50):  # jitter only lengthens: never below 3, 6, 12 s, never above 30 % more
        waits = [jittered.delay(n).total_seconds() for n in (1, 2, 3)]
        assert all(base <= w <= base * 1.3 for w, base in zip(waits, (3, 6, 12), strict=True)), waits
    assert SeedRetrier(5, 2, max_delay_seconds=60).base_delay(6) == 60


def test_a_20_second_target_outage_is_survived_with_the_longer_retry_settings(monkeypatch, tmp_path) -> None:
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    from report_pipeline.airflow.factory import build_dag
    from report_pipeline.config import AdminRows, build_plan

    for name, value in RETRY_ENV.items():
        monkeypatch.setenv(name, value)
    alias = f"rto{uuid.uuid4().hex[:10]}"
    source = f"rto_src_{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(
        {**RETRY_ENV, "REPORTS_SCHEDULE": "none", "REPORTS_S3_BUCKET_TEMPLATE": "rp-test-{alias}"}
    )
    rows = AdminRows(
        companies=[{"id": 1, "company_id": 1, "status": 1, "alias": alias}],
        tables=[
            {
                "id": 1,
                "name": "items",
                "query_select": "SELECT id, name FROM items",
                "params_select": "",
                "query_insert": "REPLACE INTO items (id, name) VALUES",
                "status": 1,
                "all_companies": 1,
            }
        ],
    )
    plan = build_plan(rows, settings)
    (company_plan,) = plan.companies
    bucket, target = company_plan.company.bucket, company_plan.company.schema
    dag = build_dag(plan, settings, dag_id=f"rp_outage_{alias}")
    root = mysql_connect()
    root.autocommit(True)
    ddl = "CREATE TABLE `{db}`.items (id INT NOT NULL PRIMARY KEY, name VARCHAR(32) NOT NULL)"
    execute(
        root, f"CREATE DATABASE `{source}`", f"CREATE DATABASE `{target}`", ddl.format(db=source), ddl.format(db=target)
    )
    cursor = root.cursor()
    cursor.executemany(f"INSERT INTO `{source}`.items VALUES (%s, %s)", [(n, f"item {n}") for n in range(1, 501)])
    port = int(os.environ["REPORTS_MYSQL_PORT"])
    try:
        with FaultProxy(port) as proxy:
            monkeypatch.setenv(
                "AIRFLOW_CONN_REPORTS_SOURCE_DB", f"mysql://reports:reports@127.0.0.1:{port}/{source}?charset=utf8mb4"
            )
            monkeypatch.setenv(
                "AIRFLOW_CONN_REPORTS_TARGET_DB",
                json.dumps(
                    {
                        "conn_type": "mysql",
                        "host": "127.0.0.1",
                        "port": proxy.port,
                        "login": "reports",
                        "password": "reports",
                        "extra": {"charset": "utf8mb4", "local_infile": True},
                    }
                ),
            )
            # The target's greeting to the load's first connection starts a 20 s outage.
            restored: list[dt.datetime] = []
            restore = proxy.restore
            proxy.restore = lambda: (restored.append(dt.datetime.now(dt.UTC)), restore())[-1]  # type: ignore[method-assign]
            proxy.cut_after(1, "down", restore_after=OUTAGE_SECONDS)
            run = run_dag_test(dag, tmp_path)
        assert proxy.stats.cuts == 1, proxy.stats
        assert run.state == DagRunState.SUCCESS
        with create_session() as session:
            failed_tries = sorted(
                (h.try_number, h.start_date, h.end_date)
                for h in session.query(TaskInstanceHistory).filter(
                    TaskInstanceHistory.dag_id == dag.dag_id,
                    TaskInstanceHistory.run_id == run.run_id,
                    TaskInstanceHistory.task_id.like("%s3_to_mysql"),
                )
                if h.state == TaskInstanceState.FAILED
            )
            (load,) = [ti for ti in run.get_task_instances(session=session) if ti.task_id.endswith("s3_to_mysql")]
            final = (load.try_number, load.state, load.end_date)
        # Several tries failed during the outage; the last one, after the target was back, succeeded.
        assert len(failed_tries) >= 2, failed_tries
        assert final[1] == TaskInstanceState.SUCCESS and final[0] == len(failed_tries) + 1
        assert len(restored) == 1 and all(end <= restored[0] for _, _, end in failed_tries), (restored, failed_tries)
        assert final[2] >= restored[0]
        cursor.execute(f"SELECT id, name FROM `{target}`.items ORDER BY id")
        loaded = list(cursor.fetchall())
        cursor.execute(f"SELECT id, name FROM `{source}`.items ORDER BY id")
        assert loaded == list(cursor.fetchall()) and len(loaded) == 500
    finally:
        from airflow.api.common.delete_dag import delete_dag

        with contextlib.suppress(Exception):
            delete_dag(dag.dag_id, keep_records_in_log=False)
        execute(root, f"DROP DATABASE IF EXISTS `{source}`", f"DROP DATABASE IF EXISTS `{target}`")
        root.close()
        s3 = s3_client()
        with contextlib.suppress(Exception):
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
            s3.delete_bucket(Bucket=bucket)
