"""The watermark table ``report_watermarks``: per target table, the highest cursor value loaded.

The only place with SQL on ``report_watermarks``, as ``ledger`` is for ``report_loads``. It lives in
each company's target schema beside the rows it describes, so an incremental load writes its rows, its
ledger row and its new watermark in one transaction: a crash leaves all three as they were. The
extract reads it (read-only) to know where to start. Each function takes a DB-API cursor on the target
server and the company's schema name; the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.ledger import utc_naive
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import WATERMARK_TABLE

_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `table_name` VARCHAR(64) NOT NULL,
  `cursor_column` VARCHAR(64) NOT NULL,
  `cursor_value` VARCHAR(64) NULL,
  `snapshot_at` DATETIME(6) NOT NULL,
  `logical_date` DATETIME(6) NOT NULL,
  `run_id` VARCHAR(250) NOT NULL,
  `load_key` CHAR(64) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  `pending_value` VARCHAR(64) NULL,
  `pending_writers` TEXT NULL,
  `source_server` VARCHAR(255) NULL,
  `source_position` TEXT NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
# Added after the first release: ``ensure`` adds them to a table created without them.
_ADDED = {
    "pending_value": "VARCHAR(64) NULL",
    "pending_writers": "TEXT NULL",
    "source_server": "VARCHAR(255) NULL",
    "source_position": "TEXT NULL",
}
_COLUMNS = (
    "table_name, cursor_column, cursor_value, snapshot_at, logical_date, run_id, load_key, updated_at, "
    "pending_value, pending_writers, source_server, source_position"
)
_NO_SUCH_TABLE = 1146
_NO_SUCH_SCHEMA = 1049
_UNKNOWN_COLUMN = 1054


@dataclass(frozen=True)
class Watermark:
    """One ``report_watermarks`` row: how far the incremental loads of one target table have got.

    ``cursor_value`` is the highest cursor value loaded that no open transaction could still undercut
    (None after loads that found no rows); ``snapshot_at`` the source snapshot time of the newest
    extract loaded (UTC). ``pending_value`` (integer cursors) becomes the value once the transactions
    ``pending_writers`` have ended (report_pipeline.incremental.horizon). ``source_server`` and ``source_position``
    name the server the rows came from and its GTID position then.
    """

    table_name: str
    cursor_column: str
    cursor_value: str | None
    snapshot_at: dt.datetime
    logical_date: dt.datetime | None = None
    run_id: str = ""
    load_key: str = ""
    updated_at: dt.datetime | None = None
    pending_value: str | None = None
    pending_writers: str = ""
    source_server: str | None = None
    source_position: str | None = None

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> Watermark:
        value = None if row[2] is None else str(row[2])
        return cls(
            str(row[0]),
            str(row[1]),
            value,
            row[3],
            row[4],
            str(row[5]),
            str(row[6]),
            row[7],
            None if row[8] is None else str(row[8]),
            str(row[9] or ""),
            None if row[10] is None else str(row[10]),
            None if row[11] is None else str(row[11]),
        )


def _table(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{WATERMARK_TABLE}`"


def ensure(cursor: Any, schema: str) -> None:
    """Create the watermark table in ``schema`` if it is not there yet (idempotent)."""
    cursor.execute(_DDL.format(table=_table(schema)))
    cursor.execute(
        "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, WATERMARK_TABLE),
    )
    have = {str(r[0]) for r in cursor.fetchall()}
    missing = [f"ADD COLUMN `{name}` {ddl}" for name, ddl in _ADDED.items() if name not in have]
    if missing:
        cursor.execute(f"ALTER TABLE {_table(schema)} " + ", ".join(missing))


def read(cursor: Any, schema: str, table: str) -> Watermark | None:
    """The watermark of ``table``; None before its first incremental load (or without the table)."""
    try:
        cursor.execute(f"SELECT {_COLUMNS} FROM {_table(schema)} WHERE table_name = %s", (table,))
    except Exception as exc:
        code = getattr(exc, "args", (None,))[0]
        if code in (_NO_SUCH_TABLE, _NO_SUCH_SCHEMA):
            return None
        if code == _UNKNOWN_COLUMN:  # a table of older code, not upgraded yet by a load's ``ensure``
            cursor.execute(
                f"SELECT {_COLUMNS.rsplit(', pending_value', 1)[0]} FROM {_table(schema)} WHERE table_name = %s",
                (table,),
            )
            row = cursor.fetchone()
            return None if row is None else Watermark._from_row((*row, None, None, None, None))
        raise
    row = cursor.fetchone()
    return None if row is None else Watermark._from_row(row)


def write(cursor: Any, schema: str, mark: Watermark) -> None:
    """Store a table's watermark, in the caller's transaction (the caller decides its value).

    ``updated_at`` is the server's UTC now, whatever ``mark`` holds.
    """
    cursor.execute(
        f"REPLACE INTO {_table(schema)} ({_COLUMNS}) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s, %s, %s, %s)",
        (
            mark.table_name,
            mark.cursor_column,
            mark.cursor_value,
            utc_naive(mark.snapshot_at),
            utc_naive(mark.logical_date) if mark.logical_date is not None else None,
            mark.run_id,
            mark.load_key,
            mark.pending_value,
            mark.pending_writers or None,
            mark.source_server,
            mark.source_position,
        ),
    )
