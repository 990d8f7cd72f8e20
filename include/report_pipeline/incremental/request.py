"""What an incremental table's extract is asked for, read from the target before it starts.

``cursor_request``: where the extract starts (the stored watermark, ``report_pipeline.watermarks``);
``delete_key``: which key columns it stores for delete detection (``incremental.deletes``).
"""

from __future__ import annotations

from report_pipeline.config import Company, TableSpec, table_label
from report_pipeline.connections import Connections
from report_pipeline.errors import RefusedError
from report_pipeline.guards import narrowest_key
from report_pipeline.incremental.cursor import CursorRequest
from report_pipeline.session import opened
from report_pipeline.target.mysql import MySqlTarget


def cursor_request(
    connections: Connections, company: Company, spec: TableSpec, *, reset_watermark: bool = False
) -> CursorRequest | None:
    """Where an incremental table's extract starts: its watermark, read (read-only) from the target.

    None for a table without a cursor. ``reset_watermark`` (a manual run's choice) reads every row, and
    the load of that extract replaces the watermark instead of only moving it forward.
    """
    if spec.cursor_column is None:
        return None
    stored = None
    if not reset_watermark:
        with opened(connections.target()) as conn:
            stored = MySqlTarget(conn).watermark(company.schema, spec.target.table)
    if stored is not None and stored.cursor_column.lower() != spec.cursor_column.lower():
        stored = None  # the row names another cursor now: its watermark means nothing for this one
    return CursorRequest(
        column=spec.cursor_column,
        watermark=None if stored is None else stored.cursor_value,
        overlap=spec.cursor_overlap,
        reset=reset_watermark,
        pending=None if stored is None else stored.pending_value,
        pending_writers="" if stored is None else stored.pending_writers,
        server=None if stored is None else stored.source_server,
        position=None if stored is None else stored.source_position,
    )


def delete_key(connections: Connections, company: Company, spec: TableSpec) -> tuple[str, ...]:
    """The target key whose values the extract stores for delete detection; empty when the row has none.

    The narrowest PRIMARY or UNIQUE key made of loaded columns (rows are replaced by such a key);
    RefusedError when there is none.
    """
    if spec.delete_detection != "keys":
        return ()
    with opened(connections.target()) as conn:
        keys = MySqlTarget(conn).unique_keys(company.schema, spec.target.table)
    key = narrowest_key(keys, spec.target.columns)
    if key is None:
        raise RefusedError(
            f"{table_label(company.alias, spec.name, spec.id)}: delete_detection 'keys' needs a PRIMARY or "
            f"UNIQUE key of loaded columns on {company.schema}.{spec.target.table}"
        )
    return key
