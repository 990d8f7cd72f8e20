"""Incremental extracts: the cursor column's rules, the filtered query, and the highest value seen.

An ``incremental`` table's query is wrapped so the source returns only rows whose cursor column is at
or after the stored watermark minus an overlap; the watermark itself lives in the target
(``report_pipeline.watermarks``) and moves only when a load commits. ``>=`` rather than ``>``: a row
committed later with exactly the highest value already loaded is still found, and re-reading the
boundary rows is harmless because incremental loads replace rows by key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.csvformat import INTEGER_TYPES, type_name
from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.incremental.horizon import decide, earlier, later, read_server, start_snapshot
from report_pipeline.session import Parameters, prepare_session, probe_columns
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import CursorKind, CursorRange, Horizon

# TIMESTAMP, DATE, DATETIME, NEWDATE: compared in the session's UTC, printed in a sortable form.
TIME_TYPES = frozenset({7, 10, 12, 14})
# Integer types, less YEAR: a year is not a change counter.
CURSOR_INTEGER_TYPES = INTEGER_TYPES - {13}
# Without a stated overlap, a time cursor re-reads five minutes before its watermark: long enough for
# a transaction that stamped its rows and committed a little later; an integer cursor re-reads none.
DEFAULT_TIME_OVERLAP_SECONDS = 300


@dataclass(frozen=True)
class CursorRequest:
    """What an incremental extract is asked to do: read rows at or after ``watermark`` minus ``overlap``."""

    column: str
    watermark: str | None
    overlap: int | None = None
    reset: bool = False
    # What the stored watermark keeps pending (an integer value and the transactions it waits for).
    pending: str | None = None
    pending_writers: str = ""
    # The server and GTID position the stored watermark's rows came from.
    server: str | None = None
    position: str | None = None


def cursor_problem(description: Sequence[Sequence[Any]], column: str) -> str | None:
    """Why ``column`` of a query's result (its DB-API description) cannot be a cursor, or None."""
    found = [d for d in description if str(d[0]).lower() == column.lower()]
    if not found:
        names = [str(d[0]) for d in description]
        return f"cursor_column {column!r} is not a column of query_select's result {names}"
    type_code, null_ok = found[0][1], found[0][6]
    if type_code not in TIME_TYPES and type_code not in CURSOR_INTEGER_TYPES:
        return (
            f"cursor_column {column!r} is {type_name(type_code)}; it must be a DATETIME, TIMESTAMP or DATE "
            "(e.g. updated_at) or an increasing integer"
        )
    if null_ok:
        return (
            f"cursor_column {column!r} can be NULL, and rows with a NULL cursor would never be copied after the "
            f"first run; make it NOT NULL, or select COALESCE({column}, <a NOT NULL column>) AS {column}"
        )
    return None


def cursor_kind(description: Sequence[Sequence[Any]], column: str) -> CursorKind:
    """The kind of a cursor column that passed ``cursor_problem``."""
    type_code = next(d[1] for d in description if str(d[0]).lower() == column.lower())
    return "time" if type_code in TIME_TYPES else "integer"


def check_cursor(description: Sequence[Sequence[Any]], column: str) -> CursorKind:
    """The cursor's kind; ConfigError naming what is wrong with it otherwise."""
    problem = cursor_problem(description, column)
    if problem:
        raise ConfigError(problem)
    return cursor_kind(description, column)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def since(kind: CursorKind, watermark: str | None, overlap: int | None) -> str | int | None:
    """The lowest cursor value to read: the watermark less the overlap (seconds, or integer units)."""
    if watermark is None:
        return None
    if kind == "integer":
        return int(watermark) - (overlap or 0)
    seconds = DEFAULT_TIME_OVERLAP_SECONDS if overlap is None else overlap
    return (_time(watermark) - dt.timedelta(seconds=seconds)).isoformat(sep=" ")


def filtered_query(query: str, column: str, parameters: Parameters) -> str:
    """Wrap a query so it returns only rows whose cursor is at or after a bound value (see ``bind_since``)."""
    col = quote_identifier(column)
    mark = "%(_rp_since)s" if isinstance(parameters, Mapping) else "%s"
    return f"SELECT * FROM ({query}) AS _rp_inc WHERE _rp_inc.{col} >= {mark}"


def bind_since(parameters: Parameters, value: str | int) -> tuple[Any, ...] | dict[str, Any]:
    """The query's parameters plus the cursor bound, in the form ``filtered_query`` expects."""
    if isinstance(parameters, Mapping):
        return {**parameters, "_rp_since": value}
    return (*parameters, value)


def narrowed(
    conn: Any, query: str, parameters: Parameters, request: CursorRequest, kind: CursorKind | None = None
) -> tuple[str, Parameters, CursorKind, str | None]:
    """The query (and parameters) narrowed to the rows at or after the request's start, its cursor kind
    (probed unless given) and that start (None: every row, on a first run or a reset). ConfigError for an
    unusable cursor."""
    if kind is None:
        kind = check_cursor(probe_columns(conn, query, parameters), request.column)
    start = None if request.reset else since(kind, request.watermark, request.overlap)
    if start is None:
        return query, parameters, kind, None
    return filtered_query(query, request.column, parameters), bind_since(parameters, start), kind, str(start)


def planning_horizon(
    conn: Any, query: str, parameters: Parameters, request: CursorRequest, kind: CursorKind
) -> Horizon:
    """The commit horizon of a chunk plan: the highest cursor value of the (narrowed) query, read in a
    snapshot of its own before any chunk's, capped by the write transactions open around it."""
    prepare_session(conn)
    server = read_server(conn)
    cursor = conn.cursor()
    try:
        before, after = start_snapshot(conn, cursor, kind, not server.replica)
        col = quote_identifier(request.column)
        cursor.execute(f"SELECT MAX(_rp_top.{col}) FROM ({query}) AS _rp_top", parameters)
        top = cursor.fetchone()[0]
        conn.rollback()
    finally:
        cursor.close()
    seen = None if top is None else _text_form(top)
    return decide(kind, seen, before, after, request.pending, request.pending_writers)


def _text_form(value: Any) -> str:
    """A cursor value as the extract's raw text form prints it (``YYYY-MM-DD HH:MM:SS[.ffffff]``)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    return str(value)


class MaxTracker:
    """The highest cursor value among streamed raw rows (MySQL text forms, as bytes)."""

    def __init__(self, kind: CursorKind, index: int) -> None:
        self.kind = kind
        self.index = index
        self.value: str | None = None

    def see(self, rows: Iterable[Sequence[Any]]) -> None:
        """Take one batch of rows into account."""
        values = [r[self.index] for r in rows]
        if not values:
            return
        if any(v is None for v in values):
            raise TransferError("the cursor column returned NULL, which an incremental table cannot copy")
        if self.kind == "integer":
            top = str(max(map(int, values)))
        else:
            # One column prints every value in one fixed-width form, so the text order is the time order.
            top = max(values).decode() if isinstance(values[0], bytes) else str(max(values))
        self.value = later(self.kind, self.value, top)


def merge_ranges(ranges: Sequence[CursorRange | None]) -> CursorRange | None:
    """One range for the manifests of one load (a chunked extract has one per chunk); None if any lacks one.

    The load starts from the lowest ``since`` and counts as old as its oldest snapshot, so a load of
    chunks is never taken for newer than its oldest chunk. Its watermark is capped by the lowest
    ``ceiling``: every chunk of one plan carries the horizon read once at planning, before any chunk,
    so a row changed in chunk 0 after chunk 0 was read stays above the next run's start, however far
    later chunks saw. Chunks of older code (no horizon) do not move the watermark at all; one unchunked
    manifest of older code moves it to its highest value, as it did. Chunks read from different
    servers are refused.
    """
    if not ranges or any(r is None for r in ranges):
        return None
    known = [r for r in ranges if r is not None]
    first = known[0]
    if any((r.column.lower(), r.kind) != (first.column.lower(), first.kind) for r in known):
        raise TransferError(f"the manifests name different cursor columns: {sorted({r.column for r in known})}")
    servers = sorted({r.server for r in known if r.server is not None})
    if len(servers) > 1:
        raise TransferError(
            f"the chunks of this load were read from different source servers {servers}; re-run the chunk plan "
            "and its extracts so every chunk reads one server"
        )
    lowest: str | None = first.since
    highest: str | None = None
    for r in known:
        highest = later(first.kind, highest, r.max_seen)
        if r.since is None or lowest is None:
            lowest = None
        elif later(first.kind, lowest, r.since) == lowest:
            lowest = r.since
    oldest = min(known, key=lambda r: _time(r.snapshot_at))
    if any(r.guarded is None for r in known):
        ceiling = highest if len(known) == 1 else None
    else:
        ceiling = first.ceiling
        for r in known[1:]:
            ceiling = earlier(first.kind, ceiling, r.ceiling) if r.ceiling is not None and ceiling is not None else None
    return CursorRange(
        column=first.column,
        kind=first.kind,
        since=lowest,
        max_seen=highest,
        snapshot_at=oldest.snapshot_at,
        reset=any(r.reset for r in known),
        ceiling=ceiling,
        pending=first.pending,
        writers=first.writers,
        guarded=None if any(r.guarded is None for r in known) else all(r.guarded for r in known),
        server=servers[0] if servers else None,
        position=oldest.position,
    )
