"""Issue 22: ``validate`` warns (not errors) about a query calling a stored function that may write.

On the real MariaDB: a function that inserts into an audit table (MODIFIES SQL DATA), one that only
reads, and one declared harmless whose body writes anyway. Queries calling the writers get a warning
naming the function and why; the reader gets none; none of them is a problem (the exit code stays 0).
The writer really fails a read-only transaction, as an extract's would.
"""

from __future__ import annotations

from typing import Any

import MySQLdb
import pytest
from tests.conftest import execute, mysql_connect, mysql_url

from report_pipeline.airflow.connections import HookConnections
from report_pipeline.checks import server_problems
from report_pipeline.config import Company, CompanyPlan, Plan, build_table
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def world(scratch_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    target = f"{scratch_db}_t"
    execute(mysql_root, f"CREATE DATABASE `{target}`")
    root = mysql_connect(scratch_db)
    execute(
        root,
        "CREATE TABLE orders (id INT PRIMARY KEY, amount INT)",
        "INSERT INTO orders VALUES (1, 10)",
        "CREATE TABLE audit (n INT)",
        "CREATE FUNCTION audited(x INT) RETURNS INT MODIFIES SQL DATA "
        "BEGIN INSERT INTO audit VALUES (x); RETURN x; END",
        "CREATE FUNCTION sneaky(x INT) RETURNS INT READS SQL DATA BEGIN DELETE FROM audit; RETURN x; END",
        "CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC NO SQL RETURN x * 2",
    )
    for name, ddl in (("a", "amount INT"), ("b", "amount INT"), ("c", "amount INT")):
        execute(mysql_connect(target), f"CREATE TABLE {name} (id INT PRIMARY KEY, {ddl})")
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", mysql_url(scratch_db))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_TARGET_DB", mysql_url(""))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", mysql_url(""))
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    yield scratch_db, target
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{target}`")


def _spec(row_id: int, table: str, expression: str) -> Any:
    return build_table(
        {
            "id": row_id,
            "name": table,
            "query_select": f"SELECT id, {expression} AS amount FROM orders",
            "params_select": "",
            "query_insert": f"REPLACE INTO {table} (id, amount) VALUES",
            "status": 1,
            "all_companies": 1,
        }
    )


def test_validate_warns_about_stored_functions_that_may_write(world):
    source, target = world
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="rtn",
        bucket="reports-rtn",
        schema=target,
        lookback_days=1,
        lookback_source="default",
    )
    specs = (
        _spec(1, "a", "audited(amount)"),
        _spec(2, "b", f"`{source}`.sneaky(amount)"),
        _spec(3, "c", "doubled(amount)"),
    )
    plan = Plan(companies=(CompanyPlan(company=company, tables=specs),))
    settings = Settings()
    warnings: list[str] = []
    problems = server_problems(plan, settings, HookConnections(settings), [], warnings)
    assert problems == [], problems
    assert len(warnings) == 2, warnings
    assert "tables row id=1" in warnings[0]
    assert f"`{source}`.`audited`, which is declared MODIFIES SQL DATA" in warnings[0]
    assert "tables row id=2" in warnings[1] and "has a DELETE statement in its body" in warnings[1]
    # What the warning is about: the extract's READ ONLY transaction refuses the writing function.
    conn = mysql_connect(source)
    cursor = conn.cursor()
    cursor.execute("START TRANSACTION READ ONLY")
    with pytest.raises(MySQLdb.OperationalError):
        cursor.execute("SELECT audited(amount) FROM orders")
    conn.rollback()
