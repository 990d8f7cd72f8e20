"""The placeholders of a ``query_select``, read the way the MySQL driver will read them.

MySQLdb does not bind parameters on the server: it runs Python's ``query % parameters`` over the
whole text on the client, string literals and comments included. So the placeholders a query
really has are the '%' directives of the whole text (``percents``), and where each one sits
(code, literal or comment, from the tokeniser) decides whether it is safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from report_pipeline.errors import ConfigError, show_value
from report_pipeline.validation.tokens import Segment, SegmentKind, lex, segment_at

__all__ = ["Percent", "check_placeholders", "count_placeholders", "percents"]

_NAMED_PLACEHOLDER_RE: Final = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")

PercentKind = Literal["escape", "positional", "named", "bad"]


@dataclass(frozen=True)
class Percent:
    """One '%' directive: ``%%`` (escape), ``%s`` (positional), ``%(name)s`` (named) or anything else (bad)."""

    kind: PercentKind
    start: int
    end: int
    name: str = ""


def percents(sql: str) -> list[Percent]:
    """Every '%' directive, read left to right the way Python %-formatting reads the whole text.

    MySQLdb formats the whole query text, literals and comments included, so this scan ignores
    segments on purpose; callers use segment_at to ask where a directive sits.
    """
    found: list[Percent] = []
    i = sql.find("%")
    while i >= 0:
        nxt = sql[i + 1 : i + 2]
        if nxt == "%":
            found.append(Percent("escape", i, i + 2))
        elif nxt == "s":
            found.append(Percent("positional", i, i + 2))
        elif (match := _NAMED_PLACEHOLDER_RE.match(sql, i)) is not None:
            found.append(Percent("named", i, match.end(), match.group(1)))
        else:
            found.append(Percent("bad", i, i + 1))
        i = sql.find("%", found[-1].end)
    return found


def _placeholders_in_code(sql: str, segments: list[Segment]) -> list[Percent]:
    starts = [s.start for s in segments]
    return [
        p
        for p in percents(sql)
        if p.kind in ("positional", "named") and segment_at(segments, starts, p.start).kind == "code"
    ]


def count_placeholders(sql: str) -> tuple[int, frozenset[str]]:
    """Count the placeholders of a query: (number of ``%s``, set of names of ``%(name)s``).

    ``%%`` is a literal percent sign, and text inside string literals, quoted identifiers and
    comments is skipped (but see check_placeholders: the driver does not skip it). Anything
    else after a '%' is not counted. Raises ConfigError only when the text cannot be split into
    tokens (an unterminated literal or comment).
    """
    positional = 0
    named: set[str] = set()
    for p in _placeholders_in_code(sql, lex(sql)):
        if p.kind == "positional":
            positional += 1
        else:
            named.add(p.name)
    return positional, frozenset(named)


_KIND_WORDS: Final[dict[SegmentKind, str]] = {
    "code": "code",
    "string": "a string literal",
    "identifier": "a quoted identifier",
    "line_comment": "a comment",
    "block_comment": "a comment",
}


def check_placeholders(sql: str) -> None:
    """Check that MySQLdb's Python %-formatting of the query will do exactly what it looks like.

    MySQLdb runs ``query % parameters`` over the whole text, string literals and comments
    included. So: every '%' must start ``%s``, ``%(name)s`` or ``%%``; placeholders must not be
    inside a literal or comment (the driver would substitute there too); and positional and
    named placeholders cannot be mixed. Raises ConfigError saying which one is violated.
    """
    segments = lex(sql)
    starts = [s.start for s in segments]
    positional: list[Percent] = []
    named: list[Percent] = []
    for p in percents(sql):
        fragment = sql[p.start : p.start + 12]
        if p.kind == "bad":
            raise ConfigError(
                f"'%' at offset {p.start} ({show_value(fragment)}) is neither a placeholder (%s, %(name)s) "
                "nor an escaped percent sign: the MySQL driver applies Python %-formatting to the whole "
                "query, string literals included, so a literal % must be written %% "
                "(for example LIKE 'a%%', or a %% b for modulo)"
            )
        if p.kind == "escape":
            continue
        kind = segment_at(segments, starts, p.start).kind
        if kind != "code":
            raise ConfigError(
                f"placeholder {sql[p.start : p.end]!r} at offset {p.start} is inside {_KIND_WORDS[kind]}; "
                "the MySQL driver would substitute it there too. Write %% for a literal percent sign "
                "(e.g. '%%s'), or keep the placeholder outside the quotes (e.g. CONCAT('%%', %s, '%%'))"
            )
        (positional if p.kind == "positional" else named).append(p)
    if positional and named:
        raise ConfigError(
            f"the query mixes positional %s (offset {positional[0].start}) and named "
            f"%({named[0].name})s (offset {named[0].start}) placeholders; use one style only"
        )
