"""The as-of table ``report_as_of``: per report table, how current the rows now live are.

The only place with SQL on ``report_as_of``, as ``ledger`` is for ``report_loads``. One row per table
(``data_as_of``: the source snapshot time of the rows now live, in UTC; the logical date and run of the
load that made them live) and one company row, ``table_name = '*'``, holding the oldest of the company's
tables (NULL while one of them has never loaded), which is what a dashboard prints as "data as of".

A load updates its table's row and the company row in its own transaction (a publish, in the
transaction that records its tables), so the as-of never runs ahead of or behind the rows. The company
row is locked first: two loads of one company committing at once each compute it from what the other
committed, never from a stale read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.ledger import SCHEMAS_PER_QUERY, utc_naive
from report_pipeline.manifest import Manifest
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import AS_OF_TABLE

COMPANY_ROW = "*"
_DDL = """CREATE TABLE IF NOT EXISTS {table} (
  `table_name` VARCHAR(64) NOT NULL,
  `data_as_of` DATETIME(6) NULL,
  `snapshot_at` DATETIME(6) NULL,
  `logical_date` DATETIME(6) NULL,
  `run_id` VARCHAR(250) NULL,
  `load_key` CHAR(64) NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
_COLUMNS = "table_name, data_as_of, snapshot_at, logical_date, run_id, load_key, updated_at"
_NO_SUCH_TABLE = 1146
_NO_SUCH_SCHEMA = 1049


@dataclass(frozen=True)
class AsOf:
    """One ``report_as_of`` row. ``data_as_of``: the source time the live rows reflect (UTC, naive).

    ``snapshot_at`` is the source's clock when the extract's snapshot began; ``data_as_of`` is that, or
    the end of the run's window when the query is bounded by it (``%(date_to)s``): a backfill of 8 days
    ago read today holds the data of 8 days ago.
    """

    table_name: str
    data_as_of: dt.datetime | None
    snapshot_at: dt.datetime | None
    logical_date: dt.datetime | None
    run_id: str | None
    load_key: str | None
    updated_at: dt.datetime | None = None

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> AsOf:
        return cls(str(row[0]), row[1], row[2], row[3], None if row[4] is None else str(row[4]), row[5], row[6])


def data_as_of(snapshot_at: dt.datetime, window_end: dt.datetime | None) -> dt.datetime:
    """What the rows of one extract reflect: its snapshot, or the end of its window if that is earlier."""
    snapshot = utc_naive(snapshot_at)
    return snapshot if window_end is None else min(snapshot, utc_naive(window_end))


def _moment(text: str) -> dt.datetime:
    return utc_naive(dt.datetime.fromisoformat(text))


def of_manifests(
    manifests: Sequence[Manifest],
    table: str,
    logical_date: dt.datetime,
    run_id: str,
    load_key: str,
    window_end: dt.datetime | None,
) -> AsOf:
    """The as-of of a load of these manifests: the OLDEST snapshot among them (chunks each have one).

    Manifests written before snapshots were recorded fall back to their incremental cursor's snapshot,
    else to when the extract started (the worker's clock, close to the source's).
    """
    snapshots = [
        _moment(m.snapshot_at or (m.cursor.snapshot_at if m.cursor is not None else m.started_at)) for m in manifests
    ]
    snapshot = min(snapshots)
    return AsOf(table, data_as_of(snapshot, window_end), snapshot, utc_naive(logical_date), run_id, load_key)


def _table(schema: str) -> str:
    return f"{quote_identifier(schema)}.`{AS_OF_TABLE}`"


def ensure(cursor: Any, schema: str) -> None:
    """Create the as-of table and its company row in ``schema`` if they are not there yet (idempotent)."""
    cursor.execute(_DDL.format(table=_table(schema)))
    # Looked at first: an INSERT IGNORE of the existing row would wait for a load holding it until its commit.
    cursor.execute(f"SELECT 1 FROM {_table(schema)} WHERE table_name = %s", (COMPANY_ROW,))
    if cursor.fetchone() is None:
        insert = f"INSERT IGNORE INTO {_table(schema)} (table_name, updated_at) VALUES (%s, UTC_TIMESTAMP(6))"
        cursor.execute(insert, (COMPANY_ROW,))


def record(
    cursor: Any, schema: str, entry: AsOf, *, replace: bool, company_tables: Collection[str] | None = None
) -> None:
    """Set ``entry``'s table row and recompute the company row, in the caller's transaction.

    ``replace``: the load replaced the whole table (a swap), so its as-of is the table's whatever it was;
    otherwise (upsert, incremental) rows of earlier loads stay, and the as-of only moves forward.
    ``company_tables``: the company's report tables (None: every row), which the company row covers.
    """
    name = _table(schema)
    # The company row first, locked until commit: the loads of one company take turns from here on.
    cursor.execute(f"SELECT table_name FROM {name} WHERE table_name = %s FOR UPDATE", (COMPANY_ROW,))
    cursor.execute(f"SELECT data_as_of FROM {name} WHERE table_name = %s FOR UPDATE", (entry.table_name,))
    found = cursor.fetchone()
    stored = None if found is None else found[0]
    if replace or stored is None or entry.data_as_of is None or entry.data_as_of >= stored:
        _write(cursor, name, entry)
    _recompute_company(cursor, name, company_tables)


def _write(cursor: Any, name: str, entry: AsOf) -> None:
    # REPLACE (a delete and an insert) rather than an upsert: the target account needs no UPDATE privilege
    # (README "Least privilege"); the row's key is its table name, nothing else refers to it.
    cursor.execute(
        f"REPLACE INTO {name} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (
            entry.table_name,
            entry.data_as_of and utc_naive(entry.data_as_of),
            entry.snapshot_at and utc_naive(entry.snapshot_at),
            entry.logical_date and utc_naive(entry.logical_date),
            entry.run_id,
            entry.load_key,
        ),
    )


def _recompute_company(cursor: Any, name: str, company_tables: Collection[str] | None) -> None:
    # A locking read sees what other loads committed (a plain read would see this transaction's snapshot).
    cursor.execute(f"SELECT {_COLUMNS} FROM {name} WHERE table_name <> %s FOR UPDATE", (COMPANY_ROW,))
    rows = [AsOf._from_row(r) for r in cursor.fetchall()]
    if company_tables is not None:
        wanted = {t.lower() for t in company_tables}
        rows = [r for r in rows if r.table_name.lower() in wanted]
    loaded = {r.table_name.lower() for r in rows if r.data_as_of is not None}
    missing = company_tables is not None and any(t.lower() not in loaded for t in company_tables)
    dated = [r for r in rows if r.data_as_of is not None]
    if missing or not dated:
        oldest = AsOf(COMPANY_ROW, None, None, None, None, None)
    else:
        f = min(dated, key=lambda r: r.data_as_of)  # type: ignore[arg-type, return-value]
        oldest = AsOf(COMPANY_ROW, f.data_as_of, f.snapshot_at, f.logical_date, f.run_id, f.load_key)
    _write(cursor, name, oldest)


def read(cursor: Any, schema: str) -> dict[str, AsOf]:
    """Every row of ``schema``'s as-of table by table name (``'*'``: the company); empty without the table."""
    try:
        cursor.execute(f"SELECT {_COLUMNS} FROM {_table(schema)}")
    except Exception as exc:
        if getattr(exc, "args", (None,))[0] in (_NO_SUCH_TABLE, _NO_SUCH_SCHEMA):
            return {}
        raise
    return {str(r[0]): AsOf._from_row(r) for r in cursor.fetchall()}


def read_many(cursor: Any, schemas: Sequence[str], *, full: bool = True) -> dict[str, dict[str, AsOf]]:
    """``read`` for many schemas at once (the freshness page): one query finds which have the table, then one
    per ``ledger.SCHEMAS_PER_QUERY`` reads them, so a fleet's page costs a few round trips.

    ``full=False`` reads ``data_as_of`` alone (the other fields None): what the page judges and shows, and
    at 1,000 x 20 a quarter of the time, the driver's DATETIME conversions being most of it.
    """
    found: dict[str, dict[str, AsOf]] = {schema: {} for schema in schemas}
    if not schemas:
        return found
    # Which have the table: one IN list for all (a fifth of the time of lists of 50 at 1,000 schemas).
    marks = ", ".join(["%s"] * len(schemas))
    cursor.execute(
        f"SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_NAME = %s AND TABLE_SCHEMA IN ({marks})",
        (AS_OF_TABLE, *schemas),
    )
    have = {str(r[0]) for r in cursor.fetchall()}
    present = [s for s in schemas if s in have]
    columns = _COLUMNS if full else "table_name, data_as_of"
    for start in range(0, len(present), SCHEMAS_PER_QUERY):
        batch = present[start : start + SCHEMAS_PER_QUERY]
        cursor.execute(
            " UNION ALL ".join(f"SELECT %s AS _schema, {columns} FROM {_table(schema)}" for schema in batch), batch
        )
        for row in cursor.fetchall():
            entry = AsOf._from_row(row[1:]) if full else AsOf(str(row[1]), row[2], None, None, None, None)
            found[str(row[0])][entry.table_name] = entry
    return found
