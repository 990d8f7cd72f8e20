"""The MySQL statements of the logs beside the ledger in each target schema: ``report_schema_changes``
(each column schema evolution added or widened) and ``report_reconciles`` (each reconcile of a table).

Each function takes a DB-API cursor on the target server and the company's schema name; the caller owns
the transaction. ``MySqlTarget`` calls the schema log's for the load; ``schemalog`` and ``reconcilelog``
tell what the rows mean and offer these to readers holding a cursor.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from report_pipeline.records import COMPLETE, ReconcileRecord, utc_naive
from report_pipeline.target.mysql_errors import NOT_THERE, code_of
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import RECONCILE_LOG_TABLE, SCHEMA_LOG_TABLE, ColumnChange

_SCHEMA_LOG_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `table_name` VARCHAR(64) NOT NULL,
  `column_name` VARCHAR(64) NOT NULL,
  `change_kind` VARCHAR(8) NOT NULL,
  `old_type` VARCHAR(255) NULL,
  `new_type` VARCHAR(255) NOT NULL,
  `logical_date` DATETIME(6) NOT NULL,
  `run_id` VARCHAR(250) NOT NULL,
  `load_key` CHAR(64) NOT NULL,
  `changed_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_report_schema_changes_table` (`table_name`, `changed_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""


def _schema_log(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{SCHEMA_LOG_TABLE}`"


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


def ensure_schema_log(cursor: Any, schema: str) -> None:
    """Create the log in ``schema`` if it is not there yet (idempotent; DDL, so before any transaction)."""
    cursor.execute(_SCHEMA_LOG_DDL.format(table=_schema_log(schema)))


def record_schema_change(
    cursor: Any, schema: str, table: str, change: ColumnChange, logical_date: dt.datetime, run_id: str, load_key: str
) -> None:
    """Add one change, in the caller's transaction; ``changed_at`` is the server's UTC now.

    Not added when the column's latest row is this very change (``schemalog`` says why).
    """
    cursor.execute(
        f"SELECT change_kind, old_type, new_type FROM {_schema_log(schema)} WHERE table_name = %s "
        "AND column_name = %s ORDER BY id DESC LIMIT 1",
        (table, change.column),
    )
    latest = cursor.fetchone()
    if latest is not None and tuple(_text(v) for v in latest) == (change.change, change.old_type, change.new_type):
        return
    cursor.execute(
        f"INSERT INTO {_schema_log(schema)} (table_name, column_name, change_kind, old_type, new_type, logical_date, "
        "run_id, load_key, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (
            table,
            change.column,
            change.change,
            change.old_type,
            change.new_type,
            utc_naive(logical_date),
            run_id,
            load_key,
        ),
    )


def added_columns(cursor: Any, schema: str, table: str) -> list[str]:
    """The columns schema evolution added to ``table`` (empty before any, or without the log)."""
    try:
        cursor.execute(
            f"SELECT DISTINCT column_name FROM {_schema_log(schema)} WHERE table_name = %s AND change_kind = 'add'",
            (table,),
        )
    except Exception as exc:
        if code_of(exc) in NOT_THERE:
            return []
        raise
    return [str(r[0]) for r in cursor.fetchall()]


def schema_changes(cursor: Any, schema: str, table: str) -> list[tuple[str, str, str | None, str]]:
    """(column, change, old type, new type) of every recorded change of ``table``, oldest first."""
    cursor.execute(
        f"SELECT column_name, change_kind, old_type, new_type FROM {_schema_log(schema)} WHERE table_name = %s "
        "ORDER BY id",
        (table,),
    )
    return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2]), str(r[3])) for r in cursor.fetchall()]


# --- the reconcile log ``report_reconciles``

_RECONCILE_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `table_name` VARCHAR(64) NOT NULL,
  `logical_date` DATETIME(6) NOT NULL,
  `run_id` VARCHAR(250) NOT NULL,
  `outcome` VARCHAR(16) NOT NULL,
  `key_columns` VARCHAR(1000) NOT NULL,
  `source_rows` BIGINT UNSIGNED NOT NULL,
  `target_rows` BIGINT UNSIGNED NOT NULL,
  `ranges` BIGINT UNSIGNED NOT NULL,
  `differing_ranges` BIGINT UNSIGNED NOT NULL,
  `rows_read` BIGINT UNSIGNED NOT NULL,
  `changed_keys` BIGINT UNSIGNED NOT NULL,
  `missing_keys` BIGINT UNSIGNED NOT NULL,
  `extra_keys` BIGINT UNSIGNED NOT NULL,
  `rows_copied` BIGINT UNSIGNED NOT NULL,
  `rows_deleted` BIGINT UNSIGNED NOT NULL,
  `extra_kept` BIGINT UNSIGNED NOT NULL,
  `load_key` CHAR(64) NULL,
  `first_keys` MEDIUMTEXT NOT NULL,
  `message` TEXT NULL,
  `started_at` DATETIME(6) NOT NULL,
  `finished_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_report_reconciles_table_date` (`table_name`, `logical_date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
_RECONCILE_COLUMNS = (
    "table_name, logical_date, run_id, outcome, key_columns, source_rows, target_rows, ranges, differing_ranges, "
    "rows_read, changed_keys, missing_keys, extra_keys, rows_copied, rows_deleted, extra_kept, load_key, "
    "first_keys, message, started_at"
)


def _reconcile_log(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{RECONCILE_LOG_TABLE}`"


def ensure_reconcile_log(cursor: Any, schema: str) -> None:
    """Create the log in ``schema`` if it is not there yet (idempotent; DDL, so outside a transaction)."""
    cursor.execute(_RECONCILE_DDL.format(table=_reconcile_log(schema)))


def record_reconcile(cursor: Any, schema: str, entry: ReconcileRecord) -> int:
    """Add a reconcile's row (creating the log if needed); ``finished_at`` is the server's UTC now. Its id."""
    ensure_reconcile_log(cursor, schema)
    first_keys = json.dumps({k: [list(v) for v in keys] for k, keys in entry.first_keys.items()}, default=str)
    cursor.execute(
        f"INSERT INTO {_reconcile_log(schema)} ({_RECONCILE_COLUMNS}, finished_at) "
        f"VALUES ({', '.join(['%s'] * 20)}, UTC_TIMESTAMP(6))",
        (
            entry.table_name,
            utc_naive(entry.logical_date),
            entry.run_id,
            entry.outcome,
            json.dumps(list(entry.key_columns)),
            entry.source_rows,
            entry.target_rows,
            entry.ranges,
            entry.differing_ranges,
            entry.rows_read,
            entry.changed_keys,
            entry.missing_keys,
            entry.extra_keys,
            entry.rows_copied,
            entry.rows_deleted,
            entry.extra_kept,
            entry.load_key,
            first_keys,
            entry.message,
            utc_naive(entry.started_at),
        ),
    )
    return int(cursor.lastrowid)


def last_complete_reconcile(cursor: Any, schema: str, table: str) -> dt.datetime | None:
    """The latest logical date a reconcile of ``table`` completed for (``COMPLETE``); None if never."""
    try:
        cursor.execute(
            f"SELECT MAX(logical_date) FROM {_reconcile_log(schema)} WHERE table_name = %s AND outcome IN (%s, %s)",
            (table, *COMPLETE),
        )
    except Exception as exc:
        if code_of(exc) in NOT_THERE:
            return None
        raise
    row = cursor.fetchone()
    return row[0] if row and row[0] is not None else None
