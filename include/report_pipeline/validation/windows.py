"""Date windows in an incremental query: a date placeholder may only bound the cursor column.

An incremental extract reads the rows whose cursor is at or after the watermark. A second window on
another column (``order_date >= %(date_from)s``) hides the rows changed since the watermark whose
other date falls outside it, and the watermark still moves past them: they are never copied. A date
placeholder compared with the cursor column itself only narrows what the watermark already narrows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from report_pipeline.validation.placeholders import Percent, _placeholders_in_code
from report_pipeline.validation.tokens import Token, lex, read_tokens, token_name

DATE_NAMES: Final = frozenset({"date_from", "date_to"})
_OPERATOR_CHARS: Final = frozenset("<>=!")


def _column_before(tokens: Sequence[Token], end: int) -> str | None:
    """The (last part of the) column name ending at ``tokens[end]``; a one-column function call counts."""
    if end < 0:
        return None
    if tokens[end].text == ")":
        depth, i = 0, end
        while i >= 0:
            depth += {")": 1, "(": -1}.get(tokens[i].text, 0) if tokens[i].kind == "punct" else 0
            if depth == 0:
                break
            i -= 1
        inner = [t for t in tokens[i + 1 : end] if not (t.kind == "punct" and t.text == ".")]
        return token_name(inner[-1]) if inner and all(token_name(t) for t in inner) else None
    return token_name(tokens[end])


def _column_after(tokens: Sequence[Token], start: int) -> str | None:
    """The (last part of the) column name starting at ``tokens[start]`` (``t.col`` gives ``COL``)."""
    name = None
    i = start
    while i < len(tokens) and token_name(tokens[i]):
        name = token_name(tokens[i])
        if i + 1 < len(tokens) and tokens[i + 1].text == ".":
            i += 2
            continue
        break
    return name


def _bounded_column(tokens: Sequence[Token], first: int, last: int) -> str | None:
    """The column a placeholder spanning ``tokens[first..last]`` is compared with, if it is one."""
    i = first - 1
    while i >= 0 and tokens[i].kind == "punct" and tokens[i].text in _OPERATOR_CHARS:
        i -= 1
    if i < first - 1:  # col >= %s
        return _column_before(tokens, i)
    keyword = tokens[i].keyword if i >= 0 else None
    if keyword == "BETWEEN":  # col BETWEEN %s AND ...
        return _column_before(tokens, i - 1)
    if keyword == "AND":  # col BETWEEN ... AND %s
        for j in range(i - 1, max(-1, i - 8), -1):
            if tokens[j].keyword == "BETWEEN":
                return _column_before(tokens, j - 1)
    j = last + 1
    while j < len(tokens) and tokens[j].kind == "punct" and tokens[j].text in _OPERATOR_CHARS:
        j += 1
    if j > last + 1:  # %s <= col
        return _column_after(tokens, j)
    return None


def _aliased_source(tokens: Sequence[Token], column: str) -> str | None:
    """The column a SELECT list renames to ``column`` (``o.changed AS updated_at`` gives ``CHANGED``)."""
    for i, token in enumerate(tokens):
        if token.keyword == "AS" and i + 1 < len(tokens) and token_name(tokens[i + 1]) == column.upper():
            return _column_before(tokens, i - 1)
    return None


def window_problem(sql: str, date_positions: Sequence[int], cursor_column: str) -> str | None:
    """Why a date placeholder of an incremental query bounds something other than its cursor column.

    ``date_positions`` are the indexes, among the query's ``%s`` placeholders, of those bound to a
    date (legacy ``date`` references); ``%(date_from)s`` and ``%(date_to)s`` are dates by name.
    """
    segments = lex(sql)
    tokens = read_tokens(sql, segments)
    cursor = {cursor_column.upper()}
    source = _aliased_source(tokens, cursor_column)
    if source:
        cursor.add(source)
    positional = -1
    for p in _placeholders_in_code(sql, segments):
        positional += p.kind == "positional"
        is_date = p.name in DATE_NAMES if p.kind == "named" else positional in date_positions
        if not is_date:
            continue
        span = [i for i, t in enumerate(tokens) if p.start <= t.start < p.end]
        column = _bounded_column(tokens, span[0], span[-1]) if span else None
        if column not in cursor:
            return _message(sql, p, column, cursor_column)
    return None


def _message(sql: str, p: Percent, column: str | None, cursor_column: str) -> str:
    shown = sql[p.start : p.end]
    compared = f"with {column.lower()!r}" if column else "with something that is not a column"
    return (
        f"query_select compares the date placeholder {shown} {compared}, not with the cursor column "
        f"{cursor_column!r}: an incremental table reads the rows changed since its watermark, and a second date "
        "window on another column would move the watermark past rows changed outside that window, so they would "
        f"never be copied; drop the date condition, or bound the cursor column itself ({cursor_column} >= {shown})"
    )
