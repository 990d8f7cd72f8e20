"""The watermark table ``report_watermarks``: per target table, the highest cursor value loaded.

It lives in each company's target schema beside the rows it describes, so an incremental load writes its
rows, its ledger row and its new watermark in one transaction, through the target (``WatermarkStore`` in
``report_pipeline.target``): a crash leaves all three as they were. The extract reads it (read-only) to
know where to start. The statements live with the engine (``target/mysql_state.py``); ``read`` takes a
DB-API cursor on a MySQL target. What a row holds: ``records.Watermark``.
"""

from __future__ import annotations

from report_pipeline.records import Watermark
from report_pipeline.target.mysql_state import ensure_watermarks as ensure
from report_pipeline.target.mysql_state import read_watermark as read
from report_pipeline.target.mysql_state import write_watermark as write

__all__ = ["Watermark", "ensure", "read", "write"]
