"""Tests of report_pipeline.validation.placeholders: what the MySQL driver's %-formatting will do to a query."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.validation.samples import SEED_SELECT, SQLISH

from report_pipeline.errors import ConfigError
from report_pipeline.validation import check_placeholders, count_placeholders

# --------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "positional", "named"),
    [
        (SEED_SELECT, 1, frozenset()),
        ("SELECT 1", 0, frozenset()),
        ("SELECT a FROM t WHERE b = %s AND c = %s", 2, frozenset()),
        ("SELECT a FROM t WHERE d >= %(date_from)s AND d < %(date_to)s", 0, frozenset({"date_from", "date_to"})),
        ("SELECT a FROM t WHERE d >= %(d)s OR e >= %(d)s", 0, frozenset({"d"})),
        ("SELECT a FROM t WHERE b LIKE 'a%%'", 0, frozenset()),
        ("SELECT a %%s FROM t", 0, frozenset()),
        ("SELECT '%s', \"%(x)s\", `%s` FROM t WHERE b = %s", 1, frozenset()),
        ("SELECT a FROM t -- %s\nWHERE b = %s /* %(x)s */", 1, frozenset()),
        ("SELECT a FROM t # %s", 0, frozenset()),
        ("SELECT a % b FROM t", 0, frozenset()),
        ("SELECT %(bad name)s", 0, frozenset()),
        ("SELECT %s, %(a)s", 1, frozenset({"a"})),
    ],
)
def test_count_placeholders(query: str, positional: int, named: frozenset[str]) -> None:
    assert count_placeholders(query) == (positional, named)


@pytest.mark.parametrize(
    "query",
    [
        SEED_SELECT,
        "SELECT 1",
        "SELECT a FROM t WHERE b LIKE 'a%%' AND c = %s",
        "SELECT a FROM t WHERE d >= %(date_from)s AND e LIKE '%%x%%'",
        "SELECT a %% 2 FROM t",
        "SELECT '100%%' AS pct",
    ],
)
def test_check_placeholders_accepts(query: str) -> None:
    check_placeholders(query)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT a FROM t WHERE b LIKE 'a%'", "a literal % must be written %% (for example LIKE 'a%%'"),
        ("SELECT '100%' AS pct", "must be written %%"),
        ("SELECT a FROM t WHERE b LIKE '%done'", "must be written %%"),
        ("SELECT a % 2 FROM t", "must be written %%"),
        ("SELECT a FROM t WHERE b = %d", "must be written %%"),
        ("SELECT a FROM t WHERE b = %(x)d", "must be written %%"),
        ("SELECT a FROM t WHERE b = %(x", "must be written %%"),
        ("SELECT a FROM t WHERE b = %(not valid)s", "must be written %%"),
        ("SELECT 1 %", "must be written %%"),
        ("SELECT 1 %%%", "must be written %%"),
        ("SELECT a FROM t WHERE b = %s -- %", "must be written %%"),
        ("SELECT a FROM t WHERE b = %s AND c = %(c)s", "mixes positional %s"),
        ("SELECT a FROM t WHERE b = '%s'", "inside a string literal"),
        ('SELECT a FROM t WHERE b = "%(x)s"', "inside a string literal"),
        ("SELECT `%s` FROM t", "inside a quoted identifier"),
        ("SELECT a FROM t -- %s", "inside a comment"),
        ("SELECT a FROM t /* %(x)s */", "inside a comment"),
    ],
)
def test_check_placeholders_rejects(query: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_placeholders(query)
    assert expected in str(caught.value)


# --------------------------------------------------------------------------------------------
# Fuzzing: hostile text may only ever produce ConfigError, never another exception
# --------------------------------------------------------------------------------------------


@given(SQLISH | st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_placeholder_functions_only_raise_config_error(query: str) -> None:
    for check in (count_placeholders, check_placeholders):
        try:
            check(query)
        except ConfigError:
            pass
