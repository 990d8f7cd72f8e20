"""Issue 4 through Airflow itself: mapped chunk extracts, one load of all chunks, and the Asset event
that a downstream DAG (``dags/example_report_consumer.py``) is scheduled on.

Everything runs against scratch schemas, a scratch bucket and a scratch DAG folder, with DAG ids of
its own, so the shared demo data and the shared ``populate_report_databases`` DAG are never touched.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, mysql_url, s3_client

pytestmark = pytest.mark.integration

RUN_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
ITEMS = 1_000
CHUNK_ROWS = 250

DAG_FILE = '''"""Scratch DAGs for tests/dags/test_assets_and_chunks.py."""
import os

from example_report_consumer import build_consumer_dag
from report_pipeline.airflow.factory import build_dag, current_plan
from report_pipeline.settings import Settings

settings = Settings.from_env()
plan, _ = current_plan(settings)
producer = build_dag(plan, settings, dag_id=os.environ["RP_TEST_PRODUCER"])
consumer = build_consumer_dag(os.environ["RP_TEST_ALIAS"], "items", dag_id=os.environ["RP_TEST_CONSUMER"])
'''


def _import_consumer_module() -> Any:
    """The example consumer module, imported once so the scratch DAG file reuses it.

    Importing it inside the DAG file would also register its module-level ``acme`` consumer there.
    """
    if "example_report_consumer" not in sys.modules:
        path = REPO / "dags" / "example_report_consumer.py"
        spec = importlib.util.spec_from_file_location("example_report_consumer", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["example_report_consumer"] = module
        spec.loader.exec_module(module)
    return sys.modules["example_report_consumer"]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mysql_root: Any) -> Iterator[dict[str, str]]:
    """Scratch admin, source and target schemas, env pointing at them, and a scratch DAG folder."""
    from report_pipeline.admin import init_admin

    tag = uuid.uuid4().hex[:8]
    names = {
        "alias": f"rpa{tag}",
        "admin": f"t_adm_{tag}",
        "source": f"t_src_{tag}",
        "producer": f"rp_test_producer_{tag}",
        "consumer": f"rp_test_consumer_{tag}",
    }
    names["bucket"] = f"rp-dagtest-{names['alias']}"
    for db in (names["admin"], names["source"], names["alias"]):
        execute(mysql_root, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    try:
        admin = mysql_connect(names["admin"])
        init_admin(admin)
        execute(
            admin,
            f"INSERT INTO companies (id, company_id, status, alias) VALUES (1, 7, 1, '{names['alias']}')",
            # Chunked on id: 1000 rows / 250 per chunk -> 4 mapped extracts.
            "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, "
            "load_mode, chunk_column, chunk_rows) VALUES (1, 'items', 1, "
            "'SELECT id, company, amount, note FROM items WHERE company = %s', 'company[1]', "
            f"'REPLACE INTO items(id, company, amount, note) VALUES ', '', 'upsert', 'id', {CHUNK_ROWS})",
            "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, "
            "load_mode) VALUES (2, 'users', 1, 'SELECT id, username FROM users WHERE company = %(company_id)s', "
            "'', 'INSERT INTO users(id, username) VALUES', '', 'swap')",
        )
        admin.close()
        items_ddl = (
            "CREATE TABLE {db}.items (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, amount DECIMAL(10,2) NULL, "
            "note VARCHAR(32) NULL)"
        )
        users_ddl = "CREATE TABLE {db}.users (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, username VARCHAR(32))"
        source = mysql_connect(names["source"])  # the SEQUENCE engine's seq_* tables need a current schema
        execute(
            source,
            items_ddl.format(db=names["source"]),
            users_ddl.format(db=names["source"]),
            items_ddl.format(db=names["alias"]),
            f"CREATE TABLE {names['alias']}.users (id INT NOT NULL PRIMARY KEY, username VARCHAR(32))",
            # Company 7's ids are 1..1000 (every 13th note NULL); company 8's rows must stay behind.
            f"INSERT INTO {names['source']}.items SELECT seq, 7, seq / 4, IF(seq % 13 = 0, NULL, CONCAT('n', seq)) "
            "FROM seq_1_to_1000",
            f"INSERT INTO {names['source']}.items SELECT seq, 8, 1, 'other' FROM seq_1001_to_1100",
            f"INSERT INTO {names['source']}.users SELECT seq, IF(seq <= 30, 7, 8), CONCAT('u', seq) FROM seq_1_to_40",
        )
        source.close()
        dags = tmp_path / "dags"
        dags.mkdir()
        (dags / "rp_scratch_dags.py").write_text(DAG_FILE)
        _import_consumer_module()
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", mysql_url(names["admin"]))
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", mysql_url(names["source"]))
        monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
        monkeypatch.setenv("REPORTS_S3_BUCKET_TEMPLATE", "rp-dagtest-{alias}")
        monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
        monkeypatch.setenv("RP_TEST_PRODUCER", names["producer"])
        monkeypatch.setenv("RP_TEST_CONSUMER", names["consumer"])
        monkeypatch.setenv("RP_TEST_ALIAS", names["alias"])
        yield names
    finally:
        for db in (names["admin"], names["source"], names["alias"]):
            execute(mysql_root, f"DROP DATABASE IF EXISTS `{db}`")
        _delete_bucket(names["bucket"])
        _delete_dags(names["producer"], names["consumer"])


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


def _delete_dags(*dag_ids: str) -> None:
    from airflow.api.common.delete_dag import delete_dag

    for dag_id in dag_ids:
        try:
            delete_dag(dag_id)
        except Exception:  # noqa: BLE001 - never registered if the test failed early
            pass


def _dagbag(folder: str) -> Any:
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")


def _rows(sql: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect()
    cursor = conn.cursor()
    cursor.execute(sql)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


def test_chunked_run_maps_named_extracts_loads_everything_and_triggers_the_consumer(scratch):
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    from report_pipeline.airflow.factory import table_asset

    alias = scratch["alias"]
    bag = _dagbag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    producer = bag.dags[scratch["producer"]]
    assert scratch["consumer"] in bag.dags
    # Register both DAGs, then unpause the consumer as a user would: a paused DAG is never queued.
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        session.get(DagModel, scratch["consumer"]).is_paused = False

    started = time.monotonic()
    run = producer.test(logical_date=RUN_DATE)
    seconds = time.monotonic() - started
    assert run.state == DagRunState.SUCCESS

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == producer.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        extracts = sorted(
            (ti for ti in tis if ti.task_id == f"company_{alias}.items__mysql_to_s3"), key=lambda ti: ti.map_index
        )
        # The mapped extract: one task per chunk, each named after what it copies in the UI; the
        # first and last ranges are open, and NULLs have a chunk of their own.
        assert [ti.map_index for ti in extracts] == [0, 1, 2, 3, 4]
        assert [ti.rendered_map_index for ti in extracts] == [
            "id < 251",
            "id [251, 501)",
            "id [501, 751)",
            "id >= 751",
            "id IS NULL",
        ]
        assert {ti.state for ti in tis} == {TaskInstanceState.SUCCESS}

        events = session.execute(
            select(AssetModel.name, AssetEvent.extra, AssetEvent.source_run_id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name.in_([f"reports.{alias}.items", f"reports.{alias}.users"]))
        ).all()
        assert sorted(name for name, _, _ in events) == [f"reports.{alias}.items", f"reports.{alias}.users"]
        by_name = {name: (extra, source_run) for name, extra, source_run in events}
        items_extra, source_run = by_name[f"reports.{alias}.items"]
        assert source_run == run.run_id
        assert items_extra["rows"] == ITEMS and items_extra["schema"] == alias and not items_extra["skipped"]
        assert by_name[f"reports.{alias}.users"][0]["rows"] == 30

        # The consumer is scheduled on reports.<alias>.items: the event queued a run of it.
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.name == table_asset(alias, "items").name))
        queued = session.scalars(
            select(AssetDagRunQueue.target_dag_id).where(AssetDagRunQueue.asset_id == asset_id)
        ).all()
        assert queued == [scratch["consumer"]]

    # What a user checks: every row of company 7 exactly, nothing of company 8, one report_loads row.
    source_items = _rows(
        f"SELECT id, company, amount, note FROM {scratch['source']}.items WHERE company = 7 ORDER BY id"
    )
    assert len(source_items) == ITEMS
    assert _rows(f"SELECT id, company, amount, note FROM {alias}.items ORDER BY id") == source_items
    assert _rows(f"SELECT id, username FROM {alias}.users ORDER BY id") == [(i, f"u{i}") for i in range(1, 31)]
    loads = _rows(f"SELECT table_name, run_id, rows_loaded, load_mode FROM {alias}.report_loads ORDER BY table_name")
    assert loads == [("items", run.run_id, ITEMS, "upsert"), ("users", run.run_id, 30, "swap")]

    # The S3 side: one folder per chunk's extract attempt (chunk-0003-<extract id>), manifests beside
    # the parts, and the _SUCCESS marker of the load.
    keys = set(_bucket_keys(scratch["bucket"]))
    prefix = "items/2026-11-26T000000Z"
    manifests = sorted(k for k in keys if k.startswith(prefix) and k.endswith("/manifest.json"))
    assert [re.fullmatch(rf"{prefix}/chunk-(\d{{4}})-[0-9a-f]{{32}}/manifest\.json", k)[1] for k in manifests] == [
        f"{i:04d}" for i in range(5)
    ]
    assert {m.replace("manifest.json", "part-00000.csv.gz") for m in manifests} <= keys
    assert f"{prefix}/_SUCCESS" in keys
    assert len([k for k in keys if re.fullmatch(r"users/2026-11-26T000000Z/[0-9a-f]{32}/manifest\.json", k)]) == 1
    assert "users/2026-11-26T000000Z/_SUCCESS" in keys
    print(f"\ndag.test(): 4 mapped chunks + swap table, {ITEMS + 30} rows in {seconds:.1f} s")


def _bucket_keys(bucket: str) -> list[str]:
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", ())]


def test_the_example_consumer_is_scheduled_on_acme_users_by_name():
    from report_pipeline.airflow.factory import table_asset

    module = _import_consumer_module()
    assert module.dag.dag_id == "example_report_consumer"
    assert tuple(module.dag.timetable.asset_condition.objects) == (table_asset("acme", "users"),)


def _company_and_spec() -> tuple[Any, Any]:
    from report_pipeline.config import Company, TableSpec
    from report_pipeline.validation import InsertTarget

    company = Company(1, 1, 1, "acme", "reports-acme", "acme", 1, "default")
    spec = TableSpec(1, "users", "SELECT id FROM users", (), (), InsertTarget("users", ("id",), "replace"))
    return company, spec


@pytest.mark.parametrize(
    "item",
    [
        {"bucket": "reports-globex", "manifest_key": "users/2026-11-26T000000Z/manifest.json"},
        {"bucket": "reports-acme", "manifest_key": "orders/2026-11-26T000000Z/manifest.json"},
        {"bucket": "reports-acme", "manifest_key": "users/2026-11-25T000000Z/manifest.json"},
    ],
    ids=["other-company-bucket", "other-table", "other-date"],
)
def test_the_load_refuses_a_manifest_of_another_company_table_or_date(item):
    from airflow.sdk.exceptions import AirflowFailException

    from report_pipeline.airflow.operators import ReportS3ToMySqlOperator
    from report_pipeline.settings import Settings

    company, spec = _company_and_spec()
    load = ReportS3ToMySqlOperator(task_id="load", company=company, spec=spec, settings=Settings(), extracted=item)
    context = {"params": {}, "logical_date": RUN_DATE, "run_id": "manual__x"}
    with pytest.raises(AirflowFailException, match="refusing to load"):
        load.execute(context)


def test_the_load_refuses_an_xcom_without_the_extract_id_and_sha256_to_verify_it_by():
    from airflow.sdk.exceptions import AirflowFailException

    from report_pipeline.airflow.operators import ReportS3ToMySqlOperator
    from report_pipeline.settings import Settings

    company, spec = _company_and_spec()
    item = {"bucket": "reports-acme", "manifest_key": "users/2026-11-26T000000Z/manifest.json", "rows": 3}
    load = ReportS3ToMySqlOperator(task_id="load", company=company, spec=spec, settings=Settings(), extracted=item)
    context = {"params": {}, "logical_date": RUN_DATE, "run_id": "manual__x"}
    with pytest.raises(AirflowFailException) as refused:
        load.execute(context)
    assert str(refused.value) == (
        "company 'acme' table 'users' (tables row id=1): refusing to load "
        "s3://reports-acme/users/2026-11-26T000000Z/manifest.json: the extract's XCom carries no extract id and "
        "sha256 to verify it by; re-run the extract (clear its task)"
    )


def test_a_chunk_plan_refused_for_its_admin_row_fails_at_once_without_retries(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from report_pipeline import tasks
    from report_pipeline.airflow.operators import ReportChunkPlanOperator
    from report_pipeline.errors import ConfigError
    from report_pipeline.settings import Settings

    company, spec = _company_and_spec()
    message = "company 'acme' table 'users' (tables row id=1): chunk column 'code' is VARCHAR, not an integer type"

    def refuse(*_: Any, **__: Any) -> None:
        raise ConfigError(message)

    monkeypatch.setattr(tasks, "plan_table_chunks", refuse)
    plan = ReportChunkPlanOperator(task_id="plan", company=company, spec=spec, settings=Settings())
    with pytest.raises(AirflowFailException, match=r"^company 'acme' table 'users' \(tables row id=1\): chunk column"):
        plan.execute({"params": {}, "logical_date": RUN_DATE, "run_id": "manual__x"})


def test_run_params_select_by_exact_name_and_runs_without_a_logical_date_use_run_after():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException

    from report_pipeline.airflow.operators import _selected, logical_date_of
    from report_pipeline.airflow.params import run_options

    company, spec = _company_and_spec()
    _selected(run_options({"params": {"companies": ["acme"], "tables": []}}), company, spec)
    _selected(run_options({"params": {"companies": "globex, acme"}}), company, spec)  # a hand-written conf string
    with pytest.raises(AirflowSkipException):
        _selected(run_options({"params": {"companies": "xacme"}}), company, spec)  # no substring matches
    with pytest.raises(AirflowSkipException):
        _selected(run_options({"params": {"tables": ["orders"]}}), company, spec)
    after = dt.datetime(2026, 11, 27, 13, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert logical_date_of({"dag_run": SimpleNamespace(run_after=after)}) == dt.datetime(
        2026, 11, 27, 11, 5, 7, tzinfo=dt.UTC
    )
    assert logical_date_of({"logical_date": RUN_DATE, "dag_run": SimpleNamespace(run_after=after)}) == RUN_DATE
