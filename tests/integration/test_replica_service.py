"""The local replica (scripts/services.sh) really replicates rp_replicated, and only that database."""

from __future__ import annotations

import uuid

import pytest
from tests.conftest import Replica, execute, mysql_connect

pytestmark = pytest.mark.integration


def test_rows_written_on_the_primary_reach_the_replica(replica: Replica, scratch_db: str) -> None:
    table = f"t_{uuid.uuid4().hex[:10]}"
    primary = replica.primary()
    execute(
        primary, f"CREATE TABLE `{table}` (id INT PRIMARY KEY, v VARCHAR(10))", f"INSERT INTO `{table}` VALUES (1, 'a')"
    )
    # Another database on the primary is not replicated.
    execute(mysql_connect(scratch_db), "CREATE TABLE other (id INT)")
    try:
        replica.wait_caught_up()
        conn = replica.connect()
        cursor = conn.cursor()
        cursor.execute(f"SELECT id, v FROM `{table}`")
        assert cursor.fetchall() == ((1, "a"),)
        cursor.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (scratch_db,))
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT @@server_id")
        assert cursor.fetchone()[0] != 1  # a server of its own, not the primary through another port
        conn.close()
    finally:
        execute(primary, f"DROP TABLE IF EXISTS `{table}`")
        primary.close()
