"""REPORTS_DAG_SHARDS through Airflow: a dags folder of shard files, what each DAG holds, a worker's
parse of one shard, the shared snapshot, and a real run through one shard DAG.

Scratch snapshot, schemas, buckets and dags folder; the shared demo data is not touched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, s3_client

pytestmark = pytest.mark.integration

CLOSED_PORT_ADMIN = "mysql://reports:reports@127.0.0.1:1/nowhere?connect_timeout=2"
RUN_DATE = dt.datetime(2026, 9, 14, tzinfo=dt.UTC)
COMPANIES = 60
SHARDS = 4


def _rows(aliases: list[str], broken_company_rows: int = 0) -> Any:
    from report_pipeline.config import AdminRows

    companies = [{"id": n, "company_id": n, "status": 1, "alias": a} for n, a in enumerate(aliases, start=1)]
    companies += [
        {"id": 900 + n, "company_id": 900 + n, "status": 1, "alias": f"not an alias {n}"}
        for n in range(broken_company_rows)
    ]
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
        for n, name in ((1, "users"), (2, "orders"))
    ]
    # Not a SELECT: a broken table row, a failing task in every company's group.
    tables.append({**tables[0], "id": 3, "name": "refunds", "query_select": "DELETE FROM refunds"})
    return AdminRows(companies=companies, tables=tables)


@pytest.fixture
def shard_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A dags folder with the plain DAG file and 4 shard files, a warm snapshot of 60 companies (and two
    broken company rows), REPORTS_DAG_SHARDS=4, and an admin DB that cannot be reached."""
    from report_pipeline.config import build_plan
    from report_pipeline.settings import Settings
    from report_pipeline.shards import write_shard_files
    from report_pipeline.snapshot import write_snapshot

    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "populate_report_databases.py", dags)
    write_shard_files(dags, SHARDS)
    monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "admin_snapshot.json"))
    monkeypatch.setenv("REPORTS_DAG_SHARDS", str(SHARDS))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", CLOSED_PORT_ADMIN)
    settings = Settings.from_env()
    write_snapshot(settings.snapshot_path, settings, build_plan(_rows(_aliases(), 2), settings))
    yield dags


def _aliases() -> list[str]:
    return [f"sh{n:03d}" for n in range(COMPANIES)]


def _bag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def _groups(dag: Any) -> list[str]:
    return sorted(dag.task_group.children)


def test_each_shard_dag_holds_exactly_its_companies_and_together_they_hold_every_one_once(shard_folder):
    from report_pipeline.shards import shard_dag_id, shard_of

    bag = _bag(shard_folder)
    assert bag.import_errors == {}
    # The plain file builds nothing while sharding is on: no company is scheduled twice.
    assert sorted(bag.dags) == [shard_dag_id(k) for k in range(1, SHARDS + 1)]
    seen: list[str] = []
    for k in range(1, SHARDS + 1):
        dag = bag.dags[shard_dag_id(k)]
        mine = sorted(a for a in _aliases() if shard_of(a, SHARDS) == k)
        broken = sorted(f"company_{900 + n}" for n in range(2) if shard_of(f"company_{900 + n}", SHARDS) == k)
        assert mine, "60 companies leave no shard empty"
        assert _groups(dag) == sorted([f"company_{a}" for a in mine] + broken)
        for alias in mine:
            assert sorted(t for t in dag.task_ids if t.startswith(f"company_{alias}.")) == sorted(
                [f"company_{alias}.{t}__{step}" for t in ("users", "orders") for step in ("mysql_to_s3", "s3_to_mysql")]
                + [f"company_{alias}.refunds__invalid_config"]
            )
        # The trigger form offers only this shard's companies.
        assert dag.params.get_param("companies").schema["items"]["enum"] == mine
        assert dag.params.get_param("tables").schema["items"]["enum"] == ["orders", "users"]
        assert f"shard {k:02d} of {SHARDS:02d}" in dag.tags
        assert dag.schedule == "@daily" and dag.max_active_runs == 1
        seen += _groups(dag)
    assert sorted(seen) == sorted([f"company_{a}" for a in _aliases()] + ["company_900", "company_901"])
    assert len(seen) == len(set(seen))


def test_shard_files_of_another_count_fail_to_import_naming_the_setting(shard_folder, monkeypatch):
    from report_pipeline.shards import DAG_ID

    monkeypatch.setenv("REPORTS_DAG_SHARDS", "1")
    bag = _bag(shard_folder)
    # Sharding off: the plain file builds the one DAG, every shard file is a loud import error.
    assert list(bag.dags) == [DAG_ID]
    assert len(bag.dags[DAG_ID].task_group.children) == COMPANIES + 2
    assert len(bag.import_errors) == SHARDS
    assert all("REPORTS_DAG_SHARDS is off" in e and "write-dag-shards" in e for e in bag.import_errors.values())
    monkeypatch.setenv("REPORTS_DAG_SHARDS", "3")
    bag = _bag(shard_folder)
    assert list(bag.dags) == [] and len(bag.import_errors) == SHARDS


def test_a_worker_parsing_a_shard_file_builds_only_its_task_group(shard_folder, monkeypatch):
    from report_pipeline.shards import shard_dag_id, shard_of

    alias = _aliases()[7]
    k = shard_of(alias, SHARDS)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", shard_dag_id(k))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", f"company_{alias}.users__s3_to_mysql")
    bag = _bag(shard_folder / f"{shard_dag_id(k)}.py")
    assert bag.import_errors == {}
    assert _groups(bag.dags[shard_dag_id(k)]) == [f"company_{alias}"]


def test_the_shard_files_share_one_admin_read_per_ttl(shard_folder, monkeypatch):
    from report_pipeline.airflow import factory
    from report_pipeline.settings import Settings
    from report_pipeline.snapshot import expire_snapshot

    expire_snapshot(Settings.from_env().snapshot_path)
    reads: list[int] = []

    def fetch(settings: Any) -> Any:
        reads.append(1)
        return _rows(_aliases(), 2)

    monkeypatch.setattr(factory, "_fetch_admin_rows", fetch)
    bag = _bag(shard_folder)
    assert bag.import_errors == {} and len(bag.dags) == SHARDS
    assert reads == [1]


def test_the_load_tasks_outlet_is_the_public_table_asset():
    import attrs

    from report_pipeline.airflow.factory import _load_outlet, table_asset

    fast, public = _load_outlet("acme", "users"), table_asset("acme", "users")
    assert fast == public
    assert attrs.asdict(fast) == attrs.asdict(public)
    assert hash(fast) == hash(public)


# --- a real run through one shard DAG ---------------------------------------------------------------


def _url(db: str) -> str:
    return f"mysql://reports:reports@127.0.0.1:{os.environ['REPORTS_MYSQL_PORT']}/{db}?charset=utf8mb4"


def _drop_bucket(name: str) -> None:
    s3 = s3_client()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - the bucket may never have been created
        pass


@pytest.fixture
def two_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mysql_root: Any) -> Iterator[dict[str, Any]]:
    """Scratch admin + source, and four onboarded companies, two in each of 2 shards."""
    from report_pipeline import onboard
    from report_pipeline.admin import init_admin
    from report_pipeline.config import build_table
    from report_pipeline.settings import Settings
    from report_pipeline.shards import shard_dag_id, shard_of, write_shard_files

    tag = uuid.uuid4().hex[:6]
    by_shard: dict[int, list[str]] = {1: [], 2: []}
    n = 0
    while min(len(v) for v in by_shard.values()) < 2:
        alias = f"rs{tag}{n}"
        if len(by_shard[shard_of(alias, 2)]) < 2:
            by_shard[shard_of(alias, 2)].append(alias)
        n += 1
    aliases = by_shard[1] + by_shard[2]
    admin_db, source_db = f"rs_adm_{tag}", f"rs_src_{tag}"
    for db in (admin_db, source_db):
        execute(mysql_root, f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", _url(admin_db))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", _url(source_db))
    monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "admin_snapshot.json"))
    monkeypatch.setenv("REPORTS_DAG_SHARDS", "2")
    monkeypatch.setenv("REPORTS_S3_BUCKET_TEMPLATE", "rp-shardtest-{alias}")
    # dag.test() parses the dags-folder bundle: a scratch one, holding the plain file and 2 shard files.
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "populate_report_databases.py", dags)
    write_shard_files(dags, 2)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    s3 = s3_client()
    try:
        source = mysql_connect(source_db)
        execute(
            source,
            "CREATE TABLE users (id INT NOT NULL PRIMARY KEY, company INT NOT NULL, username VARCHAR(32) NULL, "
            "score DECIMAL(8,2) NULL)",
            # Companies 1..4 (the admin rows' company_id), and company 99 whose rows must stay behind.
            "INSERT INTO users SELECT seq, seq % 5, IF(seq % 7 = 0, NULL, CONCAT('u', seq)), seq / 3 FROM seq_1_to_500",
            "UPDATE users SET company = 99 WHERE company = 0",
        )
        admin = mysql_connect(admin_db)
        init_admin(admin)
        cur = admin.cursor()
        cur.executemany(
            "INSERT INTO companies (id, company_id, status, alias) VALUES (%s, %s, 1, %s)",
            [(i, i, a) for i, a in enumerate(aliases, start=1)],
        )
        cur.execute(
            "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, "
            "load_mode) VALUES (1, 'users', 1, 'SELECT id, username, score FROM users WHERE company = %s', "
            "'company[1]', 'REPLACE INTO users(id, username, score) VALUES ', '', 'upsert')"
        )
        admin.commit()
        cur.execute("SELECT * FROM `tables` WHERE id = 1")
        names = [d[0] for d in cur.description]
        spec = build_table(dict(zip(names, cur.fetchone(), strict=True)))
        target = mysql_connect()
        for company_id, alias in enumerate(aliases, start=1):
            onboard.onboard(
                admin=admin,
                source=source,
                target=target,
                s3=s3,
                settings=Settings.from_env(),
                company_id=company_id,
                alias=alias,
                tables=[spec],
            )
        for conn in (source, admin, target):
            conn.close()
        yield {"by_shard": by_shard, "aliases": aliases, "source": source_db, "dags": dags}
    finally:
        _delete_dags(shard_dag_id(1), shard_dag_id(2))
        for db in (admin_db, source_db, *aliases):
            execute(mysql_root, f"DROP DATABASE IF EXISTS `{db}`")
        for alias in aliases:
            _drop_bucket(f"rp-shardtest-{alias}")


def _delete_dags(*dag_ids: str) -> None:
    from airflow.api.common.delete_dag import delete_dag

    for dag_id in dag_ids:
        try:
            delete_dag(dag_id)
        except Exception:  # noqa: BLE001 - never registered if the test failed early
            pass


def _select(db: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = mysql_connect(db)
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = sorted(cur.fetchall())
    conn.close()
    return rows


def test_a_run_of_one_shard_dag_copies_its_companies_exactly_and_leaves_the_other_shards_alone(two_shards):
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.state import DagRunState

    folder = str(two_shards["dags"])
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["populate_report_databases_shard_01", "populate_report_databases_shard_02"]
    dag = bag.dags["populate_report_databases_shard_02"]
    # Registered from the scratch folder (dag.test() parses the bundle path its process first read).
    sync_bag_to_db(bag, "dags-folder", None)
    assert _groups(dag) == sorted(f"company_{a}" for a in two_shards["by_shard"][2])
    run = dag.test(logical_date=RUN_DATE)
    assert run.state == DagRunState.SUCCESS
    for company_id, alias in enumerate(two_shards["aliases"], start=1):
        loaded = _select(alias, "SELECT id, username, score FROM users")
        if alias in two_shards["by_shard"][2]:
            expected = _select(
                two_shards["source"], "SELECT id, username, score FROM users WHERE company = %s", (company_id,)
            )
            assert len(expected) == 100
            assert loaded == expected
            assert _select(alias, "SELECT table_name, run_id FROM report_loads") == [("users", run.run_id)]
        else:
            # Shard 1's companies are another DAG's: this run did not touch them.
            assert loaded == []
            assert _select(alias, "SELECT table_name FROM report_loads") == []
    # The freshness page reads the task instances of every shard DAG: this run's load durations.
    from report_pipeline import freshness
    from report_pipeline.airflow.factory import current_plan
    from report_pipeline.airflow.freshness_app import _task_facts
    from report_pipeline.settings import Settings
    from report_pipeline.shards import dag_ids

    settings = Settings.from_env()
    plan, _ = current_plan(settings)
    conn = mysql_connect()
    rows = freshness.collect(plan, conn.cursor(), schedule=None, now=dt.datetime.now(dt.UTC))
    conn.close()
    _task_facts(rows, "http://airflow.example", dag_ids(settings.dag_shards))
    timed = {r.company for r in rows if run.run_id in r.durations}
    assert timed == set(two_shards["by_shard"][2])


def test_sharding_on_without_the_shard_files_is_an_import_error_not_an_empty_dags_folder(shard_folder):
    for path in shard_folder.glob("populate_report_databases_shard_0[34].py"):
        path.unlink()
    bag = _bag(shard_folder)
    assert sorted(bag.dags) == ["populate_report_databases_shard_01", "populate_report_databases_shard_02"]
    ((file, error),) = bag.import_errors.items()
    assert file.endswith("populate_report_databases.py")
    assert "lacks populate_report_databases_shard_03.py, populate_report_databases_shard_04.py" in error
    assert "report-pipeline write-dag-shards" in error
