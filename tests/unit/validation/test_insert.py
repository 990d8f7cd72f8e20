"""Tests of report_pipeline.validation.insert: reading the target of a row's query_insert header."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from report_pipeline.errors import ConfigError
from report_pipeline.validation import InsertTarget, parse_insert_target, quote_identifier

QUOTED_IDENTIFIER = re.compile(r"`[A-Za-z0-9_$]{1,64}`")


# --------------------------------------------------------------------------------------------
# INSERT targets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "table", "columns", "mode"),
    [
        ("REPLACE INTO users(id, username) VALUES ", "users", ("id", "username"), "replace"),
        ("INSERT INTO users (id, username) VALUES", "users", ("id", "username"), "insert"),
        ("INSERT IGNORE INTO stats(a,b) VALUES ", "stats", ("a", "b"), "ignore"),
        ("insert ignore into stats(a,b) values", "stats", ("a", "b"), "ignore"),
        ("REPLACE INTO users (id, username)", "users", ("id", "username"), "replace"),
        ("REPLACE INTO `users` (`id`, `user name`) VALUES", None, None, None),
        ("REPLACE INTO `users` (`id`, `username`) VALUES", "users", ("id", "username"), "replace"),
        ("INSERT users (id) VALUE", "users", ("id",), "insert"),
        ("\n  REPLACE   INTO\tusers\n(\n id ,\n username\n)\n VALUES \n", "users", ("id", "username"), "replace"),
        ("INSERT INTO order (id) VALUES", "order", ("id",), "insert"),
    ],
)
def test_parse_insert_target(query: str, table: str | None, columns: tuple[str, ...] | None, mode: str | None) -> None:
    if table is None:
        with pytest.raises(ConfigError, match="not a valid MySQL identifier"):
            parse_insert_target(query)
        return
    target = parse_insert_target(query)
    assert target == InsertTarget(table, columns or (), mode)  # type: ignore[arg-type]


def test_insert_target_is_frozen() -> None:
    target = parse_insert_target("REPLACE INTO users(id, username) VALUES ")
    with pytest.raises(AttributeError):
        target.table = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "query_insert is empty"),
        ("   ", "query_insert is empty"),
        ("REPLACE INTO db.users(id) VALUES", "schema-qualified"),
        ("REPLACE INTO `db`.`users`(id) VALUES", "schema-qualified"),
        ("REPLACE INTO users VALUES", "has no column list"),
        ("REPLACE INTO users", "has no column list"),
        ("REPLACE INTO users () VALUES", "empty column list"),
        ("REPLACE INTO users (id, id) VALUES", "lists the column 'id' twice"),
        ("REPLACE INTO users (id, ID) VALUES", "lists the column 'ID' twice"),
        ("REPLACE INTO users (id, username) VALUES (1, 'a')", "row values"),
        ("REPLACE INTO users (id) VALUES (1)", "row values"),
        ("INSERT INTO users (id) VALUES ON DUPLICATE KEY UPDATE id = id", "ON DUPLICATE KEY UPDATE"),
        ("INSERT INTO users (id) ON DUPLICATE KEY UPDATE id = 1", "ON DUPLICATE KEY UPDATE"),
        ("INSERT INTO users (id) SELECT id FROM other", "INSERT ... SELECT is not supported"),
        ("INSERT INTO users (id) (SELECT id FROM other)", "INSERT ... SELECT is not supported"),
        ("INSERT INTO users (id) TABLE other", "INSERT ... SELECT is not supported"),
        ("REPLACE INTO users (id) VALUES; DROP TABLE users", "';'"),
        ("REPLACE INTO users (id) VALUES;", "';'"),
        ("REPLACE INTO users (id) VALUES -- x", "comments are not allowed"),
        ("REPLACE INTO users (id) /* x */ VALUES", "comments are not allowed"),
        ("REPLACE INTO users (id) VALUES # x", "comments are not allowed"),
        ("REPLACE INTO users SET id = 1", "has no column list"),
        ("INSERT INTO users (id) VALUES extra", "'extra'"),
        ("SELECT 1", "must start with INSERT or REPLACE"),
        ("UPDATE users SET id = 1", "must start with INSERT or REPLACE"),
        ("DELETE FROM users", "must start with INSERT or REPLACE"),
        ("REPLACE IGNORE INTO users (id) VALUES", "REPLACE IGNORE is not valid"),
        ("INSERT LOW_PRIORITY INTO users (id) VALUES", "modifier LOW_PRIORITY is not supported"),
        ("INSERT DELAYED INTO users (id) VALUES", "modifier DELAYED is not supported"),
        ("INSERT INTO users PARTITION (p0) (id) VALUES", "PARTITION is not supported"),
        ("INSERT INTO (id) VALUES", "expected a table name"),
        ("INSERT INTO VALUES (id)", "expected a table name"),
        ("INSERT INTO INTO (id) VALUES", "expected a table name"),
        ("INSERT INTO", "expected a table name at offset 11, found the end"),
        ("REPLACE INTO users (id, ) VALUES", "expected a column name"),
        ("REPLACE INTO users (id username) VALUES", "expected ',' or ')'"),
        ("REPLACE INTO users (id", "expected ',' or ')' in the column list at offset 22, found the end"),
        ("REPLACE INTO users (t.id) VALUES", "expected ',' or ')'"),
        ("REPLACE INTO users ('id') VALUES", 'unexpected character "\'"'),
        ("REPLACE INTO users (id) VALUES 'x'", 'unexpected character "\'"'),
        ("REPLACE INTO users @ (id) VALUES", "unexpected character '@'"),
        ("REPLACE INTO `users (id) VALUES", "unterminated quoted identifier"),
        ("REPLACE INTO `us``ers` (id) VALUES", "not a valid MySQL identifier"),
        ("REPLACE INTO users (`a.b`) VALUES", "not a valid MySQL identifier"),
        ("REPLACE INTO 123 (id) VALUES", "all digits"),
        ("REPLACE INTO usérs (id) VALUES", "unexpected character 'é'"),
        ("REPLACE INTO users (id) VALUES\x00", "unexpected character '\\x00'"),
        ("REPLACE INTO users (" + "a, " * 5000 + "b) VALUES", "characters long"),
    ],
)
def test_parse_insert_target_rejects(query: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_insert_target(query)
    assert expected in str(caught.value)


def test_parse_insert_target_rejects_non_strings() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        parse_insert_target(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# How the header is read: through the shared tokeniser, narrowed to what a header may hold.
# These pin down what the parser's own tokeniser did before it was replaced.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # '--' without a space is not a comment to MySQL, but it has no place in a header either.
        ("REPLACE INTO users (id) VALUES --x", "contains a comment at offset 31"),
        # The first '-' is where the comment starts, even when MySQL would start it one later.
        ("REPLACE INTO users (id) VALUES --- x", "contains a comment at offset 31"),
        ("REPLACE INTO users (id) VALUES /* x", "contains a comment at offset 31"),
        ("# x\nREPLACE INTO users (id) VALUES", "contains a comment at offset 0"),
        ("REPLACE INTO users (id) VALUES -", "unexpected character '-' at offset 31"),
        # Inside backticks, comment characters are part of the name.
        ("REPLACE INTO `a#b` (id) VALUES", "table 'a#b' is not a valid MySQL identifier"),
        ("REPLACE INTO `a--b` (id) VALUES", "table 'a--b' is not a valid MySQL identifier"),
        # MySQL's own whitespace and letters are wider than a header's.
        ("REPLACE INTO users\v(id) VALUES", "unexpected character '\\x0b' at offset 18"),
        ("REPLACE INTO users (id)\fVALUES", "unexpected character '\\x0c' at offset 23"),
        ("REPLACE INTO users (naïve) VALUES", "unexpected character 'ï' at offset 22"),
        ('REPLACE INTO users ("id") VALUES', "unexpected character '\"' at offset 20"),
        ("REPLACE INTO users (id) VALUES 'x", 'unexpected character "\'" at offset 31'),
        # An unclosed quoted name is reported where it opens.
        ("REPLACE INTO `a`` (id) VALUES", "unterminated quoted identifier at offset 13"),
        # A literal is read as MySQL reads it: a '#' inside one is not a comment.
        ("REPLACE INTO users (id) VALUES ('#1')", "row values"),
    ],
)
def test_header_reading(query: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_insert_target(query)
    assert expected in str(caught.value)


def test_header_accepts_the_four_common_spaces() -> None:
    target = parse_insert_target("REPLACE\r\nINTO\tusers (`id`) VALUES ")
    assert target == InsertTarget("users", ("id",), "replace")


# --------------------------------------------------------------------------------------------
# Fuzzing: hostile text may only ever produce ConfigError, never another exception
# --------------------------------------------------------------------------------------------

INSERT_PIECES = ["INSERT ", "REPLACE ", "IGNORE ", "INTO ", "VALUES", "t", "`", "(", ")", ",", ".", ";", " ", "a", "é"]


@given(st.lists(st.sampled_from(INSERT_PIECES), max_size=20).map("".join) | st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_parse_insert_target_only_raises_config_error(query: str) -> None:
    try:
        target = parse_insert_target(query)
    except ConfigError:
        return
    for name in (target.table, *target.columns):
        assert QUOTED_IDENTIFIER.fullmatch(quote_identifier(name))
