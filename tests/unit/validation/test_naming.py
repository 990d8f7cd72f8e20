"""Tests of report_pipeline.validation.naming: every admin-row input is hostile, so most cases are rejections."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from report_pipeline.errors import ConfigError, ReportPipelineError
from report_pipeline.validation import bucket_name, check_alias, check_identifier, naming, quote_identifier, schema_name

QUOTED_IDENTIFIER = re.compile(r"`[A-Za-z0-9_$]{1,64}`")


# --------------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["users", "Users_2024", "a", "$tmp", "x$y", "_", "1a", "a1", "id", "a" * 64, "0x1"],
)
def test_quote_identifier_accepts(name: str) -> None:
    assert quote_identifier(name) == f"`{name}`"
    assert check_identifier(name, "table") == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "it is empty"),
        ("a" * 65, "65 characters long"),
        ("123", "all digits"),
        ("0", "all digits"),
        ("a`b", "'`'"),
        ("`users`", "'`'"),
        ("db.users", "'.'"),
        ("two words", "' '"),
        ("tab\tle", "'\\t'"),
        ("nul\x00", "'\\x00'"),
        ("usérs", "'é'"),
        ("a'b", '"\'"'),
        ('a"b', "'\"'"),
        ("a;drop", "';'"),
        ("a-b", "'-'"),
        ("\u0661\u0662\u0663", "'\u0661'"),  # Arabic-Indic digits: str.isdigit() is True, but they are not [0-9]
        ("users\n", "'\\n'"),
    ],
)
def test_quote_identifier_rejects(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        quote_identifier(name)
    message = str(caught.value)
    assert expected in message
    assert repr(name) in message
    assert "A-Z, a-z, 0-9, '_' and '$'" in message


def test_check_identifier_names_what_it_checks() -> None:
    with pytest.raises(ConfigError, match=r"^chunk column 'a\.b' is not a valid MySQL identifier: it contains '\.'"):
        check_identifier("a.b", "chunk column")


def test_check_identifier_rejects_non_strings() -> None:
    with pytest.raises(ConfigError, match="must be a string, got NoneType"):
        check_identifier(None, "column")  # type: ignore[arg-type]


def test_long_bad_identifier_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        quote_identifier("`" * 10_000)
    assert len(str(caught.value)) < 400
    assert "10000 characters" in str(caught.value)


def test_config_error_is_a_pipeline_error() -> None:
    with pytest.raises(ReportPipelineError):
        quote_identifier("")


@given(
    st.text(max_size=80)
    | st.text(alphabet="ab_$`.1 \x00", max_size=70)
    | st.from_regex(r"[A-Za-z0-9_$`]{0,70}", fullmatch=True)
)
@settings(max_examples=500, deadline=None)
def test_quote_identifier_is_always_safe(name: str) -> None:
    try:
        quoted = quote_identifier(name)
    except ConfigError:
        return
    assert QUOTED_IDENTIFIER.fullmatch(quoted)
    assert "`" not in quoted[1:-1]
    assert quoted[1:-1] == name


# --------------------------------------------------------------------------------------------
# Aliases, buckets and schemas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["acme", "acme_corp", "a", "a1", "abc_123_x", "a" * 40, "a_"])
def test_check_alias_accepts(alias: str) -> None:
    assert check_alias(alias) == alias


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("", "is empty"),
        ("Acme", "uppercase"),
        ("ACME_CORP", "uppercase"),
        ("../etc", "'.', '/'"),
        ("acme/../x", "'/', '.'"),
        ("a" * 41, "41 characters long"),
        ("1acme", "does not start with a lowercase letter"),
        ("_acme", "does not start with a lowercase letter"),
        ("acme-corp", "'-'"),
        ("acme.corp", "'.'"),
        ("acme corp", "' '"),
        ("acmé", "'é'"),
        ("acme\n", "'\\n'"),
        ("acme`", "'`'"),
    ],
)
def test_check_alias_rejects(alias: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_alias(alias)
    message = str(caught.value)
    assert expected in message
    assert repr(alias) in message
    assert "lowercase letter, then lowercase letters, digits or '_'" in message


def test_check_alias_rejects_non_strings() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        check_alias(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "alias", "expected"),
    [
        ("reports-{alias}", "acme", "reports-acme"),
        ("reports-{alias}", "acme_corp", "reports-acme-corp"),
        ("{alias}", "abc", "abc"),
        ("{alias}.reports.example", "acme", "acme.reports.example"),
        ("r-{alias}-{alias}", "a_b", "r-a-b-a-b"),
        ("{{x}}{alias}", "abc", None),  # literal braces: rejected later by the S3 rules
    ],
)
def test_bucket_name(template: str, alias: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="not a valid S3 bucket name"):
            bucket_name(template, alias)
    else:
        assert bucket_name(template, alias) == expected


@pytest.mark.parametrize(
    ("template", "alias", "expected"),
    [
        ("reports-{alias}", "Acme", "uppercase"),
        ("reports-{alias}", "../x", "'.', '/'"),
        ("reports-{alias.__class__}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{alias[0]}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{0}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{company}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{alias!r}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{alias:>20}", "acme", "the only field allowed is '{alias}'"),
        ("reports-{alias", "acme", "not a valid format string"),
        ("reports", "acme", "must contain '{alias}'"),
        ("Reports-{alias}", "acme", "'R'"),
        ("reports_{alias}", "acme", "'_'"),
        ("{alias}", "ab", "2 characters long"),
        ("reports-{alias}-" + "x" * 51, "acme", "64 characters long (3-63 allowed)"),
        ("-{alias}", "acme", "start and end with a letter or digit"),
        ("{alias}.", "acme", "start and end with a letter or digit"),
        ("{alias}..x", "acme", "'..'"),
        ("xn--{alias}", "acme", "'xn--'"),
        ("sthree-{alias}", "acme", "'sthree-'"),
        ("{alias}-s3alias", "acme", "'-s3alias'"),
        ("{alias}--ol-s3", "acme", "'--ol-s3'"),
        ("{alias}.mrap", "acme", "'.mrap'"),
    ],
)
def test_bucket_name_rejects(template: str, alias: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        bucket_name(template, alias)
    assert expected in str(caught.value)


def test_bucket_name_error_names_alias_and_template() -> None:
    with pytest.raises(ConfigError) as caught:
        bucket_name("{alias}-s3alias", "acme_corp")
    message = str(caught.value)
    assert "'acme-corp-s3alias'" in message
    assert "'{alias}-s3alias'" in message
    assert "'acme_corp'" in message


@pytest.mark.parametrize("name", ["192.168.1.1", "10.0.0.255"])
def test_bucket_rules_reject_ip_addresses(name: str) -> None:
    assert naming._bucket_problem(name) == "it looks like an IP address"


@pytest.mark.parametrize(
    ("template", "alias", "expected"),
    [
        ("{alias}", "acme", "acme"),
        ("{alias}", "acme_corp", "acme_corp"),
        ("report_{alias}", "acme", "report_acme"),
        ("{alias}$v2", "acme", "acme$v2"),
    ],
)
def test_schema_name(template: str, alias: str, expected: str) -> None:
    assert schema_name(template, alias) == expected


@pytest.mark.parametrize(
    ("template", "alias", "expected"),
    [
        ("{alias}", "Acme", "uppercase"),
        ("{alias}-reports", "acme", "'-'"),
        ("{alias}.users", "acme", "'.'"),
        ("`{alias}`", "acme", "'`'"),
        ("{alias}" + "x" * 30, "a" * 40, "70 characters long"),
        ("{alias.upper}", "acme", "the only field allowed is '{alias}'"),
        ("reports", "acme", "must contain '{alias}'"),
        ("{alias}", "mysql", "MySQL system schema"),
        ("{alias}", "sys", "MySQL system schema"),
        ("{alias}", "information_schema", "MySQL system schema"),
        ("{alias}_schema", "performance", "MySQL system schema"),
        ("{alias}", "ndbinfo", "MySQL system schema"),
    ],
)
def test_schema_name_rejects(template: str, alias: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        schema_name(template, alias)
    message = str(caught.value)
    assert expected in message
    assert repr(alias) in message
