"""The load ledger ``report_loads``: one row per successful load in every target schema.

A load records its row in the same transaction as its data, through the target (``LedgerStore`` in
``report_pipeline.target``), so a load is never applied twice: a retry finds its extracts' row and skips.
BI tools and other DAGs read it to see that new data is available. The ledger's statements live with
the engine (``target/mysql_ledger.py``); the readers below take a DB-API cursor on a MySQL target and are
what the CLI, onboarding, the example consumer DAG and the freshness page call. What a row holds:
``records.LoadRecord``.
"""

from __future__ import annotations

from report_pipeline.records import LoadRecord, utc_naive
from report_pipeline.target.mysql_ledger import (
    SCHEMAS_PER_QUERY,
    history,
    history_many,
    latest,
    latest_between,
    latest_many,
    latest_per_table,
    newer_swap,
    of_run,
    recent,
    recent_many,
)
from report_pipeline.target.mysql_ledger import ensure_ledger as ensure
from report_pipeline.target.mysql_ledger import (
    find_load as find,
)
from report_pipeline.target.mysql_ledger import (
    ledger_exists as exists,
)
from report_pipeline.target.mysql_ledger import (
    record_load as record,
)

__all__ = [
    "SCHEMAS_PER_QUERY",
    "LoadRecord",
    "ensure",
    "exists",
    "find",
    "history",
    "history_many",
    "latest",
    "latest_between",
    "latest_many",
    "latest_per_table",
    "newer_swap",
    "of_run",
    "recent",
    "recent_many",
    "record",
    "utc_naive",
]
