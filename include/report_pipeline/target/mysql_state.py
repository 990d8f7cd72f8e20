"""The MySQL statements of the per-table state in each target schema: ``report_watermarks`` (how far
incremental loads have got), ``report_as_of`` (how current the live rows are) and ``report_pending``
(swap shadows waiting for their company's publish).

Each function takes a DB-API cursor on the target server and the company's schema name; the caller owns
the transaction. ``MySqlTarget`` calls them for the load; ``watermarks``, ``asof`` and ``pending`` tell
what the rows mean and offer the reads to callers holding a cursor (the extract, the CLI, the freshness page).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from report_pipeline.records import (
    COMPANY_ROW,
    AsOf,
    PendingShadow,
    Watermark,
    as_of_moves,
    company_as_of,
    utc_naive,
)
from report_pipeline.target.mysql_errors import NO_SUCH_COLUMN, NOT_THERE, code_of
from report_pipeline.target.mysql_ledger import SCHEMAS_PER_QUERY, schemas_with
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import AS_OF_TABLE, PENDING_TABLE, WATERMARK_TABLE


def _in(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.`{table}`"


# --- report_watermarks

_WATERMARK_DDL = """CREATE TABLE IF NOT EXISTS {table} (
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
# Added after the first release: ``ensure_watermarks`` adds them to a table created without them.
_WATERMARK_ADDED = {
    "pending_value": "VARCHAR(64) NULL",
    "pending_writers": "TEXT NULL",
    "source_server": "VARCHAR(255) NULL",
    "source_position": "TEXT NULL",
}
_WATERMARK_COLUMNS = (
    "table_name, cursor_column, cursor_value, snapshot_at, logical_date, run_id, load_key, updated_at, "
    "pending_value, pending_writers, source_server, source_position"
)


def _watermark(row: Sequence[Any]) -> Watermark:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return Watermark(
        str(row[0]), str(row[1]), text(row[2]), row[3], row[4], str(row[5]), str(row[6]), row[7],
        text(row[8]), str(row[9] or ""), text(row[10]), text(row[11]),
    )  # fmt: skip


def ensure_watermarks(cursor: Any, schema: str) -> None:
    """Create the watermark table in ``schema`` if it is not there yet (idempotent); add later columns."""
    cursor.execute(_WATERMARK_DDL.format(table=_in(schema, WATERMARK_TABLE)))
    cursor.execute(
        "SELECT LOWER(COLUMN_NAME) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, WATERMARK_TABLE),
    )
    have = {str(r[0]) for r in cursor.fetchall()}
    missing = [f"ADD COLUMN `{name}` {ddl}" for name, ddl in _WATERMARK_ADDED.items() if name not in have]
    if missing:
        cursor.execute(f"ALTER TABLE {_in(schema, WATERMARK_TABLE)} " + ", ".join(missing))


def read_watermark(cursor: Any, schema: str, table: str) -> Watermark | None:
    """The watermark of ``table``; None before its first incremental load (or without the table)."""
    name = _in(schema, WATERMARK_TABLE)
    try:
        cursor.execute(f"SELECT {_WATERMARK_COLUMNS} FROM {name} WHERE table_name = %s", (table,))
    except Exception as exc:
        code = code_of(exc)
        if code in NOT_THERE:
            return None
        if code == NO_SUCH_COLUMN:  # a table of older code, not upgraded yet by a load's ``ensure``
            first = _WATERMARK_COLUMNS.rsplit(", pending_value", 1)[0]
            cursor.execute(f"SELECT {first} FROM {name} WHERE table_name = %s", (table,))
            row = cursor.fetchone()
            return None if row is None else _watermark((*row, None, None, None, None))
        raise
    row = cursor.fetchone()
    return None if row is None else _watermark(row)


def write_watermark(cursor: Any, schema: str, mark: Watermark) -> None:
    """Store a table's watermark, in the caller's transaction; ``updated_at`` is the server's UTC now."""
    cursor.execute(
        f"REPLACE INTO {_in(schema, WATERMARK_TABLE)} ({_WATERMARK_COLUMNS}) VALUES "
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


# --- report_as_of

_AS_OF_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `table_name` VARCHAR(64) NOT NULL,
  `data_as_of` DATETIME(6) NULL,
  `snapshot_at` DATETIME(6) NULL,
  `logical_date` DATETIME(6) NULL,
  `run_id` VARCHAR(250) NULL,
  `load_key` CHAR(64) NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
_AS_OF_COLUMNS = "table_name, data_as_of, snapshot_at, logical_date, run_id, load_key, updated_at"


def _as_of(row: Sequence[Any]) -> AsOf:
    return AsOf(str(row[0]), row[1], row[2], row[3], None if row[4] is None else str(row[4]), row[5], row[6])


def ensure_as_of(cursor: Any, schema: str) -> None:
    """Create the as-of table and its company row in ``schema`` if they are not there yet (idempotent)."""
    name = _in(schema, AS_OF_TABLE)
    cursor.execute(_AS_OF_DDL.format(table=name))
    # Looked at first: an INSERT IGNORE of the existing row would wait for a load holding it until its commit.
    cursor.execute(f"SELECT 1 FROM {name} WHERE table_name = %s", (COMPANY_ROW,))
    if cursor.fetchone() is None:
        cursor.execute(
            f"INSERT IGNORE INTO {name} (table_name, updated_at) VALUES (%s, UTC_TIMESTAMP(6))", (COMPANY_ROW,)
        )


def record_as_of(
    cursor: Any, schema: str, entry: AsOf, *, replace: bool, company_tables: Collection[str] | None = None
) -> None:
    """Set ``entry``'s table row (``records.as_of_moves``) and recompute the company row
    (``records.company_as_of``), in the caller's transaction.

    The company row is locked first, until commit: the loads of one company take turns from there, and each
    computes it from what the others committed (a locking read), never from a stale snapshot.
    """
    name = _in(schema, AS_OF_TABLE)
    cursor.execute(f"SELECT table_name FROM {name} WHERE table_name = %s FOR UPDATE", (COMPANY_ROW,))
    cursor.execute(f"SELECT data_as_of FROM {name} WHERE table_name = %s FOR UPDATE", (entry.table_name,))
    found = cursor.fetchone()
    if as_of_moves(None if found is None else found[0], entry, replace):
        _write_as_of(cursor, name, entry)
    cursor.execute(f"SELECT {_AS_OF_COLUMNS} FROM {name} WHERE table_name <> %s FOR UPDATE", (COMPANY_ROW,))
    _write_as_of(cursor, name, company_as_of([_as_of(r) for r in cursor.fetchall()], company_tables))


def _write_as_of(cursor: Any, name: str, entry: AsOf) -> None:
    # REPLACE (a delete and an insert) rather than an upsert: the target account needs no UPDATE privilege
    # (README "Least privilege"); the row's key is its table name, nothing else refers to it.
    cursor.execute(
        f"REPLACE INTO {name} ({_AS_OF_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (
            entry.table_name,
            entry.data_as_of and utc_naive(entry.data_as_of),
            entry.snapshot_at and utc_naive(entry.snapshot_at),
            entry.logical_date and utc_naive(entry.logical_date),
            entry.run_id,
            entry.load_key,
        ),
    )


def read_as_of(cursor: Any, schema: str) -> dict[str, AsOf]:
    """Every row of ``schema``'s as-of table by table name (``'*'``: the company); empty without the table."""
    try:
        cursor.execute(f"SELECT {_AS_OF_COLUMNS} FROM {_in(schema, AS_OF_TABLE)}")
    except Exception as exc:
        if code_of(exc) in NOT_THERE:
            return {}
        raise
    return {str(r[0]): _as_of(r) for r in cursor.fetchall()}


def read_as_of_many(cursor: Any, schemas: Sequence[str], *, full: bool = True) -> dict[str, dict[str, AsOf]]:
    """``read_as_of`` for many schemas at once (the freshness page): one query finds which have the table,
    then one per ``SCHEMAS_PER_QUERY`` reads them, so a fleet's page costs a few round trips.

    ``full=False`` reads ``data_as_of`` alone (the other fields None): what the page judges and shows, and
    at 1,000 x 20 a quarter of the time, the driver's DATETIME conversions being most of it.
    """
    found: dict[str, dict[str, AsOf]] = {schema: {} for schema in schemas}
    present = schemas_with(cursor, AS_OF_TABLE, schemas)
    columns = _AS_OF_COLUMNS if full else "table_name, data_as_of"
    for start in range(0, len(present), SCHEMAS_PER_QUERY):
        batch = present[start : start + SCHEMAS_PER_QUERY]
        cursor.execute(
            " UNION ALL ".join(f"SELECT %s AS _schema, {columns} FROM {_in(s, AS_OF_TABLE)}" for s in batch),
            batch,
        )
        for row in cursor.fetchall():
            entry = _as_of(row[1:]) if full else AsOf(str(row[1]), row[2], None, None, None, None)
            found[str(row[0])][entry.table_name] = entry
    return found


# --- report_pending

_PENDING_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `table_name` VARCHAR(64) NOT NULL,
  `shadow_name` VARCHAR(64) NOT NULL,
  `run_id` VARCHAR(250) NOT NULL,
  `logical_date` DATETIME(6) NOT NULL,
  `load_key` CHAR(64) NOT NULL,
  `rows_loaded` BIGINT UNSIGNED NOT NULL,
  `manifest_keys` TEXT NOT NULL,
  `data_as_of` DATETIME(6) NULL,
  `snapshot_at` DATETIME(6) NULL,
  `ready_at` DATETIME(6) NOT NULL,
  `publishing_at` DATETIME(6) NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
_PENDING_COLUMNS = (
    "table_name, shadow_name, run_id, logical_date, load_key, rows_loaded, manifest_keys, data_as_of, snapshot_at, "
    "publishing_at"
)


def ensure_pending(cursor: Any, schema: str) -> None:
    """Create ``report_pending`` in ``schema`` if needed."""
    cursor.execute(_PENDING_DDL.format(table=_in(schema, PENDING_TABLE)))


def record_pending(cursor: Any, schema: str, entry: PendingShadow) -> None:
    """Register a ready shadow, replacing the table's earlier row (committed by the caller)."""
    cursor.execute(
        f"REPLACE INTO {_in(schema, PENDING_TABLE)} ({_PENDING_COLUMNS}, ready_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, UTC_TIMESTAMP(6))",
        (
            entry.table_name,
            entry.shadow_name,
            entry.run_id,
            utc_naive(entry.logical_date),
            entry.load_key,
            entry.rows_loaded,
            json.dumps(list(entry.manifest_keys)),
            entry.data_as_of,
            entry.snapshot_at,
        ),
    )


def read_pending(cursor: Any, schema: str) -> dict[str, PendingShadow]:
    """Every pending shadow of ``schema`` by table name."""
    cursor.execute(f"SELECT {_PENDING_COLUMNS} FROM {_in(schema, PENDING_TABLE)}")
    found = {}
    for r in cursor.fetchall():
        keys = tuple(json.loads(r[6])) if r[6] else ()
        found[str(r[0])] = PendingShadow(
            str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), int(r[5]), keys, r[7], r[8], r[9] is not None
        )
    return found


def mark_publishing(cursor: Any, schema: str, tables: Sequence[str]) -> None:
    """Note that these tables' shadows are about to be renamed in."""
    name = _in(schema, PENDING_TABLE)
    marks = ", ".join(["%s"] * len(tables))
    others = _PENDING_COLUMNS.replace(", publishing_at", "")
    # REPLACE ... SELECT of the same rows rather than an UPDATE: the target account needs no UPDATE privilege.
    cursor.execute(
        f"REPLACE INTO {name} ({others}, ready_at, publishing_at) SELECT {others}, ready_at, "
        f"UTC_TIMESTAMP(6) FROM {name} WHERE table_name IN ({marks})",
        tuple(tables),
    )


def remove_pending(cursor: Any, schema: str, tables: Sequence[str]) -> None:
    """Forget these tables' pending shadows (published, or replaced by a later load)."""
    if tables:
        marks = ", ".join(["%s"] * len(tables))
        cursor.execute(f"DELETE FROM {_in(schema, PENDING_TABLE)} WHERE table_name IN ({marks})", tuple(tables))
