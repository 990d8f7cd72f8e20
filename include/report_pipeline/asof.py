"""The as-of table ``report_as_of``: per report table, how current the rows now live are.

One row per table (``data_as_of``: the source snapshot time of the rows
now live, in UTC; the logical date and run of the load that made them live) and one company row,
``table_name = '*'``, holding the oldest of the company's tables (NULL while one of them has never
loaded), which is what a dashboard prints as "data as of".

A load updates its table's row and the company row in its own transaction (a publish, in the
transaction that records its tables), so the as-of never runs ahead of or behind the rows. The company
row is locked first: two loads of one company committing at once each compute it from what the other
committed, never from a stale read. The load writes it through the target (``AsOfStore`` in
``report_pipeline.target``); the statements live with the engine (``target/mysql_state.py``); ``read`` and
``read_many`` take a DB-API cursor on a MySQL target. What a row holds and its rules: ``records.AsOf``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from report_pipeline.manifest import Manifest
from report_pipeline.records import COMPANY_ROW, AsOf, utc_naive
from report_pipeline.target.mysql_state import read_as_of as read
from report_pipeline.target.mysql_state import read_as_of_many as read_many

__all__ = ["COMPANY_ROW", "AsOf", "data_as_of", "of_manifests", "read", "read_many"]


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
