"""The DAG file against its admin config (issue 5): parsing from the snapshot when the admin DB is down,
the clear import error when there is no snapshot, worker parses under the same TTL (issue 21), a
bad row that fails only its own task in a real run, and the manual-run params.

Everything runs against a scratch admin schema, a scratch source schema and two scratch companies
(targets and buckets of their own), so other tests using the shared demo schemas are not disturbed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, execute, mysql_connect, s3_client

pytestmark = pytest.mark.integration

DAG_ID = "populate_report_databases"
DAG_FILE = REPO / "dags" / "populate_report_databases.py"
# Dates of their own, so these runs never clear or reuse the demo runs' task instances (2026-11-26).
BAD_ROW_DATE = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
PARAMS_DATE = dt.datetime(2026, 10, 6, tzinfo=dt.UTC)
CLOSED_PORT_ADMIN = "mysql://reports:reports@127.0.0.1:1/nowhere?connect_timeout=2"

SOURCE_DDL = (
    "CREATE TABLE users (id INT UNSIGNED NOT NULL PRIMARY KEY, company INT NOT NULL, "
    "username VARCHAR(64) NOT NULL, note VARCHAR(32) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE orders (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, company INT NOT NULL, "
    "amount DECIMAL(12,2) NOT NULL, created_at DATETIME NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
)
BROKEN_ROW_ID = 3


@dataclass(frozen=True)
class World:
    """The scratch admin/source/target set-up of this module."""

    admin: str
    source: str
    a: str  # alias of company A (company_id 51, look-back 3 days)
    b: str  # alias of company B (company_id 52, look-back 2 days)
    snapshot: Path
    env: dict[str, str]


def _source_rows(company: int) -> tuple[list[tuple], list[tuple]]:
    users = [(company * 100 + n, company, f"user-{company}-{n}", None) for n in range(1, 6)]
    base = dt.datetime(2026, 10, 1)
    orders = [
        (company * 1000 + n, company, f"{n * 10 + company}.25", base + dt.timedelta(hours=11 * n)) for n in range(1, 13)
    ]
    return users, orders


def _admin_rows(conn: Any, a: str, b: str) -> None:
    from report_pipeline.admin import init_admin

    init_admin(conn)
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO companies (id, company_id, status, alias) VALUES (%s, %s, %s, %s)",
        [(1, 51, 1, a), (2, 52, 1, b), (3, 53, 0, f"{a}off")],
    )
    cur.executemany(
        "INSERT INTO `tables` (id, name, status, query_select, params_select, query_insert, params_insert, load_mode) "
        "VALUES (%s, %s, 1, %s, %s, %s, '', %s)",
        [
            (
                1,
                "users",
                "SELECT id, username FROM users WHERE company = %s",
                "company[1]",
                "REPLACE INTO users(id, username) VALUES ",
                "upsert",
            ),
            (
                2,
                "orders",
                "SELECT id, amount, created_at FROM orders WHERE company = %(company_id)s "
                "AND created_at >= %(date_from)s AND created_at < %(date_to)s",
                "",
                "INSERT INTO orders(id, amount, created_at) VALUES",
                "upsert",
            ),
            # Not a SELECT: must fail only its own task, naming this row.
            (
                BROKEN_ROW_ID,
                "refunds",
                "DELETE FROM orders WHERE company = %s",
                "company[1]",
                "REPLACE INTO refunds(id) VALUES",
                "upsert",
            ),
        ],
    )
    cur.execute("SELECT id FROM configurations WHERE name = 'date Y-M-D'")
    config_id = cur.fetchone()[0]
    cur.executemany(
        "INSERT INTO companies_configurations (retail_id, configuration_id, configuration_value) VALUES (%s, %s, %s)",
        [(51, config_id, "3"), (52, config_id, "2")],
    )
    conn.commit()


def _drop_bucket(s3: Any, name: str) -> None:
    try:
        while True:
            objects = s3.list_objects_v2(Bucket=name).get("Contents", [])
            if not objects:
                break
            s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - the bucket may never have been created
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Scratch admin + source + two onboarded companies; the process env points the DAG at them."""
    from report_pipeline import onboard
    from report_pipeline.config import build_table
    from report_pipeline.settings import Settings

    tag = uuid.uuid4().hex[:6]
    a, b = f"p5a{tag}", f"p5b{tag}"
    admin_db, source_db = f"rp5_admin_{tag}", f"rp5_src_{tag}"
    root = mysql_connect()
    root.autocommit(True)
    execute(root, *(f"CREATE DATABASE `{d}` CHARACTER SET utf8mb4" for d in (admin_db, source_db)))
    snapshot = tmp_path_factory.mktemp("snap") / "admin_snapshot.json"
    port = os.environ["REPORTS_MYSQL_PORT"]
    env = {
        "AIRFLOW_CONN_REPORTS_ADMIN_DB": f"mysql://reports:reports@127.0.0.1:{port}/{admin_db}?charset=utf8mb4",
        "AIRFLOW_CONN_REPORTS_SOURCE_DB": f"mysql://reports:reports@127.0.0.1:{port}/{source_db}?charset=utf8mb4",
        "REPORTS_SNAPSHOT_PATH": str(snapshot),
        "REPORTS_SNAPSHOT_TTL": "300",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    s3 = s3_client()
    try:
        src = mysql_connect(source_db)
        execute(src, *SOURCE_DDL)
        cur = src.cursor()
        for company in (51, 52, 99):
            users, orders = _source_rows(company)
            cur.executemany("INSERT INTO users VALUES (%s, %s, %s, %s)", users)
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s)", orders)
        src.commit()
        adm = mysql_connect(admin_db)
        _admin_rows(adm, a, b)
        tgt = mysql_connect()
        settings = Settings.from_env()
        cur = adm.cursor()
        cur.execute("SELECT * FROM `tables` WHERE id IN (1, 2) ORDER BY id")
        names = [d[0] for d in cur.description]
        specs = [build_table(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
        for alias, company_id in ((a, 51), (b, 52)):
            onboard.onboard(
                admin=adm,
                source=src,
                target=tgt,
                s3=s3,
                settings=settings,
                company_id=company_id,
                alias=alias,
                tables=specs,
            )
        for conn in (src, adm, tgt):
            conn.close()
        yield World(admin_db, source_db, a, b, snapshot, env)
    finally:
        patch.undo()
        execute(root, *(f"DROP DATABASE IF EXISTS `{d}`" for d in (admin_db, source_db, a, b)))
        root.close()
        for alias in (a, b):
            _drop_bucket(s3, f"reports-{alias}")


def _parse_in_subprocess(env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """Load the DAG file with DagBag in a fresh interpreter; return what it found and its log output."""
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAG_FILE)!r})\n"
        f"dag = bag.dags.get({DAG_ID!r})\n"
        "print('RESULT ' + json.dumps({\n"
        "    'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "    'groups': sorted(g for g in dag.task_group.children) if dag else [],\n"
        "    'tasks': sorted(dag.task_ids) if dag else [],\n"
        "}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :]), out.stdout + out.stderr


def _expected_tasks(world: World) -> list[str]:
    return sorted(
        [
            f"company_{alias}.{t}__{step}"
            for alias in (world.a, world.b)
            for t in ("users", "orders")
            for step in ("mysql_to_s3", "s3_to_mysql")
        ]
        + [f"company_{alias}.refunds__invalid_config" for alias in (world.a, world.b)]
    )


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def fresh_snapshot(world: World) -> Path:
    """A snapshot freshly built from the scratch admin DB (through the DAG's own code path)."""
    from report_pipeline.airflow.factory import current_plan
    from report_pipeline.settings import Settings
    from report_pipeline.snapshot import failure_marker

    world.snapshot.unlink(missing_ok=True)
    failure_marker(world.snapshot).unlink(missing_ok=True)
    _, source = current_plan(Settings.from_env())
    assert source.origin == "admin-db"
    return world.snapshot


def test_admin_db_down_the_dag_still_parses_with_every_group_and_warns(world, fresh_snapshot):
    _age(fresh_snapshot, 3600)  # past the TTL: the parse must try the admin DB, and fail
    found, output = _parse_in_subprocess({**world.env, "AIRFLOW_CONN_REPORTS_ADMIN_DB": CLOSED_PORT_ADMIN})
    assert found["errors"] == {}
    assert found["groups"] == sorted([f"company_{world.a}", f"company_{world.b}"])
    assert found["tasks"] == _expected_tasks(world)
    assert "admin database unreachable" in output
    assert "using the snapshot from" in output


def test_no_snapshot_and_admin_db_down_is_a_clear_import_error(world, tmp_path):
    missing = tmp_path / "never-written.json"
    found, _ = _parse_in_subprocess(
        {**world.env, "AIRFLOW_CONN_REPORTS_ADMIN_DB": CLOSED_PORT_ADMIN, "REPORTS_SNAPSHOT_PATH": str(missing)}
    )
    assert found["groups"] == []
    ((file, error),) = found["errors"].items()
    assert file.endswith("populate_report_databases.py")
    assert "cannot read the admin database" in error
    assert f"no usable snapshot at {missing}" in error
    assert not missing.exists()


def _worker_env(world: World, task: str) -> dict[str, str]:
    """What the task runner sets before it parses the file to run one task (read by get_parsing_context())."""
    return {**world.env, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": DAG_ID, "_AIRFLOW_PARSING_CONTEXT_TASK_ID": task}


def test_worker_parse_past_the_ttl_runs_the_admin_rows_as_they_are_now(world, fresh_snapshot):
    """Issue 21: a worker's parse follows the TTL like the DAG processor's, so an edited query reaches it."""
    from report_pipeline.snapshot import failure_marker

    adm = mysql_connect(world.admin)
    cur = adm.cursor()
    cur.execute("SELECT query_select FROM `tables` WHERE id = 1")
    (original,) = cur.fetchone()
    edited = original.replace("SELECT id, username FROM", "SELECT id, UPPER(username) AS username FROM")
    try:
        cur.execute("UPDATE `tables` SET query_select = %s WHERE id = 1", (edited,))
        adm.commit()
        _age(fresh_snapshot, 3600)
        task = f"company_{world.a}.users__mysql_to_s3"
        script_env = _worker_env(world, task)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from airflow.dag_processing.dagbag import DagBag\n"
                f"bag = DagBag(dag_folder={str(DAG_FILE)!r})\n"
                f"print('SQL', bag.dags[{DAG_ID!r}].get_task({task!r}).spec.query_select)\n",
            ],
            env={**os.environ, **script_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"SQL {edited}" in out.stdout.splitlines()
        # ... and the worker's snapshot now holds the edit, for the next task it parses.
        assert edited in fresh_snapshot.read_text() and time.time() - fresh_snapshot.stat().st_mtime < 60
        assert not failure_marker(fresh_snapshot).exists()
    finally:
        cur.execute("UPDATE `tables` SET query_select = %s WHERE id = 1", (original,))
        adm.commit()
        adm.close()


def test_worker_parse_past_the_ttl_with_the_admin_db_down_uses_the_snapshot_and_says_so(world, fresh_snapshot):
    from report_pipeline.snapshot import failure_marker

    _age(fresh_snapshot, 3600)
    task = f"company_{world.a}.users__mysql_to_s3"
    env = {**_worker_env(world, task), "AIRFLOW_CONN_REPORTS_ADMIN_DB": CLOSED_PORT_ADMIN}
    found, output = _parse_in_subprocess(env)
    assert found["errors"] == {}
    # The worker builds only the group of the task it runs (Airflow's parsing-context optimisation).
    assert found["tasks"] == [t for t in _expected_tasks(world) if t.startswith(f"company_{world.a}.")]
    # Stale only because the admin DB is unreachable, and logged as such; the next parse backs off.
    assert "admin database unreachable" in output and "using the snapshot from" in output
    assert failure_marker(fresh_snapshot).exists()


def test_200_companies_x_10_tables_from_a_warm_snapshot_give_200_groups_of_20_tasks(tmp_path, monkeypatch):
    from report_pipeline.airflow.factory import dag_from_admin
    from report_pipeline.config import AdminRows, build_plan
    from report_pipeline.settings import Settings
    from report_pipeline.snapshot import failure_marker, write_snapshot

    monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "big.json"))
    # Any admin access would fail: the DAG must come from the snapshot alone.
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", CLOSED_PORT_ADMIN)
    settings = Settings.from_env()
    rows = AdminRows(
        companies=[{"id": n, "company_id": n, "status": 1, "alias": f"c{n:03d}"} for n in range(1, 201)],
        tables=[
            {
                "id": n,
                "name": f"t{n:02d}",
                "status": 1,
                "query_select": f"SELECT id FROM t{n:02d} WHERE company = %s",
                "params_select": "company[1]",
                "query_insert": f"REPLACE INTO t{n:02d}(id) VALUES",
                "params_insert": "",
            }
            for n in range(1, 11)
        ],
    )
    write_snapshot(settings.snapshot_path, settings, build_plan(rows, settings))
    dag = dag_from_admin()
    # No refresh was attempted (it would have failed on the closed port and left this marker).
    assert not failure_marker(settings.snapshot_path).exists()
    groups = [g for g in dag.task_group.children if g.startswith("company_")]
    assert len(groups) == 200
    assert len(dag.tasks) == 200 * 10 * 2
    assert sorted(t for t in dag.task_ids if t.startswith("company_c137.")) == sorted(
        f"company_c137.t{n:02d}__{step}" for n in range(1, 11) for step in ("mysql_to_s3", "s3_to_mysql")
    )
    assert dag.params["companies"] == []
    assert len(dag.params.get_param("companies").schema["items"]["enum"]) == 200


def _rows(db: str, sql: str, args: tuple = ()) -> list[tuple]:
    conn = mysql_connect(db)
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = sorted(cur.fetchall())
    conn.close()
    return rows


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _in_window(world: World, company: int, days: int, logical: dt.datetime) -> list[tuple]:
    since = (logical - dt.timedelta(days=days)).replace(tzinfo=None)
    return _rows(
        world.source,
        "SELECT id, amount, created_at FROM orders WHERE company = %s AND created_at >= %s AND created_at < %s",
        (company, since, logical.replace(tzinfo=None)),
    )


def test_a_bad_row_fails_only_its_own_task_and_every_other_table_loads(world, fresh_snapshot, capfd):
    from report_pipeline.airflow.factory import dag_from_admin

    dag = dag_from_admin()
    run = dag.test(logical_date=BAD_ROW_DATE)
    states = _states(run)
    for alias in (world.a, world.b):
        assert states.pop(f"company_{alias}.refunds__invalid_config") == "failed"
        for table in ("users", "orders"):
            for step in ("mysql_to_s3", "s3_to_mysql"):
                assert states.pop(f"company_{alias}.{table}__{step}") == "success"
    assert states == {}
    # The failing task says which admin row to fix.
    for alias in (world.a, world.b):
        message = dag.get_task(f"company_{alias}.refunds__invalid_config").message
        assert message.startswith(f"admin tables row id={BROKEN_ROW_ID}: ")
        assert "SELECT" in message
    assert f"tables row id={BROKEN_ROW_ID}" in capfd.readouterr().out
    # The good tables of both companies moved exactly their rows and windows.
    for alias, company, days in ((world.a, 51, 3), (world.b, 52, 2)):
        assert _rows(alias, "SELECT id, username FROM users") == _rows(
            world.source, "SELECT id, username FROM users WHERE company = %s", (company,)
        )
        expected = _in_window(world, company, days, BAD_ROW_DATE)
        assert expected, "the window must select some orders"
        assert _rows(alias, "SELECT id, amount, created_at FROM orders") == expected
        assert _rows(alias, "SELECT table_name, run_id FROM report_loads") == [
            ("orders", run.run_id),
            ("users", run.run_id),
        ]


def test_params_form_lists_the_configured_aliases(world, fresh_snapshot):
    from airflow.serialization.serialized_objects import DagSerialization

    from report_pipeline.airflow.factory import dag_from_admin

    dag = dag_from_admin()
    companies = dag.params.get_param("companies").schema
    assert companies["type"] == "array"
    assert companies["items"]["enum"] == sorted([world.a, world.b])  # the inactive company is not offered
    assert dag.params.get_param("tables").schema["items"]["enum"] == ["orders", "users"]
    assert dag.params.get_param("load_mode").schema["enum"] == ["default", "upsert", "swap", "incremental"]
    assert dag.params["lookback_days"] is None
    # The form is what the serialized DAG carries to the UI.
    serialized = DagSerialization.to_dict(dag)["dag"]
    assert [name for name, _ in serialized["params"]] == [
        "companies",
        "tables",
        "load_mode",
        "allow_shrink",
        "reset_watermark",
        "lookback_days",
    ]
    assert dag.schedule == "@daily" and dag.catchup is False


def test_a_run_limited_by_params_skips_the_rest_and_applies_the_overrides(world, fresh_snapshot):
    from report_pipeline.airflow.factory import dag_from_admin

    dag = dag_from_admin()
    run = dag.test(
        logical_date=PARAMS_DATE,
        run_conf={"companies": [world.a], "tables": ["users", "orders"], "load_mode": "upsert", "lookback_days": 0},
    )
    states = _states(run)
    for table in ("users", "orders"):
        for step in ("mysql_to_s3", "s3_to_mysql"):
            assert states[f"company_{world.a}.{table}__{step}"] == "success"
            assert states[f"company_{world.b}.{table}__{step}"] == "skipped"
    # The bad row fails nobody's limited run: left out by company (B) and by table (A).
    assert states[f"company_{world.a}.refunds__invalid_config"] == "skipped"
    assert states[f"company_{world.b}.refunds__invalid_config"] == "skipped"
    assert run.state == "success"
    loads = _rows(
        world.a, "SELECT table_name, load_mode, rows_loaded FROM report_loads WHERE run_id = %s", (run.run_id,)
    )
    # lookback_days=0 makes the orders window empty. A load-mode override may only go toward what a
    # table's row permits (its own mode or upsert); tests/unit/test_config.py covers the refusal of swap.
    assert loads == [("orders", "upsert", 0), ("users", "upsert", 5)]
    assert _rows(world.b, "SELECT table_name FROM report_loads WHERE run_id = %s", (run.run_id,)) == []


@pytest.mark.parametrize(("configured", "expected"), [("", "@daily"), ("0 3 * * *", "0 3 * * *"), ("manual", None)])
def test_schedule_comes_from_configuration_and_catchup_stays_off(configured, expected):
    from report_pipeline.airflow.factory import build_dag
    from report_pipeline.config import AdminRows, build_plan
    from report_pipeline.settings import Settings

    settings = Settings.from_env({"REPORTS_SCHEDULE": configured} if configured else {})
    rows = AdminRows(companies=[{"id": 1, "company_id": 1, "status": 1, "alias": "solo"}], tables=[])
    dag = build_dag(build_plan(rows, settings), settings)
    assert dag.schedule == expected
    assert dag.catchup is False


def test_refreshing_an_unchanged_admin_config_gives_the_same_serialized_dag(world, fresh_snapshot):
    """A refresh every TTL must not make Airflow store a new DAG version when nothing changed."""
    from airflow.serialization.serialized_objects import DagSerialization

    from report_pipeline.airflow.factory import dag_from_admin
    from report_pipeline.snapshot import expire_snapshot

    first = DagSerialization.to_dict(dag_from_admin())
    expire_snapshot(fresh_snapshot)
    time.sleep(0.01)  # so a timestamp taken at the refresh would differ
    second = DagSerialization.to_dict(dag_from_admin())
    assert json.loads(fresh_snapshot.read_text())["plan"]["built_at"]  # the refresh did happen
    assert time.time() - fresh_snapshot.stat().st_mtime < 60
    assert second == first


def test_worker_whose_snapshot_lacks_its_task_refreshes_once_from_the_admin_db(world, fresh_snapshot, monkeypatch):
    """A worker with an old snapshot (e.g. another host, before a company was onboarded) still finds its task."""
    from report_pipeline.airflow.factory import dag_from_admin

    body = json.loads(fresh_snapshot.read_text())
    body["plan"]["companies"] = [c for c in body["plan"]["companies"] if c["company"]["alias"] == world.a]
    fresh_snapshot.write_text(json.dumps(body))
    _age(fresh_snapshot, 60)  # within the TTL: only the missing task makes this parse read the admin DB
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", DAG_ID)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", f"company_{world.b}.users__mysql_to_s3")
    dag = dag_from_admin()
    assert f"company_{world.b}.users__mysql_to_s3" in dag.task_ids
    assert [c["company"]["alias"] for c in json.loads(fresh_snapshot.read_text())["plan"]["companies"]] == [
        world.a,
        world.b,
    ]
    # A task the snapshot has, the snapshot expired and the admin DB down: the refresh fails, and the
    # snapshot serves (stale, logged) without being rewritten.
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", CLOSED_PORT_ADMIN)
    _age(fresh_snapshot, 3600)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", f"company_{world.a}.refunds__invalid_config")
    assert f"company_{world.a}.refunds__invalid_config" in dag_from_admin().task_ids
    assert time.time() - fresh_snapshot.stat().st_mtime >= 3600 - 5
