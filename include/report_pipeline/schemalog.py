"""The schema change log ``report_schema_changes``: each column schema evolution added or widened.

It lives in the company's target schema beside the tables it describes, so BI users see why a column
appeared (or grew) and when. A load records its changes, committed on their own, BEFORE they go live:
an upsert or incremental load before its ALTER, a swap before its RENAME. A lost connection in between
must not leave a live change unlogged (the retry finds the column there and has nothing to log); a
logged change that then failed is planned and logged again by the retry, and the repeat is skipped:
a change is not added when the column's latest row is this very change. (A change undone by hand and then
made again by evolution is therefore logged once, at its first time.)

The load writes it through the target (``SchemaLogStore`` in ``report_pipeline.target``); the statements
live with the engine (``target/mysql_logs.py``), and these take a DB-API cursor on a MySQL target.
"""

from __future__ import annotations

from report_pipeline.target.mysql_logs import added_columns
from report_pipeline.target.mysql_logs import ensure_schema_log as ensure
from report_pipeline.target.mysql_logs import record_schema_change as record
from report_pipeline.target.mysql_logs import schema_changes as changes

__all__ = ["added_columns", "changes", "ensure", "record"]
