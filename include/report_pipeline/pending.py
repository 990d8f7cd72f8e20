"""The table ``report_pending``: swap loads of a company that publishes its day together, loaded and
checked, waiting for the company's publish (``report_pipeline.publication``).

One row per report table at most: a later load of the table replaces its row (and drops the older
shadow), so shadows never pile up. ``publishing_at`` is set (committed) right before the publish's
RENAME, so a publish that died between the RENAME and its bookkeeping is told apart, on its retry, from a
shadow somebody dropped. The load reaches it through the target (``PendingStore`` in
``report_pipeline.target``); its statements live with the engine (``target/mysql_state.py``).
What a row holds: ``records.PendingShadow``.
"""

from __future__ import annotations

from report_pipeline.records import PendingShadow

__all__ = ["PendingShadow"]
