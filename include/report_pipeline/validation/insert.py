"""Where a table spec's rows go: the target table, columns and mode read from a row's ``query_insert``.

The seed stored a whole ``REPLACE INTO t (a, b) VALUES`` header per table. Only its names and
verb are used; the text itself is never executed (the load writes its own SQL with quoted
identifiers), so the parser accepts a deliberately small grammar and refuses the rest.

The header is read through the shared MySQL tokeniser (tokens.py), narrowed to what a header may
hold: ASCII names, backtick-quoted names and ``( ) , . ;``, separated by spaces, tabs and line
breaks. Everything else, literals included, is an unexpected character where the parser meets
it, and any comment is refused outright.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from report_pipeline.errors import ConfigError, show_value
from report_pipeline.validation.naming import check_identifier
from report_pipeline.validation.tokens import read_segments, read_tokens

__all__ = ["MAX_INSERT_CHARS", "InsertTarget", "parse_insert_target"]

# Bounds the work a hostile row can cause; a real header is a few hundred characters.
MAX_INSERT_CHARS: Final = 10_000


@dataclass(frozen=True)
class InsertTarget:
    """Where a table spec's rows are loaded: a table in the company schema, and its columns.

    ``mode`` comes from the statement's verb: REPLACE, INSERT, or INSERT IGNORE.
    """

    table: str
    columns: tuple[str, ...]
    mode: Literal["replace", "insert", "ignore"]


# Narrower than MySQL's own classes on purpose: non-ASCII letters, '\v' and '\f' were never part
# of a valid header, and a name with them would fail check_identifier anyway.
_HEADER_SPACE: Final = " \t\r\n"
_HEADER_WORD_RE: Final = re.compile(r"[A-Za-z0-9_$]+")
_HEADER_PUNCT: Final = frozenset("(),.;")

# Reserved words that cannot be a bare table name: seeing one there means the name was left out.
_INSERT_RESERVED: Final = frozenset(
    {"INSERT", "REPLACE", "IGNORE", "INTO", "VALUES", "VALUE", "SELECT", "SET", "TABLE", "WITH", "PARTITION", "ON"}
)
_INSERT_MODIFIERS: Final = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY"})


@dataclass(frozen=True)
class _HeaderToken:
    """A shared token as the header grammar sees it: "other" is anything a header cannot hold."""

    kind: Literal["identifier", "word", "punct", "other", "end"]
    text: str
    start: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _header_tokens(sql: str, shown: str) -> list[_HeaderToken]:
    """The header's tokens, ending with an "end" token; ConfigError for a comment or an unclosed name.

    Both are refused before any parsing, at the first one in the text, so the message points at
    them rather than at whatever the parser would have stumbled on next.
    """
    segments = read_segments(sql)
    for seg in segments:
        if seg.kind in ("line_comment", "block_comment"):
            problem_at = seg.start
        elif seg.kind == "code":
            # MySQL reads '--x' as two minus signs, but a header has no use for either reading.
            # The second '-' may open the next segment ('--- x'), hence the end + 1.
            problem_at = sql.find("--", seg.start, seg.end + 1)
        elif seg.kind == "identifier" and not seg.closed:
            raise ConfigError(f"query_insert {shown} has an unterminated quoted identifier at offset {seg.start}")
        else:
            continue
        if problem_at >= 0:
            raise ConfigError(
                f"query_insert {shown} contains a comment at offset {problem_at}; comments are not allowed"
            )
    header: list[_HeaderToken] = []
    for token in read_tokens(sql, segments, space=_HEADER_SPACE, word=_HEADER_WORD_RE):
        if token.kind == "identifier" or token.kind == "word":
            header.append(_HeaderToken(token.kind, token.text, token.start))
        elif token.kind == "punct" and token.text in _HEADER_PUNCT:
            header.append(_HeaderToken("punct", token.text, token.start))
        else:
            # A string literal counts as its opening quote: that is the character out of place.
            header.append(_HeaderToken("other", token.text[0], token.start))
    header.append(_HeaderToken("end", "", len(sql)))
    return header


def parse_insert_target(sql: str) -> InsertTarget:
    """Read the target table, columns and mode from a row's ``query_insert``.

    Accepts ``REPLACE INTO t (a, b) VALUES``, ``INSERT [IGNORE] [INTO] t (a, b) [VALUES]``,
    with optional backtick quoting and nothing after VALUES (the pipeline supplies the rows).
    Raises ConfigError for a schema-qualified table (the pipeline chooses the schema), a
    missing or empty column list, duplicate columns, anything after VALUES (row values,
    ON DUPLICATE KEY UPDATE, SELECT, a second statement), comments, or an invalid identifier.
    """
    if not isinstance(sql, str):
        raise ConfigError(f"query_insert must be a string, got {type(sql).__name__}")
    if len(sql) > MAX_INSERT_CHARS:
        raise ConfigError(f"query_insert is {len(sql)} characters long (at most {MAX_INSERT_CHARS})")
    shown = show_value(sql)
    tokens = _header_tokens(sql, shown)
    pos = 0

    def fail(expected: str) -> ConfigError:
        token = tokens[pos]
        if token.kind == "other":
            return ConfigError(
                f"query_insert {shown} has an unexpected character {token.text!r} at offset {token.start}"
            )
        found = "the end" if token.kind == "end" else repr(token.text)
        return ConfigError(f"query_insert {shown}: expected {expected} at offset {token.start}, found {found}")

    def take_name(what: str) -> str:
        nonlocal pos
        token = tokens[pos]
        if token.kind == "identifier":
            name = token.text[1:-1].replace("``", "`")
        elif token.kind == "word" and token.upper not in _INSERT_RESERVED:
            name = token.text
        else:
            raise fail(f"a {what} name")
        pos += 1
        return check_identifier(name, what)

    if tokens[0].kind == "end":
        raise ConfigError("query_insert is empty")
    verb = tokens[0].upper
    if verb not in ("INSERT", "REPLACE"):
        raise ConfigError(f"query_insert {shown} must start with INSERT or REPLACE")
    pos = 1
    mode: Literal["replace", "insert", "ignore"] = "replace" if verb == "REPLACE" else "insert"
    if tokens[pos].upper in _INSERT_MODIFIERS:
        raise ConfigError(f"query_insert {shown}: the modifier {tokens[pos].text} is not supported")
    if tokens[pos].upper == "IGNORE":
        if verb == "REPLACE":
            raise ConfigError(f"query_insert {shown}: REPLACE IGNORE is not valid; use REPLACE or INSERT IGNORE")
        mode = "ignore"
        pos += 1
    if tokens[pos].upper == "INTO":
        pos += 1

    table = take_name("table")
    if tokens[pos].text == ".":
        raise ConfigError(
            f"query_insert {shown} names a schema-qualified table; give the table name only "
            "(the pipeline loads into the company's own schema)"
        )
    if tokens[pos].upper == "PARTITION":
        raise ConfigError(f"query_insert {shown}: PARTITION is not supported")
    if tokens[pos].text != "(":
        if tokens[pos].kind == "other":
            raise fail("'('")
        raise ConfigError(
            f"query_insert {shown} has no column list: write {verb} INTO {table} (col1, col2, ...) VALUES"
        )
    pos += 1
    if tokens[pos].text == ")":
        raise ConfigError(f"query_insert {shown} has an empty column list")
    columns: list[str] = []
    seen: set[str] = set()
    while True:
        column = take_name("column")
        # MySQL column names are case-insensitive, so `ID` and `id` are the same column.
        if column.lower() in seen:
            raise ConfigError(f"query_insert {shown} lists the column {column!r} twice")
        seen.add(column.lower())
        columns.append(column)
        if tokens[pos].text == ",":
            pos += 1
        elif tokens[pos].text == ")":
            pos += 1
            break
        else:
            raise fail("',' or ')' in the column list")

    if tokens[pos].upper in ("VALUES", "VALUE"):
        pos += 1
    token = tokens[pos]
    if token.kind != "end":
        following = tokens[pos + 1].upper
        if token.kind == "other":
            raise fail("nothing")
        if token.text == ";":
            reason = "a ';' (a single statement header is expected)"
        elif token.upper == "ON":
            reason = "ON DUPLICATE KEY UPDATE (not supported: the load mode decides how duplicates are handled)"
        elif token.upper in ("SELECT", "WITH", "TABLE") or (token.text == "(" and following in ("SELECT", "WITH")):
            reason = "a SELECT (INSERT ... SELECT is not supported)"
        elif token.upper == "SET":
            reason = "SET (use a column list)"
        elif token.text == "(":
            reason = "row values (leave them out: the pipeline supplies the rows)"
        else:
            reason = repr(token.text)
        raise ConfigError(
            f"query_insert {shown} has {reason} at offset {token.start}; nothing may follow the column list and VALUES"
        )
    return InsertTarget(table=table, columns=tuple(columns), mode=mode)
