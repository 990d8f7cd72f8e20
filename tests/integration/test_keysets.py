"""Delete detection's SQL (``target.keysets``) on the real MariaDB: which rows it finds missing and deletes.

The incremental tests cover the whole path with a one-column primary key; these cover what they do
not reach: a composite UNIQUE key holding NULLs, and more missing keys than one DELETE batch.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import execute, mysql_connect

from report_pipeline.target import keysets
from report_pipeline.target.mysql import MySqlTarget

pytestmark = pytest.mark.integration


def _rows(conn: Any, schema: str) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    cursor.execute(f"SELECT a, b, v FROM `{schema}`.`t` ORDER BY a, b IS NULL, b, v")
    return [tuple(r) for r in cursor.fetchall()]


def _table_and_keys(mysql_root: Any, schema: str) -> tuple[MySqlTarget, str]:
    execute(
        mysql_root,
        f"CREATE TABLE `{schema}`.`t` (a INT NOT NULL, b VARCHAR(10) NULL, v INT NOT NULL, UNIQUE KEY (a, b))",
        # (3, NULL) twice: a UNIQUE key allows repeated NULLs, and a NULL key is never in the key set.
        f"INSERT INTO `{schema}`.`t` VALUES (1, 'a', 1), (1, 'b', 2), (2, 'a', 3), (2, 'b', 4), (3, NULL, 5), "
        "(3, NULL, 6), (4, 'a', 7), (5, 'x', 8)",
    )
    target = MySqlTarget(mysql_connect())
    keys_table = target.create_key_table(schema, "t", ("a", "b"))
    target.cursor.execute(f"INSERT INTO `{schema}`.`{keys_table}` VALUES (1, 'a'), (2, 'b'), (4, 'a'), (9, 'z')")
    return target, keys_table


KEPT = [(1, "a", 1), (2, "b", 4), (4, "a", 7)]
MISSING = [(1, "b"), (2, "a"), (3, None), (3, None), (5, "x")]


def test_missing_keys_of_a_composite_key_with_nulls_are_deleted_in_batches(
    scratch_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(keysets, "DELETE_BATCH", 2)
    target, keys_table = _table_and_keys(mysql_root, scratch_db)
    try:
        target.begin()
        count, gone = target.missing_keys(scratch_db, "t", keys_table, ("a", "b"))
        assert count == 5 and gone is not None and sorted(gone, key=repr) == sorted(MISSING, key=repr)
        assert target.delete_keys(scratch_db, "t", ("a", "b"), gone) == 5
        target.commit()
    finally:
        target.close()
    assert _rows(mysql_root, scratch_db) == KEPT


def test_more_missing_keys_than_a_worker_holds_are_counted_and_deleted_by_the_server(
    scratch_db: str, mysql_root: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(keysets, "KEYS_IN_MEMORY", 2)
    target, keys_table = _table_and_keys(mysql_root, scratch_db)
    try:
        target.begin()
        assert target.missing_keys(scratch_db, "t", keys_table, ("a", "b")) == (5, None)
        assert target.delete_missing(scratch_db, "t", keys_table, ("a", "b")) == 5
        target.commit()
    finally:
        target.close()
    assert _rows(mysql_root, scratch_db) == KEPT
