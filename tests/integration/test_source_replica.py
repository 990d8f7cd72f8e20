"""Issue 11.3: extracts read the replica connection when it is defined (REPORTS_SOURCE_REPLICA)."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.config import Company, build_table
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration
DAY = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


@pytest.fixture
def primary_and_replica(scratch_db, mysql_root, monkeypatch):
    """Two schemas with different rows, as the primary and a replica (lagging by one row)."""
    replica = scratch_db + "_r"
    execute(mysql_root, f"CREATE DATABASE `{replica}`")
    for db, rows in ((scratch_db, "(1), (2)"), (replica, "(1)")):
        execute(mysql_connect(db), "CREATE TABLE t (id INT PRIMARY KEY)", f"INSERT INTO t VALUES {rows}")
    port = os.environ["REPORTS_MYSQL_PORT"]
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", f"mysql://reports:reports@127.0.0.1:{port}/{scratch_db}")
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", f"mysql://reports:reports@127.0.0.1:{port}/{replica}")
    yield scratch_db, replica
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{replica}`")


def _rows_extracted(settings: Settings, bucket: str, schema: str) -> int:
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="rep",
        bucket=bucket,
        schema=schema,
        lookback_days=1,
        lookback_source="default",
    )
    spec = build_table(
        {
            "id": 1,
            "name": "t",
            "query_select": "SELECT id FROM t",
            "params_select": "",
            "all_companies": 1,
            "query_insert": "REPLACE INTO t (id) VALUES",
            "status": 1,
        }
    )
    return tasks.extract_table(HookConnections(settings), settings, company, spec, DAY, "run").rows


def test_extracts_read_the_replica_when_it_is_defined(primary_and_replica, bucket_name, monkeypatch):
    primary, _ = primary_and_replica
    assert _rows_extracted(Settings(), bucket_name, primary) == 1, "read from the replica"
    assert _rows_extracted(Settings(source_replica="off"), bucket_name, primary) == 2, "read from the primary"
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB")
    assert _rows_extracted(Settings(), bucket_name, primary) == 2, "no replica defined: the primary"
    with pytest.raises(ConfigError, match="REPORTS_SOURCE_REPLICA=required"):
        _rows_extracted(Settings(source_replica="required"), bucket_name, primary)
