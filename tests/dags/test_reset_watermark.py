"""Issue 12 item 2 through Airflow itself: a manual run with ``reset_watermark=true`` reloads an
incremental table whose target was tampered with and whose watermark is ahead of the source.

Scratch admin, source and target schemas, a scratch bucket and a scratch DAG id (built by the same
factory as ``populate_report_databases``), so the shared demo data and DAG are never touched. The DAG
runs with ``dag.test()``, its params given as the trigger form gives them (``run_conf``).
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
DAG_FILE = '''"""Scratch DAG for tests/dags/test_reset_watermark.py."""
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
    names = {"alias": f"rpw{tag}", "admin": f"t_adm_{tag}", "source": f"t_src_{tag}", "dag": f"rp_test_reset_{tag}"}
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
            "load_mode, cursor_column, cursor_overlap) VALUES (5, 'orders', 1, "
            f"'SELECT {COLUMNS} FROM orders WHERE company = %(company_id)s', '', "
            f"'INSERT INTO orders ({COLUMNS}) VALUES', '', 'incremental', 'updated_at', 0)",
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
        (dags / "rp_scratch_reset.py").write_text(DAG_FILE)
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


def test_a_manual_run_with_reset_watermark_reloads_a_tampered_target_exactly(scratch: dict[str, str]):
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.state import DagRunState

    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert bag.import_errors == {}
    dag = bag.dags[scratch["dag"]]
    # Registered (serialized) as the DAG processor would, so dag.test() can create its runs whatever ran before.
    sync_bag_to_db(bag, "dags-folder", None)
    alias, source = scratch["alias"], scratch["source"]
    source_sql = f"SELECT {COLUMNS} FROM {source}.orders WHERE company = 7 ORDER BY id"
    target_sql = f"SELECT {COLUMNS} FROM {alias}.orders ORDER BY id"
    mark_sql = f"SELECT cursor_value, run_id FROM {alias}.report_watermarks WHERE table_name = 'orders'"

    first = dag.test(logical_date=FIRST)
    assert first.state == DagRunState.SUCCESS
    assert _rows(target_sql) == _rows(source_sql) and len(_rows(source_sql)) == 240

    # The target is tampered with (a row changed, a row deleted) and its watermark is pushed
    # ahead of anything the source has; the source changes a row without moving its cursor (a restore).
    execute(
        mysql_connect(alias),
        "UPDATE orders SET amount = 0, note = 'tampered' WHERE id = 3",
        "DELETE FROM orders WHERE id = 11",
        "UPDATE report_watermarks SET cursor_value = '2099-01-01 00:00:00.000000' WHERE table_name = 'orders'",
    )
    execute(mysql_connect(source), "UPDATE orders SET note = NULL, amount = 42.5 WHERE id = 12")

    # A scheduled run reads only rows after the (wrong) watermark: it cannot repair anything.
    scheduled = dag.test(logical_date=FIRST + dt.timedelta(days=1))
    assert scheduled.state == DagRunState.SUCCESS
    assert _rows(target_sql) != _rows(source_sql)
    assert _rows(mark_sql)[0][0] == "2099-01-01 00:00:00.000000"

    # The operator triggers a manual run with reset_watermark=true from the form.
    reset = dag.test(logical_date=FIRST + dt.timedelta(days=2), run_conf={"reset_watermark": True})
    assert reset.state == DagRunState.SUCCESS
    source_rows = _rows(source_sql)
    # Every column of every row, NULLs included: the tampered, the deleted and the source-changed rows
    # are right again.
    assert _rows(target_sql) == source_rows
    # The watermark was replaced (not kept at 2099) by the newest cursor the reload saw, by this run.
    newest = max(r[4] for r in source_rows)
    assert _rows(mark_sql) == [(f"{newest:%Y-%m-%d %H:%M:%S.%f}", reset.run_id)]
