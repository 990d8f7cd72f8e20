"""Drift: which rows of a target table differ from its source query's, found by key ranges on the servers.

Built on ``verify.Side``: each side is read in one consistent snapshot and every row is checksummed by
its own server (``CRC32`` of verify's row text), so no row data crosses the wire to compare. Two passes:

1. ranges: one ``GROUP BY`` per side (both sides at once) splits the rows by key into ranges of about
   ``RANGE_KEYS`` keys and returns each range's ``COUNT`` and checksum sum: a scan of each side, a few
   numbers per range over the wire;
2. rows: for the ranges whose numbers differ only, each side returns (key, row checksum) of those rows,
   compared in memory a batch of ranges at a time: **changed** (the key on both sides, other rows),
   **missing** (in the source only) and **extra** (in the target only).

A range is an interval of the key's first column when that is an integer on both sides (pass 2 reads
the differing intervals through the key's index), or else a hash bucket of the whole key (any key:
composite, text, NULL-able; pass 2 scans again and returns only those buckets' rows). Keys compare
NULL-safely: rows whose key holds a NULL (a UNIQUE key allows several) count as one key whose rows
must match as a set. ``compare_keys`` compares only given keys (a repair's recheck).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from report_pipeline.csvformat import INTEGER_TYPES
from report_pipeline.validation import quote_identifier
from report_pipeline.verify import Side

Key = tuple[Any, ...]

# Keys per range: small enough that a drifted row costs pass 2 few rows, large enough that pass 1
# returns a few numbers per RANGE_KEYS rows (measured with scripts/benchkit/reconcile.py).
RANGE_KEYS = 64
# At most this many ranges per table (memory: a few numbers each); bigger tables get wider ranges.
MAX_RANGES = 250_000
# Differing ranges per pass-2 query, and keys per key-restricted query.
RANGES_PER_QUERY = 500
KEYS_PER_QUERY = 1_000
# Differing keys named and repaired at most; past it the comparison stops naming them (overflow).
MAX_KEYS = 100_000


@dataclass(frozen=True)
class Drift:
    """What a comparison found: the key, each side's rows, the ranges, and the differing keys by kind.

    ``overflow`` means more than ``MAX_KEYS`` keys differ: the lists hold the first ones only.
    """

    key: tuple[str, ...]
    split: str
    source_rows: int
    target_rows: int
    ranges: int
    differing_ranges: int
    rows_read: tuple[int, int]
    changed: tuple[Key, ...] = ()
    missing: tuple[Key, ...] = ()
    extra: tuple[Key, ...] = ()
    overflow: bool = False

    @property
    def matches(self) -> bool:
        """Whether both sides hold the same rows."""
        return not (self.changed or self.missing or self.extra or self.overflow)

    @property
    def keys(self) -> tuple[Key, ...]:
        """Every differing key."""
        return self.changed + self.missing + self.extra


class _Split:
    """How rows are grouped into ranges: an expression per row, and the condition selecting some groups."""

    def __init__(self, key: Sequence[str], first_integer: bool, low: int, width: int, buckets: int) -> None:
        self.key, self.low, self.width, self.buckets = tuple(key), low, width, buckets
        self.first = f"_rp_v.{quote_identifier(key[0])}"
        self.by_interval = first_integer
        if first_integer:
            # Whole numbers computed here, never from the admin DB: written into the SQL as they are.
            self.group = f"({self.first} - ({int(low)})) DIV {int(width)}"
        else:
            values = [f"_rp_v.{quote_identifier(c)}" for c in key]
            flags = [f"ISNULL({v})" for v in values]
            self.group = f"MOD(CRC32(CONCAT_WS('#', {', '.join(values + flags)})), {int(buckets)})"

    def describe(self) -> str:
        if self.by_interval:
            return f"{self.key[0]} ranges of {self.width:,}"
        return f"{self.buckets:,} hash buckets of ({', '.join(self.key)})"

    def where(self, groups: Sequence[Any]) -> str:
        """A WHERE selecting the rows of these groups (intervals merged, so the key's index reads them)."""
        if not self.by_interval:
            return f"WHERE {self.group} IN ({', '.join(str(int(g)) for g in groups)})"
        conditions = [f"{self.first} IS NULL"] if None in groups else []
        numbers = sorted(int(g) for g in groups if g is not None)
        start = 0
        for i in range(1, len(numbers) + 1):
            if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
                lo = self.low + numbers[start] * self.width
                hi = self.low + (numbers[i - 1] + 1) * self.width - 1
                conditions.append(f"{self.first} BETWEEN {int(lo)} AND {int(hi)}")
                start = i
        return "WHERE " + " OR ".join(conditions)


def _split(src: Side, tgt: Side, key: Sequence[str]) -> _Split:
    """Intervals of the key's first column when it is an integer on both sides, else hash buckets."""
    first = key[0].lower()
    if src.types.get(first) in INTEGER_TYPES and tgt.types.get(first) in INTEGER_TYPES:
        bounds = [b for side in (src, tgt) for b in side.key_bounds(key[0]) if b is not None]
        low, high = (min(bounds), max(bounds)) if bounds else (0, 0)
        width = max(RANGE_KEYS, math.ceil((high - low + 1) / MAX_RANGES))
        return _Split(key, True, low, width, 0)
    # Hash buckets: sized by the target's row count (an index scan), the side a repair keeps.
    rows = int(tgt.rows("COUNT(*)")[0][0])
    return _Split(key, False, 0, 0, min(MAX_RANGES, max(1, rows // RANGE_KEYS)))


def _both(src: Side, tgt: Side, selects: tuple[str, str], tail: str) -> tuple[list[Any], list[Any]]:
    """A SELECT on each server at once (each session waits on its own server): source rows, target rows."""
    with ThreadPoolExecutor(2, thread_name_prefix="rp-drift") as pool:
        source = pool.submit(src.rows, selects[0], tail)
        target = pool.submit(tgt.rows, selects[1], tail)
        return source.result(), target.result()


def find_drift(src: Side, tgt: Side, key: Sequence[str]) -> Drift:
    """Compare every row of both sides by ``key`` (pass 1: range checksums; pass 2: rows of differing ranges)."""
    split = _split(src, tgt, key)
    sums = tuple(f"{split.group} AS _rp_g, COUNT(*), COALESCE(SUM(CRC32({s.row_text})), 0)" for s in (src, tgt))
    # ORDER BY NULL: MariaDB would sort the groups otherwise, for nothing.
    source_groups, target_groups = _both(src, tgt, (sums[0], sums[1]), "GROUP BY _rp_g ORDER BY NULL")
    source_ranges = {r[0]: (int(r[1]), int(r[2])) for r in source_groups}
    target_ranges = {r[0]: (int(r[1]), int(r[2])) for r in target_groups}
    source_rows = sum(n for n, _ in source_ranges.values())
    target_rows = sum(n for n, _ in target_ranges.values())
    groups = source_ranges.keys() | target_ranges.keys()
    differing = sorted(
        (g for g in groups if source_ranges.get(g) != target_ranges.get(g)), key=lambda g: (g is not None, g)
    )
    found = _Found(src, tgt, key)
    for batch in _batches(differing, RANGES_PER_QUERY):
        found.add(*_both(src, tgt, found.selects, split.where(batch)))
        if found.overflow:
            break
    return Drift(
        key=tuple(key),
        split=split.describe(),
        source_rows=source_rows,
        target_rows=target_rows,
        ranges=len(groups),
        differing_ranges=len(differing),
        rows_read=(source_rows + found.read[0], target_rows + found.read[1]),
        changed=tuple(found.changed),
        missing=tuple(found.missing),
        extra=tuple(found.extra),
        overflow=found.overflow,
    )


def compare_keys(src: Side, tgt: Side, key: Sequence[str], keys: Sequence[Key]) -> Drift:
    """Compare only the rows of ``keys`` (NULL-safe), e.g. the keys a repair re-copied."""
    found = _Found(src, tgt, key)
    for batch in _batches(list(keys), KEYS_PER_QUERY):
        found.compare_keys(batch)
    return Drift(
        key=tuple(key),
        split=f"{len(keys):,} keys",
        source_rows=found.read[0],
        target_rows=found.read[1],
        ranges=len(keys),
        differing_ranges=len(found.changed) + len(found.missing) + len(found.extra),
        rows_read=found.read,
        changed=tuple(found.changed),
        missing=tuple(found.missing),
        extra=tuple(found.extra),
        overflow=found.overflow,
    )


def key_condition(alias: str, key: Sequence[str], keys: Sequence[Key], marks: Sequence[str]) -> str:
    """A condition true for rows whose ``key`` is one of ``keys``, NULL-safe; ``marks`` are the placeholders
    of ``key_values(key, keys)``, in order (``verify.bind_after`` makes them)."""
    columns = [f"{alias}.{quote_identifier(c)}" for c in key]
    if len(key) == 1:
        listed = ", ".join(marks)
        parts = [f"{columns[0]} IN ({listed})"] if marks else []
        if any(k[0] is None for k in keys):
            parts.append(f"{columns[0]} IS NULL")
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    one = iter(marks)
    return "(" + " OR ".join("(" + " AND ".join(f"{c} <=> {next(one)}" for c in columns) + ")" for _ in keys) + ")"


def key_values(key: Sequence[str], keys: Sequence[Key]) -> list[Any]:
    """The values ``key_condition`` binds, in order (a single-column key's NULL is tested, not bound)."""
    if len(key) == 1:
        return [k[0] for k in keys if k[0] is not None]
    return [v for k in keys for v in k]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Found:
    """Pass 2: each side's (key, row checksum) for a WHERE, compared as multisets per key."""

    def __init__(self, src: Side, tgt: Side, key: Sequence[str]) -> None:
        self.src, self.tgt, self.key = src, tgt, key
        columns = ", ".join(f"_rp_v.{quote_identifier(c)}" for c in key)
        self.selects = (f"{columns}, CRC32({src.row_text})", f"{columns}, CRC32({tgt.row_text})")
        self.changed: list[Key] = []
        self.missing: list[Key] = []
        self.extra: list[Key] = []
        self.read = (0, 0)
        self.overflow = False

    def compare_keys(self, keys: Sequence[Key]) -> None:
        values = key_values(self.key, keys)
        found = []
        for side, select in zip((self.src, self.tgt), self.selects, strict=True):
            marks, parameters = side.bind(values)
            found.append(side.rows(select, f"WHERE {key_condition('_rp_v', self.key, keys, marks)}", parameters))
        self.add(found[0], found[1])

    def add(self, source: list[tuple[Any, ...]], target: list[tuple[Any, ...]]) -> None:
        self.read = (self.read[0] + len(source), self.read[1] + len(target))
        width = len(self.key)
        mine: dict[Key, Counter[int]] = {}
        theirs: dict[Key, Counter[int]] = {}
        for rows, into in ((source, mine), (target, theirs)):
            for row in rows:
                into.setdefault(tuple(row[:width]), Counter())[int(row[width])] += 1
        for key in mine.keys() | theirs.keys():
            if mine.get(key) == theirs.get(key):
                continue
            if len(self.changed) + len(self.missing) + len(self.extra) >= MAX_KEYS:
                self.overflow = True
                return
            if key not in theirs:
                self.missing.append(key)
            elif key not in mine:
                self.extra.append(key)
            else:
                self.changed.append(key)
