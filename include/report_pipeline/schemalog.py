"""The schema change log ``report_schema_changes``: each column schema evolution added or widened.

The only place with SQL on ``report_schema_changes``, as ``watermarks`` is for ``report_watermarks``.
It lives in the company's target schema beside the tables it describes, so BI users see why a column
appeared (or grew) and when. A load records its changes, committed on their own, BEFORE they go live:
an upsert or incremental load before its ALTER, a swap before its RENAME. A lost connection in between
must not leave a live change unlogged (the retry finds the column there and has nothing to log); a
logged change that then failed is planned and logged again by the retry, and the repeat is skipped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from report_pipeline.ledger import utc_naive
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import SCHEMA_LOG_TABLE, ColumnChange

_DDL = """CREATE TABLE IF NOT EXISTS {table} (
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
_NO_SUCH_TABLE = 1146
_NO_SUCH_SCHEMA = 1049


def _table(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{SCHEMA_LOG_TABLE}`"


def ensure(cursor: Any, schema: str) -> None:
    """Create the log in ``schema`` if it is not there yet (idempotent; DDL, so before any transaction)."""
    cursor.execute(_DDL.format(table=_table(schema)))


def record(
    cursor: Any, schema: str, table: str, change: ColumnChange, logical_date: dt.datetime, run_id: str, load_key: str
) -> None:
    """Add one change, in the caller's transaction; ``changed_at`` is the server's UTC now.

    Not added when the column's latest row is this very change: a load whose ALTER or RENAME failed after
    logging leaves it logged, and its retry (the same manifests, or a new extract) plans it again. (A change
    undone by hand and then made again by evolution is therefore logged once, at its first time.)
    """
    cursor.execute(
        f"SELECT change_kind, old_type, new_type FROM {_table(schema)} WHERE table_name = %s AND column_name = %s "
        "ORDER BY id DESC LIMIT 1",
        (table, change.column),
    )
    latest = cursor.fetchone()
    if latest is not None and tuple(_text(v) for v in latest) == (change.change, change.old_type, change.new_type):
        return
    cursor.execute(
        f"INSERT INTO {_table(schema)} (table_name, column_name, change_kind, old_type, new_type, logical_date, "
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


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


def added_columns(cursor: Any, schema: str, table: str) -> list[str]:
    """The columns schema evolution added to ``table`` (empty before any, or without the log)."""
    try:
        cursor.execute(
            f"SELECT DISTINCT column_name FROM {_table(schema)} WHERE table_name = %s AND change_kind = 'add'",
            (table,),
        )
    except Exception as exc:
        if getattr(exc, "args", (None,))[0] in (_NO_SUCH_TABLE, _NO_SUCH_SCHEMA):
            return []
        raise
    return [str(r[0]) for r in cursor.fetchall()]


def changes(cursor: Any, schema: str, table: str) -> list[tuple[str, str, str | None, str]]:
    """(column, change, old type, new type) of every recorded change of ``table``, oldest first."""
    cursor.execute(
        f"SELECT column_name, change_kind, old_type, new_type FROM {_table(schema)} WHERE table_name = %s ORDER BY id",
        (table,),
    )
    return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2]), str(r[3])) for r in cursor.fetchall()]
