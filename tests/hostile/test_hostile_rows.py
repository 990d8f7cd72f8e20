"""Issue 7, hostile input: every corpus row fails alone, with a message naming it, and runs nothing.

Two levels:

* the plan: all corpus rows at once, beside two good companies and two good tables, through
  ``build_plan``; each bad row is exactly one problem (per company, for tables) that names its row
  and says what users need to know, and every good row is still planned;
* the DAG, for real: the corpus in a scratch admin schema, ``build_dag`` + ``dag.test()`` against the
  real MariaDB and S3 servers, with the server's general query log on; every bad row's task fails
  with its message, the good tables load exactly, and no corpus statement ever reached the server.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect, s3_client
from tests.hostile.corpus import (
    CORPUS,
    HARMLESS,
    PWNED_PATH,
    HostileRow,
    good_companies,
    good_tables,
    hostile_rows,
)

from report_pipeline.config import LOOKBACK_CONFIGURATION, AdminRows, Plan, build_plan
from report_pipeline.settings import Settings

GOOD_LOOKBACK_DAYS = 30
LOGICAL_DATE = dt.datetime(2026, 7, 4, tzinfo=dt.UTC)  # after the DAG's start_date


def admin_rows(corpus: list[HostileRow], aliases: tuple[str, str] | None = None) -> AdminRows:
    """The admin tables holding the corpus, two good companies (30-day look-back) and two good tables."""
    goods = good_companies() if aliases is None else good_companies(aliases)
    companies = goods + [e.row for e in corpus if e.company is not None]
    lookbacks = [(c["company_id"], str(GOOD_LOOKBACK_DAYS)) for c in goods]
    lookbacks += [(e.row["company_id"], e.lookback) for e in corpus if e.lookback is not None]
    return AdminRows(
        companies=companies,
        tables=good_tables() + [e.row for e in corpus if e.table is not None],
        configurations=[{"id": 1, "name": LOOKBACK_CONFIGURATION}],
        companies_configurations=[
            {"id": i, "retail_id": company_id, "configuration_id": 1, "configuration_value": value}
            for i, (company_id, value) in enumerate(lookbacks, start=1)
        ],
    )


def expected_problems(plan: Plan, corpus: list[HostileRow]) -> list[str]:
    """What is wrong between the plan and the corpus's expectations; empty when all is as expected."""
    wrong: list[str] = []
    broken_companies = {b.problem.row_id: str(b.problem) for b in plan.broken_companies}
    for company_plan in plan.companies:
        alias = company_plan.company.alias
        broken_tables: dict[Any, list[str]] = {}
        for b in company_plan.broken:
            broken_tables.setdefault(b.problem.row_id, []).append(str(b.problem))
        planned = {t.id for t in company_plan.tables}
        for entry in corpus:
            if entry.table is None:
                continue
            found = broken_tables.get(entry.row_id, [])
            if entry.expected == HARMLESS:
                if found or entry.row_id not in planned:
                    wrong.append(f"{entry.id}: should load in {alias}, got {found}")
                continue
            if len(found) != 1:
                wrong.append(f"{entry.id}: {len(found)} problems in {alias} (expected exactly 1)")
                continue
            if f"admin tables row id={entry.row_id}:" not in found[0] or entry.expected not in found[0]:
                wrong.append(f"{entry.id}: message {found[0][:300]!r} lacks {entry.expected!r}")
    for entry in corpus:
        if entry.company is None:
            continue
        message = broken_companies.get(entry.row_id)
        if message is None:
            wrong.append(f"{entry.id}: company row id={entry.row_id} was not reported")
        elif f"admin companies row id={entry.row_id}:" not in message or entry.expected not in message:
            wrong.append(f"{entry.id}: message {message[:300]!r} lacks {entry.expected!r}")
    return wrong


# --------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------


def test_the_corpus_is_big_and_covers_both_admin_tables():
    assert len(CORPUS) >= 35
    assert len({e.id for e in CORPUS}) == len(CORPUS), "entry ids are unique"
    assert sum(e.table is not None for e in CORPUS) >= 30
    assert sum(e.company is not None for e in CORPUS) >= 8
    assert [e.id for e in CORPUS if e.expected == HARMLESS] == ["python_params_insert"]


def test_every_bad_row_is_exactly_one_problem_naming_its_row_and_the_good_rows_all_build():
    plan = build_plan(admin_rows(CORPUS), Settings())
    assert expected_problems(plan, CORPUS) == []
    # Both good companies, each with both good tables and the harmless one, and nothing else.
    assert [c.company.alias for c in plan.companies] == ["hgood_one", "hgood_two"]
    for company_plan in plan.companies:
        assert [t.name for t in company_plan.tables] == ["users", "orders", "harmless"]
        assert company_plan.company.lookback_days == GOOD_LOOKBACK_DAYS
    bad_tables = sum(e.table is not None and e.expected != HARMLESS for e in CORPUS)
    bad_companies = sum(e.company is not None for e in CORPUS)
    assert len(plan.broken_companies) == bad_companies
    assert len(plan.problems) == bad_companies + 2 * bad_tables


def test_each_bad_row_also_fails_on_its_own():
    """The message does not depend on the company of the rows around it (no cross-talk)."""
    for entry in CORPUS:
        plan = build_plan(admin_rows([entry]), Settings())
        assert expected_problems(plan, [entry]) == [], entry.id
        assert [len(c.tables) for c in plan.companies] == [3 if entry.expected == HARMLESS else 2] * 2, entry.id


def test_messages_of_huge_rows_stay_short():
    """A 1 MB query or 5,000-character alias must not turn into a 1 MB task failure message."""
    plan = build_plan(admin_rows(CORPUS), Settings())
    for problem in plan.problems:
        assert len(str(problem)) < 1_000, str(problem)[:200]


# --------------------------------------------------------------------------------------------------
# The DAG, for real
# --------------------------------------------------------------------------------------------------


def _general_log_path(cursor: Any) -> Path:
    cursor.execute("SELECT @@general_log_file, @@datadir")
    name, datadir = cursor.fetchone()
    return Path(name) if os.path.isabs(name) else Path(datadir) / name


class GeneralLog:
    """The server's general query log (FILE output), on only while the DAG runs.

    It logs every engineer's traffic, so the test only reads what was appended meanwhile and looks
    for its own per-run marker (the victim table's name), which nothing else ever sends.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        cursor = conn.cursor()
        cursor.execute("SELECT @@general_log, @@log_output")
        self.was_on, self.output = cursor.fetchone()
        self.path = _general_log_path(cursor)
        cursor.close()
        self.offset = 0

    def __enter__(self) -> GeneralLog:
        assert "FILE" in self.output.upper(), f"log_output={self.output}: the test reads the log file"
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.conn.cursor().execute("SET GLOBAL general_log = 1")
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.was_on:
            self.conn.cursor().execute("SET GLOBAL general_log = 0")

    def lines_with(self, marker: str) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if marker in line]


@pytest.fixture
def world(mysql_root: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Scratch admin, source and two target schemas, the corpus stored in the admin tables."""
    from report_pipeline.admin import init_admin

    run = uuid.uuid4().hex[:8]
    aliases = (f"h{run}_one", f"h{run}_two")
    victim = f"hostile_{run}_victim"
    admin_db, source_db = f"h{run}_admin", f"h{run}_source"
    corpus = hostile_rows(aliases, victim)
    rows = admin_rows(corpus, aliases)
    schemas = [admin_db, source_db, *aliases]
    for schema in schemas:
        execute(mysql_root, f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    s3 = s3_client()
    try:
        admin = mysql_connect(admin_db)
        admin.autocommit(True)
        init_admin(admin)
        # The seed's column types cannot hold some corpus rows (a 1 MB query, a 5,000-character alias,
        # a negative chunk_rows) and strict mode would refuse them; widened here so every row reaches
        # the pipeline, as it would from an admin DB an operator altered.
        execute(
            admin,
            "ALTER TABLE companies MODIFY alias TEXT",
            "ALTER TABLE `tables` MODIFY name TEXT, MODIFY query_select MEDIUMTEXT, MODIFY params_select MEDIUMTEXT,"
            " MODIFY chunk_column TEXT, MODIFY chunk_rows INT NULL",
            "DELETE FROM configurations",
        )
        cursor = admin.cursor()
        for table, items in (
            ("companies", rows.companies),
            ("tables", rows.tables),
            ("configurations", rows.configurations),
            ("companies_configurations", rows.companies_configurations),
        ):
            for item in items:
                names = ", ".join(f"`{k}`" for k in item)
                marks = ", ".join(["%s"] * len(item))
                cursor.execute(f"INSERT INTO `{table}` ({names}) VALUES ({marks})", tuple(item.values()))
        admin.close()

        source = mysql_connect(source_db)
        source.autocommit(True)
        execute(
            source,
            "CREATE TABLE users (id INT PRIMARY KEY, company INT NOT NULL, name VARCHAR(100))",
            "CREATE TABLE orders (id INT PRIMARY KEY, company INT NOT NULL, amount DECIMAL(12,2), created_at DATETIME)",
            f"CREATE TABLE `{victim}` (id INT PRIMARY KEY, name VARCHAR(100))",
            f"INSERT INTO `{victim}` VALUES (1, 'canary')",
            "INSERT INTO users VALUES (1, 10, 'ann'), (2, 10, 'bob'), (3, 20, 'cy'), (4, 30, 'dee')",
            "INSERT INTO orders VALUES (1, 10, 1.50, '2026-06-20 10:00:00'), (2, 10, 2.50, '2026-01-01 00:00:00'),"
            " (3, 20, 3.50, '2026-07-03 23:59:59'), (4, 20, 4.50, '2026-07-04 00:00:00')",
        )
        source.close()
        for alias in aliases:
            execute(
                mysql_root,
                f"CREATE TABLE `{alias}`.users (id INT PRIMARY KEY, name VARCHAR(100))",
                f"CREATE TABLE `{alias}`.harmless (id INT PRIMARY KEY, name VARCHAR(100))",
                f"CREATE TABLE `{alias}`.orders (id INT PRIMARY KEY, amount DECIMAL(12,2), created_at DATETIME)",
            )

        base = f"mysql://reports:reports@127.0.0.1:{os.environ['REPORTS_MYSQL_PORT']}"
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", f"{base}/{admin_db}?charset=utf8mb4")
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", f"{base}/{source_db}?charset=utf8mb4")
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_TARGET_DB", f"{base}/?charset=utf8mb4")
        monkeypatch.setenv("REPORTS_SNAPSHOT_PATH", str(tmp_path / "snapshot.json"))
        monkeypatch.setenv("REPORTS_S3_BUCKET_TEMPLATE", "rp-h-{alias}")
        # '{alias}' (the default) on purpose: the corpus's 'mysql' and 'information_schema' aliases
        # must be refused, not loaded into the server's own schemas.
        monkeypatch.setenv("REPORTS_TARGET_SCHEMA_TEMPLATE", "{alias}")
        yield {
            "run": run,
            "aliases": aliases,
            "victim": victim,
            "admin_db": admin_db,
            "source_db": source_db,
            "corpus": corpus,
        }
    finally:
        for schema in schemas:
            execute(mysql_root, f"DROP DATABASE IF EXISTS `{schema}`")
        for alias in aliases:
            bucket = f"rp-h-{alias.replace('_', '-')}"
            try:
                objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                if objects:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": o["Key"]} for o in objects]})
                s3.delete_bucket(Bucket=bucket)
            except Exception:  # noqa: BLE001 - the bucket may never have been created
                pass


def register_dag(dag: Any) -> None:
    """Write the DAG to the metadata DB as a DAG processor would: dag.test() needs a DagVersion of it."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        parsed = [LazyDeserializedDAG.from_dag(dag)]
        update_dag_parsing_results_in_db("dags-folder", None, parsed, {}, None, set(), session)


def _rows(db: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Sorted rows of a query, on a connection of its own that holds no transaction afterwards.

    (A connection left inside a transaction keeps metadata locks, and the fixture's DROP DATABASE
    would wait for it forever.)
    """
    conn = mysql_connect(db)
    try:
        conn.autocommit(True)
        cursor = conn.cursor()
        cursor.execute(query, args)
        return sorted(cursor.fetchall())
    finally:
        conn.close()


@pytest.mark.timeout(300)
def test_the_dag_fails_each_bad_row_alone_runs_none_of_it_and_loads_the_good_rows(world, mysql_root):
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.utils.state import TaskInstanceState

    from report_pipeline.admin import read_admin_rows
    from report_pipeline.airflow.factory import build_dag
    from report_pipeline.airflow.operators import ConfigErrorOperator

    Path(PWNED_PATH).unlink(missing_ok=True)
    corpus: list[HostileRow] = world["corpus"]
    aliases: tuple[str, str] = world["aliases"]
    settings = Settings.from_env()
    # The plan comes from the admin DB itself, so what the server returned for each row is judged.
    admin = mysql_connect(world["admin_db"])
    try:
        plan = build_plan(read_admin_rows(admin), settings)
    finally:
        admin.close()
    assert expected_problems(plan, corpus) == []

    # A DAG id of its own: the Airflow metadata DB is shared with the other tests running meanwhile.
    dag = build_dag(plan, settings, dag_id=f"rp_hostile_{world['run']}")
    register_dag(dag)
    with GeneralLog(mysql_root) as log:
        run = dag.test(logical_date=LOGICAL_DATE)
    statements = log.lines_with(world["victim"])

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    bad_tables = [e for e in corpus if e.table is not None and e.expected != HARMLESS]
    bad_companies = [e for e in corpus if e.company is not None]
    invalid = {t: s for t, s in states.items() if t.endswith("__invalid_config") or t.endswith(".invalid_company")}
    assert len(invalid) == 2 * len(bad_tables) + len(bad_companies)
    assert set(invalid.values()) == {TaskInstanceState.FAILED}
    for alias in aliases:
        for table in ("users", "orders", "harmless"):
            for step in ("mysql_to_s3", "s3_to_mysql"):
                assert states[f"company_{alias}.{table}__{step}"] == TaskInstanceState.SUCCESS

    # What users read on each failing task: the row and the reason.
    for task in dag.tasks:
        if isinstance(task, ConfigErrorOperator):
            with pytest.raises(AirflowFailException) as failed:
                task.execute({})
            assert "admin tables row id=" in str(failed.value) or "admin companies row id=" in str(failed.value)
    messages = {str(t.message) for t in dag.tasks if isinstance(t, ConfigErrorOperator)}
    for entry in bad_tables + bad_companies:
        named = [m for m in messages if f"admin {entry.admin_table} row id={entry.row_id}:" in m]
        assert named and all(entry.expected in m for m in named), entry.id

    # Nothing of the corpus executed: no statement naming the victim reached the server, the canary
    # row is intact, nothing evaluated params_insert, and no refused schema was created.
    assert statements == []
    source = world["source_db"]
    assert _rows(source, f"SELECT id, name FROM `{world['victim']}`") == [(1, "canary")]
    assert _rows(source, "SHOW TABLES") == sorted([("orders",), ("users",), (world["victim"],)])
    assert not Path(PWNED_PATH).exists()
    schemas = _rows("", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'lb\\_%%'")
    assert schemas == []

    # The good rows loaded exactly: users by company_id, orders in the 30-day window before the date.
    since = (LOGICAL_DATE - dt.timedelta(days=GOOD_LOOKBACK_DAYS)).replace(tzinfo=None)
    until = LOGICAL_DATE.replace(tzinfo=None)
    for alias, company in zip(aliases, (10, 20), strict=True):
        users = _rows(source, "SELECT id, name FROM users WHERE company = %s", (company,))
        assert users, "the fixture gives every good company users"
        assert _rows(alias, f"SELECT id, name FROM `{alias}`.users") == users
        assert _rows(alias, f"SELECT id, name FROM `{alias}`.harmless") == users
        orders = _rows(
            source,
            "SELECT id, amount, created_at FROM orders WHERE company = %s AND created_at >= %s AND created_at < %s",
            (company, since, until),
        )
        assert orders, "the fixture gives every good company an order in the window"
        assert _rows(alias, f"SELECT id, amount, created_at FROM `{alias}`.orders") == orders
        loads = _rows(alias, f"SELECT table_name, run_id FROM `{alias}`.report_loads")
        assert loads == [("harmless", run.run_id), ("orders", run.run_id), ("users", run.run_id)]
