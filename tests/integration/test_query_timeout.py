"""Issue 11.1: a runaway source query is stopped by the server after REPORTS_QUERY_TIMEOUT.

The session bound is MariaDB's ``max_statement_time`` here (MySQL/Aurora: ``max_execution_time``),
chosen from ``SELECT VERSION()``. A cross join of two 100 000-row sequences would run for hours;
with a 1 s bound the extract fails with an error that names the setting, and nothing is published.
Without the bound the test would run into pytest's timeout.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import MySQLdb
import pytest
from tests.conftest import mysql_connect, s3_client

from report_pipeline import tasks
from report_pipeline.config import Company, build_table
from report_pipeline.session import bound_source_session, is_mariadb
from report_pipeline.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120, method="thread")]


class Connections:
    def __init__(self, db: str) -> None:
        self.db = db

    def source(self) -> Any:
        return mysql_connect(self.db)

    def target(self) -> Any:
        return mysql_connect("")

    def s3(self) -> Any:
        return s3_client()


def test_a_runaway_query_is_stopped_and_the_error_names_the_bound(bucket_name, scratch_db):
    company = Company(
        id=1,
        company_id=1,
        status=1,
        alias="qt",
        bucket=bucket_name,
        schema="qt",
        lookback_days=1,
        lookback_source="default",
    )
    spec = build_table(
        {
            "id": 5,
            "name": "huge",
            "params_select": "",
            "all_companies": 1,
            "status": 1,
            "query_select": "SELECT a.seq AS x, b.seq AS y FROM seq_1_to_100000 a, seq_1_to_100000 b "
            "ORDER BY a.seq * b.seq DESC",
            "query_insert": "REPLACE INTO huge (x, y) VALUES",
        }
    )
    settings = Settings(query_timeout_seconds=1)
    with pytest.raises(MySQLdb.OperationalError) as failed:
        day = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
        tasks.extract_table(Connections(scratch_db), settings, company, spec, day, "r")
    assert "bound tripped: the source query ran longer than REPORTS_QUERY_TIMEOUT=1 s" in failed.value.__notes__
    assert s3_client().list_objects_v2(Bucket=bucket_name).get("KeyCount") == 0


def test_the_session_bounds_use_the_servers_own_names():
    conn = mysql_connect("")
    bound_source_session(conn, 7, 900)
    cursor = conn.cursor()
    cursor.execute("SELECT @@SESSION.max_statement_time, @@SESSION.net_write_timeout, @@SESSION.net_read_timeout")
    assert is_mariadb(conn)
    assert tuple(float(v) for v in cursor.fetchone()) == (7.0, 900.0, 900.0)
    conn.close()
