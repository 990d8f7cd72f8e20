"""The reconcile log ``report_reconciles``: one row per reconcile of a table, what differed and what was mended.

It lives in the company's target schema beside the tables it describes, so BI users see when a table was
last compared with its source and what a repair changed. A repair's rows are also a load, recorded in
``report_loads`` (``load_mode`` ``repair``) in the repair's own transaction; this row is written after
it, committed on its own, and is also written for a comparison that repaired nothing or was refused.
The statements live with the engine (``target/mysql_logs.py``); these take a DB-API cursor on a MySQL
target and the company's schema name. What a row holds: ``records.ReconcileRecord``.
"""

from __future__ import annotations

from report_pipeline.records import COMPLETE, ReconcileRecord
from report_pipeline.target.mysql_logs import ensure_reconcile_log as ensure
from report_pipeline.target.mysql_logs import last_complete_reconcile as last_complete
from report_pipeline.target.mysql_logs import record_reconcile as record

__all__ = ["COMPLETE", "ReconcileRecord", "ensure", "last_complete", "record"]
