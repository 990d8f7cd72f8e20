"""Delete detection's SQL on a MySQL target: the source's key set in a TEMPORARY table, compared by key.

A TEMPORARY table is session-private and creating or dropping it does not end the load's transaction.
Each function takes a DB-API cursor on the target (the load's session) inside that transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from report_pipeline.validation import quote_identifier

# Keys per DELETE statement: one short statement per batch, each using the table's key.
DELETE_BATCH = 1000
# Missing keys held in memory to delete by key (a few MB); with more, one anti-join DELETE does it.
KEYS_IN_MEMORY = 100_000


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def create_key_table(cursor: Any, schema: str, table: str, columns: Sequence[str]) -> str:
    """A TEMPORARY table with ``table``'s key columns and types, keyed on them; its name."""
    cursor.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, table),
    )
    types = {str(r[0]).lower(): r for r in cursor.fetchall()}
    definitions = []
    for column in columns:
        _, column_type, charset, collation = types[column.lower()]
        # The type comes from the server's own catalogue; the charset keeps comparisons alike.
        text = f" CHARACTER SET {charset} COLLATE {collation}" if charset else ""
        definitions.append(f"{quote_identifier(column)} {column_type}{text} NOT NULL")
    name = "_rp_keys_" + hashlib.sha1(f"{schema}.{table}".encode()).hexdigest()[:12]
    keys = ", ".join(quote_identifier(c) for c in columns)
    cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {_name(schema, name)}")
    cursor.execute(f"CREATE TEMPORARY TABLE {_name(schema, name)} ({', '.join(definitions)}, PRIMARY KEY ({keys}))")
    return name


def key_checksum(cursor: Any, schema: str, table: str, columns: Sequence[str]) -> tuple[int, int]:
    """Row count and key checksum of ``table``, computed by the server."""
    keys = ", ".join(quote_identifier(c) for c in columns)
    cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('#', {keys}))), 0) FROM {_name(schema, table)}")
    count, checksum = cursor.fetchone()
    return int(count), int(checksum)


def _anti_join(schema: str, table: str, keys_table: str, columns: Sequence[str]) -> str:
    # LEFT JOIN ... IS NULL: MariaDB runs it as an eq_ref anti-join on the key table's key (NOT EXISTS
    # became a materialized hash, ~1.8x slower); the key table's columns are NOT NULL, so only a target
    # row without a match gives NULL there. Single-table form: valid alike on MySQL 8 and MariaDB.
    live = _name(schema, table)
    joined = " AND ".join(f"_rp_k.{quote_identifier(c)} = {live}.{quote_identifier(c)}" for c in columns)
    return (
        f"FROM {live} LEFT JOIN {_name(schema, keys_table)} AS _rp_k ON {joined} "
        f"WHERE _rp_k.{quote_identifier(columns[0])} IS NULL"
    )


def missing_keys(
    conn: Any, schema: str, table: str, keys_table: str, columns: Sequence[str], limit: int | None = None
) -> tuple[int, list[tuple[Any, ...]] | None]:
    """How many of ``table``'s rows have keys not in ``keys_table``, and those keys (None beyond ``limit``).

    One plain (non-locking) read, streamed: a plain SELECT reads the transaction's snapshot without
    locking the rows it passes, where a DELETE with the same anti-join locks every row of the table it
    examines (a 5 M-row table: 5 M row locks). The table's writer is this load (the writer lock), so
    the snapshot is the table as the load left it. Past ``limit`` keys only the count is kept, so
    memory stays bounded whatever the number of deletes (``limit``: ``KEYS_IN_MEMORY``).
    """
    import MySQLdb.cursors

    limit = KEYS_IN_MEMORY if limit is None else limit
    live = _name(schema, table)
    keys = ", ".join(f"{live}.{quote_identifier(c)}" for c in columns)
    cursor = MySQLdb.cursors.SSCursor(conn)
    count = 0
    found: list[tuple[Any, ...]] = []
    try:
        cursor.execute(f"SELECT {keys} {_anti_join(schema, table, keys_table, columns)}")
        while rows := cursor.fetchmany(10_000):
            count += len(rows)
            if count <= limit:
                found.extend(tuple(r) for r in rows)
    finally:
        cursor.close()
    return count, (found if count <= limit else None)


def delete_missing(cursor: Any, schema: str, table: str, keys_table: str, columns: Sequence[str]) -> int:
    """DELETE every row of ``table`` whose key is not in ``keys_table``, in one statement (many deletes)."""
    live = _name(schema, table)
    cursor.execute(
        f"DELETE FROM {live} WHERE NOT EXISTS (SELECT 1 FROM {_name(schema, keys_table)} AS _rp_k WHERE "
        + " AND ".join(f"_rp_k.{quote_identifier(c)} = {live}.{quote_identifier(c)}" for c in columns)
        + ")"
    )
    return int(cursor.rowcount)


def delete_keys(cursor: Any, schema: str, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> int:
    """DELETE the rows with these keys (values bound), in batches through the key; returns the rows deleted."""
    live = _name(schema, table)
    # NULL-safe: a UNIQUE key may hold NULLs, and such a row is never in the key set (the anti-join's
    # NOT EXISTS finds no equal key for it), so it is one of the keys to delete, as before.
    one = "(" + " AND ".join(f"{quote_identifier(c)} <=> %s" for c in columns) + ")"
    deleted = 0
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        # OR of key equalities: a range lookup per key on MySQL 8 and MariaDB alike, for any key width.
        cursor.execute(f"DELETE FROM {live} WHERE " + " OR ".join([one] * len(batch)), [v for k in batch for v in k])
        deleted += int(cursor.rowcount)
    return deleted


def drop_key_table(cursor: Any, schema: str, keys_table: str) -> None:
    """DROP TEMPORARY TABLE, quietly (does not end the transaction; the session may be gone)."""
    with contextlib.suppress(Exception):
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {_name(schema, keys_table)}")
