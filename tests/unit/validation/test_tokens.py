"""Tests of report_pipeline.validation.tokens: text is split the way the MySQL server splits it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.validation.samples import SQLISH

from report_pipeline.errors import ConfigError
from report_pipeline.validation.tokens import Segment, lex, read_segments, read_tokens, segment_at, token_name


def pieces(sql: str, *, backslash_escapes: bool = True) -> list[tuple[str, str]]:
    return [(s.kind, sql[s.start : s.end]) for s in lex(sql, backslash_escapes=backslash_escapes)]


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


def test_each_kind_of_segment() -> None:
    sql = "SELECT 'a', \"b\", `c` # one\n-- two\n/* three */ x"
    assert pieces(sql) == [
        ("code", "SELECT "),
        ("string", "'a'"),
        ("code", ", "),
        ("string", '"b"'),
        ("code", ", "),
        ("identifier", "`c`"),
        ("code", " "),
        ("line_comment", "# one"),
        ("code", "\n"),
        ("line_comment", "-- two"),
        ("code", "\n"),
        ("block_comment", "/* three */"),
        ("code", " x"),
    ]


@pytest.mark.parametrize(
    ("sql", "comment"),
    [
        ("SELECT 1 -- c", "-- c"),
        ("SELECT 1 --\tc", "--\tc"),
        ("SELECT 1 --", "--"),  # at the very end, '--' is a comment
        ("SELECT 1 --\x01c", "--\x01c"),  # any control character counts as the space
    ],
)
def test_double_dash_is_a_comment_only_before_a_space(sql: str, comment: str) -> None:
    assert pieces(sql)[-1] == ("line_comment", comment)


@pytest.mark.parametrize("sql", ["SELECT 1--1", "SELECT 1 --x", "SELECT 5---1"])
def test_double_dash_without_a_space_is_code(sql: str) -> None:
    assert [kind for kind, _ in pieces(sql)] == ["code"]


def test_line_comment_ends_at_newline_not_carriage_return() -> None:
    assert pieces("# a\rDELETE\nSELECT 1") == [("line_comment", "# a\rDELETE"), ("code", "\nSELECT 1")]


def test_block_comments_do_not_nest() -> None:
    assert pieces("/* a /* b */ c */") == [("block_comment", "/* a /* b */"), ("code", " c */")]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [("'it''s'", "string"), ('"say ""hi"""', "string"), ("`a``b`", "identifier"), ("'a\\'b'", "string")],
)
def test_doubled_quotes_and_escapes_stay_inside(sql: str, kind: str) -> None:
    assert pieces(sql) == [(kind, sql)]


def test_backslash_escapes_follow_the_sql_mode() -> None:
    sql = "'a\\' OR 1 -- '"
    assert pieces(sql) == [("string", sql)]
    assert pieces(sql, backslash_escapes=False) == [("string", "'a\\'"), ("code", " OR 1 "), ("line_comment", "-- '")]


def test_backticks_never_take_backslash_escapes() -> None:
    assert pieces("`a\\` x") == [("identifier", "`a\\`"), ("code", " x")]


@pytest.mark.parametrize(
    ("sql", "kind", "start"),
    [
        ("SELECT 'abc", "string", 7),
        ('SELECT "abc', "string", 7),
        ("SELECT `abc", "identifier", 7),
        ("SELECT `a``", "identifier", 7),
        ("SELECT /* abc", "block_comment", 7),
        ("SELECT 'a\\'", "string", 7),
    ],
)
def test_read_segments_marks_what_never_ends(sql: str, kind: str, start: int) -> None:
    *closed, last = read_segments(sql)
    assert all(s.closed for s in closed)
    assert last == Segment(kind, start, len(sql), closed=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'abc", 'unterminated string literal starting at offset 7: "\'abc"'),
        ("SELECT `abc", "unterminated quoted identifier starting at offset 7: '`abc'"),
        ("SELECT /* abc", "unterminated /* comment starting at offset 7"),
    ],
)
def test_lex_refuses_what_never_ends(sql: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        lex(sql)


def test_an_unclosed_literal_is_shown_shortened() -> None:
    with pytest.raises(ConfigError) as caught:
        lex("'" + "x" * 10_000)
    assert len(str(caught.value)) < 120


@given(SQLISH | st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_segments_cover_the_text_in_order(sql: str) -> None:
    segments = read_segments(sql)
    if not sql:
        assert segments == []
        return
    assert [s.start for s in segments] == [0, *(s.end for s in segments[:-1])]
    assert segments[-1].end == len(sql)
    assert all(s.closed for s in segments[:-1])
    assert all(s.start < s.end for s in segments)
    starts = [s.start for s in segments]
    for position in range(len(sql)):
        found = segment_at(segments, starts, position)
        assert found.start <= position < found.end


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def test_tokens_skip_comments_and_keep_literals_whole() -> None:
    sql = "SELECT a.b, 'x y' /* c */ FROM `t t`;"
    found = [(t.kind, t.text, t.start) for t in read_tokens(sql, lex(sql))]
    assert found == [
        ("word", "SELECT", 0),
        ("word", "a", 7),
        ("punct", ".", 8),
        ("word", "b", 9),
        ("punct", ",", 10),
        ("string", "'x y'", 12),
        ("word", "FROM", 26),
        ("identifier", "`t t`", 31),
        ("punct", ";", 36),
    ]


def test_mysql_words_and_spaces() -> None:
    sql = "SELECT\vnaïve$1\fFROM t"
    assert [t.text for t in read_tokens(sql, lex(sql))] == ["SELECT", "naïve$1", "FROM", "t"]


def test_a_caller_may_narrow_words_and_spaces() -> None:
    sql = "SELECT\vnaïve"
    found = read_tokens(sql, lex(sql), space=" ", word=re.compile("[a-zA-Z]+"))
    assert [(t.kind, t.text) for t in found] == [
        ("word", "SELECT"),
        ("punct", "\v"),
        ("word", "na"),
        ("punct", "ï"),
        ("word", "ve"),
    ]


def test_keyword_is_a_bare_word_only() -> None:
    sql = "select `into` 'for'"
    assert [t.keyword for t in read_tokens(sql, lex(sql))] == ["SELECT", None, None]


def test_token_name_unquotes_identifiers() -> None:
    sql = "sleep `Sle``ep` 'sleep' ("
    assert [token_name(t) for t in read_tokens(sql, lex(sql))] == ["SLEEP", "SLE`EP", None, None]
