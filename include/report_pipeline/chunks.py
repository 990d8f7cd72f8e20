"""Chunked extracts: a big table's rows split on an integer column, one extract each, every row once.

Coverage is by construction, never by what planning saw: a plan is ranges that together cover every
integer, the first and last open-ended (``col < b1`` ... ``col >= bn``), plus one chunk for
``col IS NULL``. MIN/MAX/COUNT only decide where the boundaries fall, so rows inserted after planning
(above the planned MAX or below the planned MIN) and rows whose chunk column is NULL are still
copied, and an empty result still plans the NULL chunk and one open range (never zero extracts).

The chunk column must have an integer type in the query's result, read from the server's result
description (``session.probe_columns``), never judged from values: as text, '10' sorts before '9'.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.csvformat import INTEGER_TYPES, type_name
from report_pipeline.errors import ConfigError, TransferError
from report_pipeline.horizon import Horizon
from report_pipeline.session import Parameters, prepare_session, probe_columns
from report_pipeline.validation import quote_identifier

MAX_CHUNKS = 256

# The names users know from CREATE TABLE, for the messages; anything else goes by its driver name.
_SQL_TYPE_NAMES = {
    0: "DECIMAL",
    246: "DECIMAL",
    4: "FLOAT",
    5: "DOUBLE",
    15: "VARCHAR",
    253: "VARCHAR",
    254: "CHAR",
    249: "BLOB/TEXT",
    250: "BLOB/TEXT",
    251: "BLOB/TEXT",
    252: "BLOB/TEXT",
}


@dataclass(frozen=True)
class Chunk:
    """One chunk of a plan: the rows with ``low <= column < high`` (None: open), or those with NULL.

    ``index`` and ``count`` place it in its plan, so the load can tell that it was given every chunk.
    It travels as JSON (``to_json``): through XCom to its extract, and inside the extract's manifest.
    """

    index: int
    count: int
    low: int | None = None
    high: int | None = None
    nulls: bool = False
    # An incremental table's commit horizon, read once at planning before any chunk (tasks.plan_table_chunks):
    # the load's watermark never passes what that earliest snapshot allowed, however late a chunk runs.
    horizon: Horizon | None = None

    def label(self, column: str | None) -> str:
        """What the chunk covers, as the UI names its mapped extract: ``id [250, 500)``, ``id IS NULL``."""
        col = column or "chunk"
        if self.nulls:
            return f"{col} IS NULL"
        if self.low is None and self.high is None:
            return f"{col} IS NOT NULL"
        if self.low is None:
            return f"{col} < {self.high}"
        if self.high is None:
            return f"{col} >= {self.low}"
        return f"{col} [{self.low}, {self.high})"

    def to_json(self) -> dict[str, Any]:
        """The chunk as a JSON object; ``None`` bounds are open ends, ``nulls`` marks the NULL chunk."""
        body: dict[str, Any] = {
            "index": self.index,
            "count": self.count,
            "low": self.low,
            "high": self.high,
            "nulls": self.nulls,
        }
        if self.horizon is not None:
            body["horizon"] = self.horizon.to_json()
        return body

    @classmethod
    def from_json(cls, value: Any) -> Chunk:
        """Read ``to_json``'s form back; TransferError for anything else (a hand-edited XCom)."""
        try:
            if not isinstance(value, Mapping):
                raise TypeError(f"not an object: {value!r}")
            index, count, nulls = value["index"], value["count"], value.get("nulls", False)
            low, high = value.get("low"), value.get("high")
            ints = (index, count, *(b for b in (low, high) if b is not None))
            if any(isinstance(v, bool) or not isinstance(v, int) for v in ints) or not isinstance(nulls, bool):
                raise TypeError(f"index, count and bounds must be integers: {dict(value)!r}")
            if not 0 <= index < count or (nulls and (low, high) != (None, None)):
                raise ValueError(f"not a chunk of a plan: {dict(value)!r}")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"empty range: {dict(value)!r}")
            horizon = Horizon.from_json(value["horizon"]) if value.get("horizon") is not None else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransferError(f"malformed chunk: {exc}") from exc
        return cls(index, count, low, high, nulls, horizon)

    def bind(self, query: str, column: str, parameters: Parameters) -> tuple[str, Parameters]:
        """``query`` narrowed to this chunk's rows, and its parameters plus the chunk's bounds.

        Bounds are bound like the query's own parameters (``%s`` or ``%(name)s``), never pasted in.
        """
        col = f"_rp_chunk.{quote_identifier(column)}"
        named = isinstance(parameters, Mapping)
        conditions: list[str] = []
        bounds: dict[str, int] = {}
        if self.nulls:
            conditions.append(f"{col} IS NULL")
        elif self.low is None and self.high is None:
            conditions.append(f"{col} IS NOT NULL")
        if self.low is not None:
            conditions.append(f"{col} >= " + ("%(_rp_lo)s" if named else "%s"))
            bounds["_rp_lo"] = self.low
        if self.high is not None:
            conditions.append(f"{col} < " + ("%(_rp_hi)s" if named else "%s"))
            bounds["_rp_hi"] = self.high
        sql = f"SELECT * FROM ({query}) AS _rp_chunk WHERE " + " AND ".join(conditions)
        if isinstance(parameters, Mapping):
            return sql, {**parameters, **bounds}
        return sql, (*parameters, *bounds.values())


def boundaries(low: int, high: int, count: int, chunk_rows: int) -> list[int]:
    """Where to cut ``[low, high]`` into equal-width ranges of about ``chunk_rows`` of ``count`` rows each.

    Ranges are equal-width, so a chunk of a sparse key range holds fewer rows, never more than all.
    """
    ranges = min(MAX_CHUNKS, max(1, math.ceil(count / chunk_rows)))
    width = math.ceil((high - low + 1) / ranges)
    return [low + width * i for i in range(1, ranges) if low + width * i <= high]


def chunks_between(cuts: Sequence[int]) -> list[Chunk]:
    """The plan for boundaries ``cuts``: open first range, ranges between, open last range, NULL chunk."""
    edges: list[int | None] = [None, *cuts, None]
    count = len(edges)  # len(cuts) + 1 ranges, plus the NULL chunk
    ranges = [Chunk(i, count, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    return [*ranges, Chunk(count - 1, count, nulls=True)]


def chunk_column_type(description: Sequence[Sequence[Any]], column: str) -> int:
    """The type code of ``column`` in a query's result description; ConfigError if it is not there.

    MySQL compares column names without regard to case, so ``ID`` names an ``id`` result column.
    """
    found = [d for d in description if d[0] == column] or [
        d for d in description if str(d[0]).lower() == column.lower()
    ]
    if found:
        return int(found[0][1])
    names = [d[0] for d in description]
    raise ConfigError(
        f"chunk column {column!r} is not a column of the query's result {names}; "
        "set tables.chunk_column to one of its integer columns or NULL"
    )


def check_chunk_column(description: Sequence[Sequence[Any]], column: str) -> None:
    """ConfigError unless ``column`` is an integer-typed column of the result (decided by type alone)."""
    code = chunk_column_type(description, column)
    if code not in INTEGER_TYPES:
        name = _SQL_TYPE_NAMES.get(code, type_name(code))
        raise ConfigError(
            f"chunk column {column!r} is {name}, not an integer type; "
            "set tables.chunk_column to an integer column or NULL"
        )


def plan_chunks(conn: Any, query: str, parameters: Parameters, column: str, chunk_rows: int) -> list[Chunk]:
    """The chunks of the query's rows on ``column``: about ``chunk_rows`` rows each, covering every row.

    A zero-row probe checks the column's type first; one MIN/MAX/COUNT over the indexed column then
    places the boundaries. ConfigError when the column is missing or not of an integer type.
    It runs read-only in a consistent snapshot, like the extracts, and ends it at once.
    """
    prepare_session(conn)
    check_chunk_column(probe_columns(conn, query, parameters), column)
    col = quote_identifier(column)
    cursor = conn.cursor()
    try:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cursor.execute(f"SELECT MIN(_rp_q.{col}), MAX(_rp_q.{col}), COUNT(*) FROM ({query}) AS _rp_q", parameters)
        low, high, count = cursor.fetchone()
        conn.rollback()
    finally:
        cursor.close()
    if low is None or high is None:
        return chunks_between([])
    return chunks_between(boundaries(int(low), int(high), int(count), chunk_rows))


def chunk_set_problem(chunks: Sequence[Chunk | None]) -> str | None:
    """Why the chunks of one load's manifests are not exactly one whole plan, or None when they are.

    Unchunked manifests need no plan; chunked ones must all come from one plan and hold each of its
    chunks once, so a lost or doubled mapped extract fails the load instead of loading part of the rows.
    """
    planned = [c for c in chunks if c is not None]
    if not planned:
        return None
    if len(planned) != len(chunks):
        return "the load was given chunked and unchunked extracts together"
    counts = sorted({c.count for c in planned})
    if len(counts) != 1:
        return f"the chunks come from plans of different sizes {counts}"
    count = counts[0]
    indexes = sorted(c.index for c in planned)
    missing = sorted(set(range(count)) - set(indexes))
    doubled = sorted({i for i in indexes if indexes.count(i) > 1})
    if missing or doubled:
        problems = [f"chunk(s) {missing} missing"] if missing else []
        problems += [f"chunk(s) {doubled} given more than once"] if doubled else []
        return f"the plan has {count} chunks but the load was given {len(planned)}: " + ", ".join(problems)
    # Every chunk once is not enough if they come from two plans: the ranges must tile the column.
    ordered = sorted(planned, key=lambda c: c.index)
    ranges, nulls = ordered[:-1], ordered[-1]
    edges = [(c.low, c.high) for c in ranges]
    tiles = (
        nulls.nulls
        and not any(c.nulls for c in ranges)
        and bool(ranges)
        and ranges[0].low is None
        and ranges[-1].high is None
        and all(a.high is not None and a.high == b.low for a, b in itertools.pairwise(ranges))
    )
    if not tiles:
        return f"the chunks' ranges {edges} (and NULL chunk) do not cover every value exactly once"
    return None
