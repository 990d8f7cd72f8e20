"""Chunked extracts: splitting a big table's rows into ranges of an integer column, one extract each."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from report_pipeline.errors import TransferError
from report_pipeline.session import Parameters, prepare_session
from report_pipeline.sql import quote_identifier

MAX_CHUNKS = 256


def chunk_query(query: str, column: str, parameters: Parameters) -> str:
    """Wrap a query so it returns only ``lo <= column < hi``, with bounds bound like the query's own."""
    col = quote_identifier(column)
    if isinstance(parameters, Mapping):
        bounds = "%(_rp_lo)s AND _rp_chunk." + col + " < %(_rp_hi)s"
    else:
        bounds = "%s AND _rp_chunk." + col + " < %s"
    return f"SELECT * FROM ({query}) AS _rp_chunk WHERE _rp_chunk.{col} >= {bounds}"


def bind_chunk(parameters: Parameters, chunk: tuple[int, int]) -> tuple[Any, ...] | dict[str, Any]:
    """The query's parameters plus the chunk's bounds, in the form ``chunk_query`` expects."""
    if isinstance(parameters, Mapping):
        return {**parameters, "_rp_lo": chunk[0], "_rp_hi": chunk[1]}
    return (*parameters, chunk[0], chunk[1])


def split_range(low: int, high: int, count: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Equal-width half-open ranges covering ``[low, high]`` for about ``chunk_rows`` of ``count`` rows each."""
    chunks = min(MAX_CHUNKS, max(1, math.ceil(count / chunk_rows)))
    width = math.ceil((high - low + 1) / chunks)
    ranges = []
    start = low
    while start <= high:
        ranges.append((start, min(start + width, high + 1)))
        start += width
    return ranges


def plan_chunks(
    conn: Any,
    query: str,
    parameters: Parameters,
    column: str,
    chunk_rows: int,
) -> list[tuple[int, int]]:
    """Split the query's rows into half-open ``[lo, hi)`` ranges of ``column`` of about ``chunk_rows`` rows.

    One MIN/MAX/COUNT over the indexed column sizes the chunks; ranges are equal-width, so a chunk of
    a sparse key range holds fewer rows, never more than the whole. An empty result gives one chunk.
    It runs read-only in a consistent snapshot, like the extracts, and ends it at once.
    """
    prepare_session(conn)
    col = quote_identifier(column)
    cursor = conn.cursor()
    try:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cursor.execute(f"SELECT MIN(_rp_q.{col}), MAX(_rp_q.{col}), COUNT(*) FROM ({query}) AS _rp_q", parameters)
        low, high, count = cursor.fetchone()
        conn.rollback()
    finally:
        cursor.close()
    if low is None or not count:
        return [(0, 1)]
    for bound in (low, high):
        if isinstance(bound, float) or (not isinstance(bound, (int,)) and not str(bound).lstrip("-").isdigit()):
            raise TransferError(f"chunk column {column!r} must be an integer column, got {bound!r}")
    return split_range(int(low), int(high), int(count), chunk_rows)
