"""The rows of the pipeline's bookkeeping tables, as values: what any target engine stores and returns.

Shared names apart from their implementations (like dlt's ``common/schema/typing.py``): the load, its
strategies, the target protocols (``report_pipeline.target``) and each engine's statements (e.g.
``target/mysql_logs.py``, ``target/mysql_state.py``) all import these, and this module imports no
implementation. The rules that only read these values live here too; the tables' meaning is told by
``ledger``, ``watermarks``, ``asof``, ``pending``, ``schemalog`` and ``reconcilelog``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The ``report_as_of`` row of the company as a whole: the oldest of its tables.
COMPANY_ROW = "*"
# A reconcile that compared everything and left the target as exact as the table's settings allow.
COMPLETE = ("match", "repaired")


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """A DATETIME value for the bookkeeping tables: UTC, without tzinfo (sessions run in UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class LoadRecord:
    """One ``report_loads`` row: what a successful load of one table did."""

    table_name: str
    logical_date: dt.datetime
    run_id: str
    rows_loaded: int
    load_mode: str
    load_key: str
    manifest_keys: tuple[str, ...] = ()
    finished_at: dt.datetime | None = None  # set by the server when recorded
    # The source snapshot time of the oldest extract loaded (UTC); orders same-date full refreshes.
    snapshot_at: dt.datetime | None = None


@dataclass(frozen=True)
class Watermark:
    """One ``report_watermarks`` row: how far the incremental loads of one target table have got.

    ``cursor_value`` is the highest cursor value loaded that no open transaction could still undercut
    (None after loads that found no rows); ``snapshot_at`` the source snapshot time of the newest
    extract loaded (UTC). ``pending_value`` (integer cursors) becomes the value once the write
    transactions ``pending_writers`` names have ended: ``<N``, every one below InnoDB transaction id N
    (older rows: a list of transaction ids; report_pipeline.incremental.horizon). ``source_server`` and
    ``source_position`` name the server the rows came from and its GTID position then.
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


def as_of_moves(stored: dt.datetime | None, entry: AsOf, replace: bool) -> bool:
    """Whether a load's as-of replaces the stored one: always after a whole-table load (``replace``),
    else only forward (rows of earlier upserts stay)."""
    return replace or stored is None or entry.data_as_of is None or entry.data_as_of >= stored


def company_as_of(rows: Sequence[AsOf], company_tables: Collection[str] | None) -> AsOf:
    """The company row: the oldest as-of of its tables (``company_tables``; None: every row), or empty
    (NULL) while one of them has never loaded."""
    if company_tables is not None:
        wanted = {t.lower() for t in company_tables}
        rows = [r for r in rows if r.table_name.lower() in wanted]
    loaded = {r.table_name.lower() for r in rows if r.data_as_of is not None}
    missing = company_tables is not None and any(t.lower() not in loaded for t in company_tables)
    dated = [r for r in rows if r.data_as_of is not None]
    if missing or not dated:
        return AsOf(COMPANY_ROW, None, None, None, None, None)
    f = min(dated, key=lambda r: r.data_as_of)  # type: ignore[arg-type, return-value]
    return AsOf(COMPANY_ROW, f.data_as_of, f.snapshot_at, f.logical_date, f.run_id, f.load_key)


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
