"""The one MySQL tokeniser that every check of admin-row SQL reads text through.

Text is split the way the MySQL server splits it (string escapes, ``--`` needing a space, ``#``
and non-nesting ``/* */`` comments), so a check that looks at "code" looks at exactly what the
server would execute, and what the server reads as a literal or comment cannot hide code from
it. The SELECT check (select.py), the placeholder rules (placeholders.py) and the INSERT-header
parser (insert.py) all build on it.

Reading happens in two steps: ``read_segments`` cuts the text into code, literals, quoted
identifiers and comments; ``read_tokens`` cuts the code into words and punctuation.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import Final, Literal

from report_pipeline.errors import ConfigError, show_value

__all__ = [
    "MYSQL_SPACE",
    "WORD_RE",
    "Segment",
    "SegmentKind",
    "Token",
    "lex",
    "read_segments",
    "read_tokens",
    "segment_at",
    "token_name",
]

# MySQL's whitespace (my_isspace); anything else, including non-ASCII spaces, is not a separator.
MYSQL_SPACE: Final = " \t\n\v\f\r"
# Characters of an unquoted MySQL identifier or keyword (ASCII word characters, $, U+0080..U+FFFF).
WORD_RE: Final = re.compile("[0-9A-Za-z$_\u0080-\uffff]+")

# Every literal, quoted name and comment starts with one of these; the rest of the text is code.
_SPECIAL_START_RE: Final = re.compile("['\"`#/-]")

SegmentKind = Literal["code", "string", "identifier", "line_comment", "block_comment"]


@dataclass(frozen=True)
class Segment:
    """A stretch of text the server reads as one thing: code, a literal, a quoted name or a comment.

    ``closed`` is False only for the last segment of a text whose literal, quoted identifier
    or ``/*`` comment never ends; such a segment runs to the end of the text.
    """

    kind: SegmentKind
    start: int
    end: int  # exclusive
    closed: bool = True


def _quoted_end(sql: str, start: int, backslash_escapes: bool) -> int | None:
    """End (exclusive) of the quoted string or backtick identifier opening at start; None if it never ends."""
    quote = sql[start]
    i = start + 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return None


def _starts_dash_comment(sql: str, i: int) -> bool:
    """MySQL only reads '--' as a comment when a space or control character (or the end) follows."""
    if not sql.startswith("--", i):
        return False
    if i + 2 >= len(sql):
        return True
    nxt = sql[i + 2]
    return nxt in MYSQL_SPACE or ord(nxt) < 32 or ord(nxt) == 127


def _special_end(sql: str, i: int, backslash_escapes: bool) -> tuple[SegmentKind, int | None] | None:
    """The kind and end of the literal, quoted name or comment opening at i; None if i is plain code."""
    ch = sql[i]
    if ch in "'\"":
        return "string", _quoted_end(sql, i, backslash_escapes)
    if ch == "`":
        return "identifier", _quoted_end(sql, i, False)
    if ch == "#" or _starts_dash_comment(sql, i):
        # The comment runs to '\n' only: MySQL does not end it at '\r'.
        newline = sql.find("\n", i)
        return "line_comment", (len(sql) if newline < 0 else newline)
    if sql.startswith("/*", i):
        close = sql.find("*/", i + 2)
        return "block_comment", (None if close < 0 else close + 2)
    return None


def read_segments(sql: str, *, backslash_escapes: bool = True) -> list[Segment]:
    """Split sql into code, string literals, quoted identifiers and comments as MySQL would.

    ``backslash_escapes=False`` is the NO_BACKSLASH_ESCAPES sql_mode (and what ANSI_QUOTES does
    to double-quoted text). Never raises: a literal or comment that never ends becomes a last
    segment with ``closed=False``, so each caller words that problem for its own input.
    """
    segments: list[Segment] = []
    n = len(sql)
    code_start = 0
    i = 0
    while (candidate := _SPECIAL_START_RE.search(sql, i)) is not None:
        i = candidate.start()
        special = _special_end(sql, i, backslash_escapes)
        if special is None:
            i += 1
            continue
        kind, end = special
        if code_start < i:
            segments.append(Segment("code", code_start, i))
        if end is None:
            segments.append(Segment(kind, i, n, closed=False))
            return segments
        segments.append(Segment(kind, i, end))
        i = code_start = end
    if code_start < n:
        segments.append(Segment("code", code_start, n))
    return segments


def lex(sql: str, *, backslash_escapes: bool = True) -> list[Segment]:
    """read_segments, raising ConfigError when a literal, quoted identifier or comment never ends."""
    segments = read_segments(sql, backslash_escapes=backslash_escapes)
    if segments and not segments[-1].closed:
        last = segments[-1]
        if last.kind == "block_comment":
            raise ConfigError(f"unterminated /* comment starting at offset {last.start}")
        what = "quoted identifier" if last.kind == "identifier" else "string literal"
        shown = show_value(sql[last.start : last.start + 30])
        raise ConfigError(f"unterminated {what} starting at offset {last.start}: {shown}")
    return segments


@dataclass(frozen=True)
class Token:
    """A significant piece of text: a word or punctuation character of code, or a whole literal."""

    kind: Literal["word", "punct", "string", "identifier"]
    text: str
    start: int

    @property
    def keyword(self) -> str | None:
        """The upper-cased text of a bare word; None otherwise (a backtick-quoted `into` is a name)."""
        return self.text.upper() if self.kind == "word" else None


def read_tokens(
    sql: str, segments: list[Segment], *, space: str = MYSQL_SPACE, word: re.Pattern[str] = WORD_RE
) -> list[Token]:
    """The significant tokens: words and punctuation of code, and literals, without comments.

    Any character of code that is neither ``space`` nor part of a ``word`` is a one-character
    "punct" token. Both default to MySQL's own classes; a caller with a narrower grammar may
    pass narrower ones, and then sees the characters it does not accept as punctuation.
    """
    found: list[Token] = []
    for seg in segments:
        if seg.kind == "string" or seg.kind == "identifier":
            found.append(Token(seg.kind, sql[seg.start : seg.end], seg.start))
            continue
        if seg.kind != "code":
            continue
        i = seg.start
        while i < seg.end:
            ch = sql[i]
            if ch in space:
                i += 1
                continue
            match = word.match(sql, i, seg.end)
            if match:
                found.append(Token("word", match.group(), i))
                i = match.end()
            else:
                found.append(Token("punct", ch, i))
                i += 1
    return found


def token_name(token: Token) -> str | None:
    """The upper-cased name a word or backtick identifier stands for; None for anything else."""
    if token.kind == "word":
        return token.text.upper()
    if token.kind == "identifier":
        return token.text[1:-1].replace("``", "`").upper()
    return None


def segment_at(segments: list[Segment], starts: list[int], position: int) -> Segment:
    """The segment holding position; starts is ``[s.start for s in segments]``, built once by the caller."""
    return segments[bisect_right(starts, position) - 1]
