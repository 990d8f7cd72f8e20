"""One load as its strategy sees it (``LoadJob``).

Apart from ``modes`` so that the steps the strategies call (``evolution.evolve_table``,
``deletes.delete_missing``) take a job without importing the strategies that call them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from report_pipeline.asof import AsOf
from report_pipeline.guards import SwapGuard
from report_pipeline.target import Target
from report_pipeline.vocabulary import ColumnChange, CursorRange, Duplicates, Encoding, KeyColumns


@dataclass(frozen=True)
class LoadJob:
    """Everything a strategy needs to know about one load."""

    target: Target
    schema: str
    table: str
    columns: tuple[str, ...]
    encodings: tuple[Encoding, ...]
    duplicates: Duplicates
    expected_rows: int
    logical_date: dt.datetime
    run_id: str
    load_key: str
    manifest_keys: tuple[str, ...]
    guard: SwapGuard = field(default_factory=lambda: SwapGuard())
    # What the manifests' incremental extracts read (incremental.merge_ranges), or None.
    cursor: CursorRange | None = None
    # Delete detection: the key columns (and their CSV encodings) the manifests' key sets hold.
    keys: KeyColumns | None = None
    # Target sessions a strategy that loads a table no reader sees may use at once (1: serial).
    parallelism: int = 1
    # Swap: build the shadow's plain secondary indexes after its rows are in, in one ALTER.
    defer_indexes: bool = False
    # Schema evolution: columns to add or widen before the rows load (evolution.plan_evolution).
    changes: tuple[ColumnChange, ...] = ()
    # The oldest source snapshot among the manifests (UTC; None: manifests of older code).
    snapshot_at: dt.datetime | None = None
    # The source collation of each loaded column (None: not text, or unknown), in ``columns`` order.
    collations: tuple[str | None, ...] = ()
    as_of: AsOf | None = None  # what the loaded rows reflect (report_as_of), recorded with the ledger row
    company_tables: tuple[str, ...] | None = None  # the company's report tables (the as-of's company row)
