"""Issue 20 item 7 through Airflow itself: a table row with ``reconcile_every_days`` gets a reconcile task
after its load, which runs on the days it is due (repairing) and skips on the others.

Scratch admin, source and target schemas, a scratch bucket and a scratch DAG id (built by the same
factory as ``populate_report_databases``), run with ``dag.test()``, as tests/dags/test_reset_watermark.py does.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect, mysql_url, s3_client

pytestmark = pytest.mark.integration

FIRST = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
COLUMNS = "id, company, amount, note, updated_at"
DDL = (
    "CREATE TABLE {db}.orders (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, amount DECIMAL(12,2) NOT NULL, "
    "note VARCHAR(40) NULL, updated_at DATETIME(6) NOT NULL, KEY (updated_at))"
)
DAG_FILE = '''"""Scratch DAG for tests/dags/test_reconcile_task.py."""
import os

from report_pipeline.airflow.factory import build_dag, current_plan
from report_pipeline.settings import Settings

settings = Settings.from_env()
plan, _ = current_plan(settings)
producer = build_dag(plan, settings, dag_id=os.environ["RP_TEST_PRODUCER"])
'''


def _rows(sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        conn.close()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mysql_root: Any) -> Iterator[dict[str, str]]:
    from report_pipeline.admin import init_admin

    tag = uuid.uuid4().hex[:8]
    names = {"alias": f"rpw{tag}", "admin": f"t_adm_{tag}", "source": f"t_src_{tag}", "dag": f"rp_test_rec_{tag}"}
    names["bucket"] = f"rp-dagtest-{names['alias']}"
    for db in (names["admin"], names["source"], names["alias"]):
        execute(mysql_root, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    try:
        admin = mysql_connect(names["admin"])
        init_admin(admin)
        execute(
            admin,
            f"INSERT INTO companies (id, company_id, status, alias) VALUES (1, 7, 1, '{names['alias']}')",
            "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, "
            "load_mode, cursor_column, cursor_overlap, delete_detection, reconcile_every_days) VALUES (5, 'orders', 1, "
            f"'SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s', '', "
            f"'INSERT INTO orders ({COLUMNS}) VALUES', '', 'incremental', 'updated_at', 0, 'keys', 2)",
        )
        admin.close()
        rows = ", ".join(
            f"({i}, {7 if i % 5 else 8}, {i}.25, {'NULL' if i % 7 == 0 else repr(f'n{i}')}, "
            f"'{T0 + dt.timedelta(minutes=i)}')"
            for i in range(1, 301)
        )
        execute(
            mysql_root,
            DDL.format(db=names["source"]),
            DDL.format(db=names["alias"]),
            f"INSERT INTO {names['source']}.orders VALUES {rows}",
        )
        dags = tmp_path / "dags"
        dags.mkdir()
        (dags / "rp_scratch_reconcile.py").write_text(DAG_FILE)
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", mysql_url(names["admin"]))
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", mysql_url(names["source"]))
        monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
        monkeypatch.setenv("REPORTS_S3_BUCKET_TEMPLATE", "rp-dagtest-{alias}")
        monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
        monkeypatch.setenv("RP_TEST_PRODUCER", names["dag"])
        yield names
    finally:
        for db in (names["admin"], names["source"], names["alias"]):
            execute(mysql_root, f"DROP DATABASE IF EXISTS `{db}`")
        _delete_bucket(names["bucket"])
        _delete_dag(names["dag"])


def _delete_bucket(name: str) -> None:
    s3 = s3_client()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - the bucket may never have been created
        pass


def _delete_dag(dag_id: str) -> None:
    from airflow.api.common.delete_dag import delete_dag

    try:
        delete_dag(dag_id)
    except Exception:  # noqa: BLE001 - never registered if the test failed early
        pass


def _states(run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id.split(".")[-1]: str(ti.state) for ti in run.get_task_instances(session=session)}


def test_the_scheduled_reconcile_runs_when_due_repairs_drift_and_skips_otherwise(scratch: dict[str, str]):
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.state import DagRunState

    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert bag.import_errors == {}
    dag = bag.dags[scratch["dag"]]
    alias, source = scratch["alias"], scratch["source"]
    group = f"company_{alias}"
    reconcile = dag.get_task(f"{group}.orders__reconcile")
    assert reconcile.upstream_task_ids == {f"{group}.orders__s3_to_mysql"} and reconcile.pool == "reports_source"
    assert reconcile.retries == 3
    sync_bag_to_db(bag, "dags-folder", None)
    source_sql = f"SELECT {COLUMNS} FROM {source}.orders WHERE company = 7 ORDER BY id"
    target_sql = f"SELECT {COLUMNS} FROM {alias}.orders ORDER BY id"
    log_sql = (
        f"SELECT logical_date, outcome, changed_keys, missing_keys, extra_keys, run_id FROM {alias}.report_reconciles"
    )

    # First run: nothing reconciled yet, so it is due; the load just made the target exact.
    first = dag.test(logical_date=FIRST)
    assert first.state == DagRunState.SUCCESS
    assert _states(first)["orders__reconcile"] == "success"
    assert _rows(target_sql) == _rows(source_sql)
    assert _rows(log_sql) == [(FIRST.replace(tzinfo=None), "match", 0, 0, 0, first.run_id)]

    # Drift no incremental load finds: a row changed in the target, one removed, one added.
    execute(
        mysql_connect(alias),
        "UPDATE orders SET amount = 0, note = NULL WHERE id = 3",
        "DELETE FROM orders WHERE id = 11",
        "INSERT INTO orders SELECT id + 1000, company, amount, note, updated_at FROM orders WHERE id = 12",
    )
    drifted = _rows(target_sql)

    # The next day it is not due (every 2 days): skipped, nothing changed.
    second = dag.test(logical_date=FIRST + dt.timedelta(days=1))
    assert second.state == DagRunState.SUCCESS
    assert _states(second)["orders__reconcile"] == "skipped"
    # (The load's delete detection removed the added row; the changed and the removed row are still wrong.)
    assert _rows(target_sql) == [r for r in drifted if r[0] != 1012] and len(_rows(log_sql)) == 1

    # Two days after the last one it is due: it names and repairs both, and the target is exact.
    third = dag.test(logical_date=FIRST + dt.timedelta(days=2))
    assert third.state == DagRunState.SUCCESS
    assert _states(third)["orders__reconcile"] == "success"
    assert _rows(target_sql) == _rows(source_sql)
    assert _rows(log_sql)[-1] == (
        (FIRST + dt.timedelta(days=2)).replace(tzinfo=None),
        "repaired",
        1,
        1,
        0,
        third.run_id,
    )
