"""The table ``report_pending``: swap loads of a company that publishes its day together, loaded and
checked, waiting for the company's publish (``report_pipeline.publication``).

The only place with SQL on ``report_pending``. One row per report table at most: a later load of the
table replaces its row (and drops the older shadow), so shadows never pile up. ``publishing_at`` is set
(committed) right before the publish's RENAME, so a publish that died between the RENAME and its
bookkeeping is told apart, on its retry, from a shadow somebody dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.ledger import utc_naive
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import PENDING_TABLE

_DDL = """CREATE TABLE IF NOT EXISTS {table} (
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
_COLUMNS = (
    "table_name, shadow_name, run_id, logical_date, load_key, rows_loaded, manifest_keys, data_as_of, snapshot_at, "
    "publishing_at"
)


@dataclass(frozen=True)
class PendingShadow:
    """A loaded, checked shadow of one table, not yet published."""

    table_name: str
    shadow_name: str
    run_id: str
    logical_date: dt.datetime
    load_key: str
    rows_loaded: int
    manifest_keys: tuple[str, ...]
    data_as_of: dt.datetime | None
    snapshot_at: dt.datetime | None
    publishing: bool = False


def _table(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{PENDING_TABLE}`"


def ensure(cursor: Any, schema: str) -> None:
    """Create ``report_pending`` in ``schema`` if needed."""
    cursor.execute(_DDL.format(table=_table(schema)))


def record(cursor: Any, schema: str, entry: PendingShadow) -> None:
    """Register a ready shadow, replacing the table's earlier row (committed by the caller)."""
    cursor.execute(
        f"REPLACE INTO {_table(schema)} ({_COLUMNS}, ready_at) "
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


def read(cursor: Any, schema: str) -> dict[str, PendingShadow]:
    """Every pending shadow of ``schema`` by table name."""
    cursor.execute(f"SELECT {_COLUMNS} FROM {_table(schema)}")
    found = {}
    for r in cursor.fetchall():
        keys = tuple(json.loads(r[6])) if r[6] else ()
        found[str(r[0])] = PendingShadow(
            str(r[0]), str(r[1]), str(r[2]), r[3], str(r[4]), int(r[5]), keys, r[7], r[8], r[9] is not None
        )
    return found


def mark_publishing(cursor: Any, schema: str, tables: Sequence[str]) -> None:
    """Note that these tables' shadows are about to be renamed in."""
    marks = ", ".join(["%s"] * len(tables))
    others = _COLUMNS.replace(", publishing_at", "")
    # REPLACE ... SELECT of the same rows rather than an UPDATE: the target account needs no UPDATE privilege.
    cursor.execute(
        f"REPLACE INTO {_table(schema)} ({others}, ready_at, publishing_at) SELECT {others}, ready_at, "
        f"UTC_TIMESTAMP(6) FROM {_table(schema)} WHERE table_name IN ({marks})",
        tuple(tables),
    )


def remove(cursor: Any, schema: str, tables: Sequence[str]) -> None:
    """Forget these tables' pending shadows (published, or replaced by a later load)."""
    if tables:
        marks = ", ".join(["%s"] * len(tables))
        cursor.execute(f"DELETE FROM {_table(schema)} WHERE table_name IN ({marks})", tuple(tables))
