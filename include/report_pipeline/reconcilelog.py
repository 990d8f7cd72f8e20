"""The reconcile log ``report_reconciles``: one row per reconcile of a table, what differed and what was mended.

The only place with SQL on ``report_reconciles``, as ``ledger`` is for ``report_loads``. It lives in
the company's target schema beside the tables it describes, so BI users see when a table was last
compared with its source and what a repair changed. A repair's rows are also a load, recorded in
``report_loads`` (``load_mode`` ``repair``) in the repair's own transaction; this row is written after
it, committed on its own, and is also written for a comparison that repaired nothing or was refused.
Each function takes a DB-API cursor on the target server and the company's schema name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from report_pipeline.ledger import utc_naive
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import RECONCILE_LOG_TABLE

_DDL = """CREATE TABLE IF NOT EXISTS {table} (
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
_COLUMNS = (
    "table_name, logical_date, run_id, outcome, key_columns, source_rows, target_rows, ranges, differing_ranges, "
    "rows_read, changed_keys, missing_keys, extra_keys, rows_copied, rows_deleted, extra_kept, load_key, "
    "first_keys, message, started_at"
)
# A reconcile that compared everything and left the target as exact as the table's settings allow.
COMPLETE = ("match", "repaired")
_NO_SUCH_TABLE = 1146
_NO_SUCH_SCHEMA = 1049


@dataclass(frozen=True)
class ReconcileRecord:
    """One ``report_reconciles`` row.

    ``outcome``: ``match`` (nothing differed), ``differs`` (compared only), ``repaired`` (every
    differing row re-copied or deleted, rechecked) or ``refused`` (the repair did not commit;
    ``message`` says why). Counts of ``*_keys`` are keys (a NULL-able key's rows count once);
    ``first_keys`` holds the first differing keys of each kind (``{"changed": [[...], ...], ...}``).
    """

    table_name: str
    logical_date: dt.datetime
    run_id: str
    outcome: str
    key_columns: tuple[str, ...]
    source_rows: int
    target_rows: int
    ranges: int
    differing_ranges: int
    rows_read: int
    changed_keys: int
    missing_keys: int
    extra_keys: int
    started_at: dt.datetime
    rows_copied: int = 0
    rows_deleted: int = 0
    extra_kept: int = 0
    load_key: str | None = None
    first_keys: Mapping[str, Sequence[Sequence[Any]]] = field(default_factory=dict)
    message: str | None = None


def _table(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{RECONCILE_LOG_TABLE}`"


def ensure(cursor: Any, schema: str) -> None:
    """Create the log in ``schema`` if it is not there yet (idempotent; DDL, so outside a transaction)."""
    cursor.execute(_DDL.format(table=_table(schema)))


def record(cursor: Any, schema: str, entry: ReconcileRecord) -> int:
    """Add a reconcile's row (creating the log if needed); ``finished_at`` is the server's UTC now. Its id."""
    ensure(cursor, schema)
    cursor.execute(
        f"INSERT INTO {_table(schema)} ({_COLUMNS}, finished_at) VALUES ({', '.join(['%s'] * 20)}, UTC_TIMESTAMP(6))",
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
            json.dumps({k: [list(v) for v in keys] for k, keys in entry.first_keys.items()}, default=str),
            entry.message,
            utc_naive(entry.started_at),
        ),
    )
    return int(cursor.lastrowid)


def last_complete(cursor: Any, schema: str, table: str) -> dt.datetime | None:
    """The latest logical date a reconcile of ``table`` completed for (``COMPLETE``); None if never."""
    try:
        cursor.execute(
            f"SELECT MAX(logical_date) FROM {_table(schema)} WHERE table_name = %s AND outcome IN (%s, %s)",
            (table, *COMPLETE),
        )
    except Exception as exc:
        if getattr(exc, "args", (None,))[0] in (_NO_SUCH_TABLE, _NO_SUCH_SCHEMA):
            return None
        raise
    row = cursor.fetchone()
    return row[0] if row and row[0] is not None else None
