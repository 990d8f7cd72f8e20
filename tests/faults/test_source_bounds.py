"""Issue 22.4: every read of the source is bounded, verify's and validate's probes as much as the extract's.

``connections.source_session`` is the one way to open the source. Two waits are tried on the real MariaDB:
a source that stalls behind the fault proxy (the client gives up after REPORTS_NET_TIMEOUT, and the
error names it), and a query the server cannot finish (a table another session holds write-locked: the
server kills it after REPORTS_QUERY_TIMEOUT, well before the client's own timeout). Before this issue
verify opened the source without the bounded session: no query timeout, no named bound.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect, mysql_url
from tests.faults.proxy import FaultProxy

from report_pipeline import tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.checks import server_problems
from report_pipeline.config import Company, CompanyPlan, Plan, build_table
from report_pipeline.connections import source_session
from report_pipeline.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240, method="thread")]

LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
QUERY_TIMEOUT, NET_TIMEOUT = 2, 3


def _spec() -> Any:
    return build_table(
        {
            "id": 5,
            "name": "orders",
            "query_select": "SELECT id, amount FROM orders",
            "params_select": "",
            "query_insert": "REPLACE INTO orders (id, amount) VALUES",
            "status": 1,
            "all_companies": 1,
        }
    )


def _company(schema: str) -> Company:
    return Company(
        id=1,
        company_id=1,
        status=1,
        alias="bnd",
        bucket="reports-bnd",
        schema=schema,
        lookback_days=1,
        lookback_source="default",
    )


@pytest.fixture
def world(scratch_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A source table (scratch schema) and its target copy (a second schema); connections pointed there."""
    target = f"{scratch_db}_t"
    execute(mysql_root, f"CREATE DATABASE `{target}`")
    for schema in (scratch_db, target):
        conn = mysql_connect(schema)
        execute(conn, "CREATE TABLE orders (id INT PRIMARY KEY, amount INT)")
        execute(conn, "INSERT INTO orders VALUES (1, 10), (2, 20)")
        conn.close()
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", mysql_url(scratch_db))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_TARGET_DB", mysql_url(""))
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_ADMIN_DB", mysql_url(""))
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    yield scratch_db, target
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{target}`")


def _settings(net: int = NET_TIMEOUT) -> Settings:
    return Settings(query_timeout_seconds=QUERY_TIMEOUT, net_timeout_seconds=net, target_lock_wait_seconds=2)


def _notes(exc: BaseException) -> str:
    return " ".join(getattr(exc, "__notes__", ()))


def test_verify_through_a_stalled_source_fails_naming_the_bound(world, monkeypatch):
    source, target = world
    with FaultProxy(int(os.environ["REPORTS_MYSQL_PORT"])) as proxy:
        monkeypatch.setenv(
            "AIRFLOW_CONN_REPORTS_SOURCE_DB",
            mysql_url(source).replace(os.environ["REPORTS_MYSQL_PORT"], str(proxy.port)),
        )
        proxy.stall_on(b"CRC32")  # verify's checksum query: the source goes silent mid-verify
        with pytest.raises(Exception) as failed:
            tasks.verify_table(
                HookConnections(_settings()), _company(target), _spec(), LOGICAL_DATE, settings=_settings()
            )
        assert proxy.stats.stalls == 1, "the stall happened during verify"
    assert f"REPORTS_NET_TIMEOUT={NET_TIMEOUT} s" in _notes(failed.value), failed.value


@pytest.fixture
def locked(world: str) -> Any:
    """Another session holds the source table write-locked: every read of it waits."""
    holder = mysql_connect(world[0])
    execute(holder, "LOCK TABLES orders WRITE")
    yield world
    execute(holder, "UNLOCK TABLES")
    holder.close()


def test_verify_of_a_query_the_server_cannot_finish_is_killed_after_the_query_timeout(locked):
    # The client would wait 60 s: only the server-side bound (max_statement_time) can end it sooner.
    with pytest.raises(Exception) as failed:
        tasks.verify_table(
            HookConnections(_settings(net=60)), _company(locked[1]), _spec(), LOGICAL_DATE, settings=_settings(net=60)
        )
    assert f"REPORTS_QUERY_TIMEOUT={QUERY_TIMEOUT} s" in _notes(failed.value), failed.value


def test_validate_probes_are_killed_after_the_query_timeout(locked):
    settings = _settings(net=60)
    plan = Plan(companies=(CompanyPlan(company=_company(locked[1]), tables=(_spec(),)),))
    problems = server_problems(plan, settings, HookConnections(settings))
    assert len(problems) == 1 and "source query fails" in problems[0], problems
    assert (
        "max_statement_time" in problems[0]
        or "maximum statement execution time" in problems[0].lower()
        or "1969" in problems[0]
    ), problems


def test_the_bounded_session_is_set_on_the_server(world):
    with source_session(HookConnections(_settings()), _settings()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT @@SESSION.max_statement_time, @@SESSION.time_zone")
        assert cursor.fetchone() == (float(QUERY_TIMEOUT), "+00:00")
