"""Verify: does the target table hold exactly the source query's rows? Computed by the servers.

Each side returns ``COUNT(*)`` and ``SUM(CRC32(row text))``, an order-independent checksum, over the
query_insert columns; no row leaves either server. The row text is ``CONCAT_WS('#', c1, ..., cN,
ISNULL(c1), ..., ISNULL(cN))``: CONCAT_WS skips NULLs, so the ISNULL flags tell NULL from an empty
string, and FLOAT columns are compared as DOUBLE (the text protocol prints FLOAT with ~6 digits). Both
sessions run in UTC with utf8mb4, so TIMESTAMPs print alike; the columns must have the same types on
both sides (as ``onboard`` creates them), or equal values print differently and are reported.

On a difference, the key range is halved on both servers until the first differing range is small:
the message names it, so an operator looks at a handful of rows, not the whole table. The key is the
table's chunk column, or else its single-column integer PRIMARY/UNIQUE key; without one, only the
totals are compared.

On a live source, rows changed after the load differ until the next load copies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.csvformat import FLOAT, INTEGER_TYPES
from report_pipeline.session import Parameters, prepare_session, probe_columns, rollback_quietly
from report_pipeline.validation import quote_identifier

# Halving stops at a range of this many keys (or after MAX_STEPS halvings).
SMALL_RANGE = 16
MAX_STEPS = 64


def bind_after(parameters: Parameters, values: Sequence[Any]) -> tuple[list[str], Parameters]:
    """Placeholders for ``values`` placed after a query's own placeholders, and all the parameters.

    The values are bound like the query's own parameters: by name, or after them in order.
    """
    if isinstance(parameters, Mapping):
        names = [f"_rp_{i}" for i in range(len(values))]
        return [f"%({n})s" for n in names], {**parameters, **dict(zip(names, values, strict=True))}
    return ["%s"] * len(values), (*parameters, *values)


@dataclass(frozen=True)
class Totals:
    """One side's row count and checksum."""

    rows: int
    checksum: int


@dataclass(frozen=True)
class Verdict:
    """What verify found: both sides' totals and, on a difference, the first differing key range."""

    source: Totals
    target: Totals
    key: str | None = None
    first_difference: tuple[int, int] | None = None

    @property
    def matches(self) -> bool:
        """Whether source and target agree."""
        return self.source == self.target

    def describe(self) -> str:
        """One line for a person: the totals, and where they differ."""
        totals = (
            f"source {self.source.rows} rows (checksum {self.source.checksum}), "
            f"target {self.target.rows} rows (checksum {self.target.checksum})"
        )
        if self.matches:
            return f"match: {totals}"
        where = ""
        if self.first_difference is not None:
            lo, hi = self.first_difference
            where = f"; first difference in {self.key} {lo} to {hi} (inclusive)"
        elif self.key is None:
            where = "; no integer key to narrow it down (set chunk_column, or give the table an integer key)"
        return f"DIFFERENT: {totals}{where}"


class Side:
    """One server's relation (the source query as a derived table, or the target table) under one alias.

    Every count, checksum and row of one side is read in one consistent snapshot, started here; with
    ``snapshot`` False the side reads in the session's current transaction instead (what a load about
    to commit sees of its own rows). ``row_text`` is the text each row's CRC32 is taken of.
    """

    def __init__(
        self, conn: Any, relation: str, parameters: Parameters, columns: Sequence[str], *, snapshot: bool = True
    ) -> None:
        self.conn = conn
        self.relation = relation
        self.parameters = parameters
        if snapshot:
            prepare_session(conn)
            cursor = conn.cursor()
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cursor.close()
        described = {str(d[0]).lower(): d[1] for d in probe_columns(conn, f"SELECT * FROM {relation}", parameters)}
        self.types = {c.lower(): described.get(c.lower()) for c in columns}
        values = [self._value(c) for c in columns]
        flags = [f"ISNULL(_rp_v.{quote_identifier(c)})" for c in columns]
        self.row_text = f"CONCAT_WS('#', {', '.join(values + flags)})"

    def _value(self, column: str) -> str:
        quoted = f"_rp_v.{quote_identifier(column)}"
        return f"CAST({quoted} AS DOUBLE)" if self.types.get(column.lower()) == FLOAT else quoted

    def bind(self, values: Sequence[Any]) -> tuple[list[str], Parameters]:
        """Placeholders for ``values`` in a WHERE after the relation, and every parameter to run it with."""
        return bind_after(self.parameters, values)

    def rows(self, select: str, tail: str = "", parameters: Parameters | None = None) -> list[tuple[Any, ...]]:
        """``SELECT select FROM relation tail``, every row (``tail``: WHERE / GROUP BY, bound by ``bind``)."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(
                f"SELECT {select} FROM {self.relation} {tail}", self.parameters if parameters is None else parameters
            )
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def _run(self, select: str, where: str = "", parameters: Parameters | None = None) -> tuple[Any, ...]:
        return self.rows(select, where, parameters)[0]

    def totals(self, key: str | None = None, lo: int = 0, hi: int = 0) -> Totals:
        """Count and checksum, of every row or of ``lo <= key <= hi``."""
        select = f"COUNT(*), COALESCE(SUM(CRC32({self.row_text})), 0)"
        if key is None:
            rows, checksum = self._run(select)
            return Totals(int(rows), int(checksum))
        marks, bound = self.bind((lo, hi))
        rows, checksum = self._run(
            select, f"WHERE _rp_v.{quote_identifier(key)} BETWEEN {marks[0]} AND {marks[1]}", bound
        )
        return Totals(int(rows), int(checksum))

    def key_bounds(self, key: str) -> tuple[int | None, int | None]:
        """MIN and MAX of the key."""
        lo, hi = self._run(f"MIN(_rp_v.{quote_identifier(key)}), MAX(_rp_v.{quote_identifier(key)})")
        return (None if lo is None else int(lo)), (None if hi is None else int(hi))


def source_side(conn: Any, query: str, parameters: Parameters, columns: Sequence[str]) -> Side:
    """The source query's rows as a ``Side``, in a snapshot of their own."""
    return Side(conn, f"({query}) AS _rp_v", parameters, columns)


def target_side(conn: Any, schema: str, table: str, columns: Sequence[str], *, snapshot: bool = True) -> Side:
    """The target table's rows as a ``Side`` (``snapshot`` False: in the session's current transaction)."""
    return Side(conn, f"{quote_identifier(schema)}.{quote_identifier(table)} AS _rp_v", (), columns, snapshot=snapshot)


def verify(
    source: Any,
    query: str,
    parameters: Parameters,
    target: Any,
    schema: str,
    table: str,
    columns: Sequence[str],
    keys: Sequence[str] = (),
) -> Verdict:
    """Compare the source query's result with ``schema.table`` over ``columns``.

    ``keys`` are candidate integer key columns in order of preference (the chunk column, then the
    target's single-column keys); the first that is an integer on both sides narrows a difference.
    """
    tgt = target_side(target, schema, table, columns)
    src = source_side(source, query, parameters, columns)
    try:
        verdict = Verdict(src.totals(), tgt.totals())
        if verdict.matches:
            return verdict
        key = next(
            (
                k
                for k in keys
                if src.types.get(k.lower()) in INTEGER_TYPES and tgt.types.get(k.lower()) in INTEGER_TYPES
            ),
            None,
        )
        if key is None:
            return verdict
        return Verdict(verdict.source, verdict.target, key, _first_difference(src, tgt, key))
    finally:
        rollback_quietly(source)
        rollback_quietly(target)


def _first_difference(src: Side, tgt: Side, key: str) -> tuple[int, int] | None:
    """Halve the key range on both servers, keeping the lower half whenever it differs."""
    bounds = [b for side in (src, tgt) for b in side.key_bounds(key) if b is not None]
    if not bounds:
        return None
    lo, hi = min(bounds), max(bounds)
    for _ in range(MAX_STEPS):
        if hi - lo < SMALL_RANGE:
            break
        mid = (lo + hi) // 2
        if src.totals(key, lo, mid) != tgt.totals(key, lo, mid):
            hi = mid
        else:
            lo = mid + 1
    return lo, hi
