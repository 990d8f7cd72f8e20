"""A load refuses an extract made under another table spec (issue 21 item 1), on the real MariaDB and S3.

An admin edit landing between an extract and its load (or two workers whose snapshots straddle it) would
otherwise load rows of the old query under the new row, or the reverse. The extract records a digest of
its spec in the manifest; the load compares it with its own spec's and refuses, naming both digests,
with the target as it was.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline import tasks
from report_pipeline.config import Company, build_table
from report_pipeline.errors import RefusedError
from report_pipeline.manifest import spec_digest
from report_pipeline.settings import Settings

pytestmark = pytest.mark.integration

LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


class Connections:
    """Direct connections to the local servers (the scratch schema is source and target at once)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def _mysql(self, db: str, **extra: Any) -> Any:
        return mysql_connect(db, **{"local_infile": 0, "init_command": "SET time_zone = '+00:00'", **extra})

    def source(self) -> Any:
        return self._mysql(self.schema)

    def target(self) -> Any:
        return self._mysql("", local_infile=1)

    def s3(self) -> Any:
        from tests.conftest import s3_client

        return s3_client()

    def protected_schemas(self) -> dict[str, str]:
        return {}


def _spec(query: str) -> Any:
    return build_table(
        {
            "id": 7,
            "name": "items",
            "query_select": query,
            "params_select": "",
            "query_insert": "REPLACE INTO items (id, name) VALUES",
            "status": 1,
            "all_companies": 1,
        }
    )


def test_a_load_refuses_an_extract_made_under_another_spec_and_leaves_the_target(scratch_db, bucket_name):
    root = mysql_connect(scratch_db)
    root.autocommit(True)  # each check below reads what the loads committed
    execute(
        root,
        "CREATE TABLE src (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "INSERT INTO src VALUES (1, 'a'), (2, 'b')",
    )
    target = f"{scratch_db}_t"
    execute(
        root,
        f"CREATE DATABASE `{target}`",
        f"CREATE TABLE `{target}`.items (id INT PRIMARY KEY, name VARCHAR(20))",
        f"INSERT INTO `{target}`.items VALUES (9, 'kept')",
    )
    company = Company(1, 1, 1, "digest", bucket_name, target, 1, "default")
    conns, settings = Connections(scratch_db), Settings()
    old = _spec("SELECT id, name FROM src")
    new = replace(old, query_select="SELECT id, UPPER(name) AS name FROM src")
    try:
        manifest = tasks.extract_table(conns, settings, company, old, LOGICAL_DATE, "run-digest")
        assert manifest.spec_digest == spec_digest(old) != spec_digest(new)
        with pytest.raises(RefusedError) as refused:
            tasks.load_table(conns, settings, company, new, [manifest.ref], LOGICAL_DATE, "run-digest")
        message = str(refused.value)
        assert "company 'digest' table 'items' (tables row id=7)" in message
        assert f"made under table spec {spec_digest(old)}" in message
        assert f"this load runs table spec {spec_digest(new)}" in message
        assert "the target was not changed" in message and "Clear the extract task" in message
        cursor = root.cursor()
        cursor.execute(f"SELECT id, name FROM `{target}`.items ORDER BY id")
        assert cursor.fetchall() == ((9, "kept"),)
        # The same spec on both sides loads (a run-time load-mode override is not a different spec).
        tasks.load_table(conns, settings, company, old, [manifest.ref], LOGICAL_DATE, "run-digest", load_mode="upsert")
        cursor.execute(f"SELECT id, name FROM `{target}`.items ORDER BY id")
        assert cursor.fetchall() == ((1, "a"), (2, "b"), (9, "kept"))
    finally:
        execute(root, f"DROP DATABASE IF EXISTS `{target}`")
        root.close()
