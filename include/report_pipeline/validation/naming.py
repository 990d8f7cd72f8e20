"""Naming rules for what admin rows turn into names: MySQL identifiers, company aliases, schemas, buckets.

Admin rows are written by users, and what they contain ends up as identifiers in generated SQL
and as S3 bucket names. Every function here either returns a value that is safe for its one use
or raises ConfigError saying what is wrong. None of this reads SQL text: that is tokens.py.
"""

from __future__ import annotations

import re
import string
from typing import Final

from report_pipeline.errors import ConfigError, show_value

__all__ = [
    "ALIAS_MAX_CHARS",
    "IDENTIFIER_MAX_CHARS",
    "bucket_name",
    "check_alias",
    "check_identifier",
    "quote_identifier",
    "schema_name",
]

ALIAS_MAX_CHARS: Final = 40
IDENTIFIER_MAX_CHARS: Final = 64

_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z0-9_$]{1,64}")
_ALIAS_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")

# Schemas the server itself owns: loading a company's tables there would overwrite grants,
# server state or the sys views.
_SYSTEM_SCHEMAS: Final = frozenset({"mysql", "information_schema", "performance_schema", "sys", "ndbinfo"})

_BUCKET_CHARS_RE: Final = re.compile(r"[a-z0-9.-]+")
_IPV4_LIKE_RE: Final = re.compile(r"\d+\.\d+\.\d+\.\d+")
# From the S3 general purpose bucket naming rules: these are reserved for S3 features.
_BUCKET_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _bad_characters(value: str, allowed: re.Pattern[str]) -> str:
    """The distinct characters of value that allowed does not match, listed for an error message."""
    bad: list[str] = []
    for ch in value:
        if not allowed.fullmatch(ch) and ch not in bad:
            bad.append(ch)
    shown = ", ".join(repr(ch) for ch in bad[:5])
    return shown + (", ..." if len(bad) > 5 else "")


_IDENTIFIER_CHAR_RE: Final = re.compile(r"[A-Za-z0-9_$]")
_IDENTIFIER_RULE: Final = "use 1-64 characters from A-Z, a-z, 0-9, '_' and '$', not all digits"


def check_identifier(name: str, what: str) -> str:
    """Validate a MySQL identifier and return it unchanged (unquoted).

    ``what`` says what the name is for ("table", "column", "schema", ...) and is used in the
    error message. Raises ConfigError unless name is 1-64 characters of ``[A-Za-z0-9_$]`` and
    not all digits (an all-digit name reads as a number wherever it is used unquoted).
    """
    if not isinstance(name, str):
        raise ConfigError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        reason = "it is empty"
    elif len(name) > IDENTIFIER_MAX_CHARS:
        reason = f"it is {len(name)} characters long (at most {IDENTIFIER_MAX_CHARS})"
    elif not _IDENTIFIER_RE.fullmatch(name):
        reason = f"it contains {_bad_characters(name, _IDENTIFIER_CHAR_RE)}"
    elif name.isdigit():
        reason = "it is all digits"
    else:
        return name
    raise ConfigError(f"{what} {show_value(name)} is not a valid MySQL identifier: {reason}; {_IDENTIFIER_RULE}")


def quote_identifier(name: str) -> str:
    """Validate a MySQL identifier (table, column, schema) and return it backtick-quoted.

    The validation is what makes the quoting safe: a valid name cannot contain a backtick, so
    it cannot close the quotes. Raises ConfigError naming the bad identifier otherwise.
    """
    return backtick(check_identifier(name, "name"))


def backtick(name: str) -> str:
    """Backtick-quote any name the server gave (a result column), doubling backticks inside it.

    Names from admin rows go through ``quote_identifier``, which validates them first.
    """
    return "`" + name.replace("`", "``") + "`"


_ALIAS_CHAR_RE: Final = re.compile(r"[a-z0-9_]")
_ALIAS_RULE: Final = (
    f"an alias is 1-{ALIAS_MAX_CHARS} characters: a lowercase letter, then lowercase letters, digits or '_'"
)


def check_alias(alias: str) -> str:
    """Validate a company alias and return it unchanged.

    The alias becomes part of an S3 bucket name and of a MySQL schema name, so it must match
    ``^[a-z][a-z0-9_]{0,39}$``. Raises ConfigError naming the alias and what is wrong.
    """
    if not isinstance(alias, str):
        raise ConfigError(f"company alias must be a string, got {type(alias).__name__}")
    if not alias:
        reason = "is empty"
    elif len(alias) > ALIAS_MAX_CHARS:
        reason = f"is {len(alias)} characters long (at most {ALIAS_MAX_CHARS})"
    elif any("A" <= ch <= "Z" for ch in alias):
        reason = "contains uppercase letters (use lowercase)"
    elif not all(_ALIAS_CHAR_RE.fullmatch(ch) for ch in alias):
        reason = f"contains {_bad_characters(alias, _ALIAS_CHAR_RE)}"
    elif not _ALIAS_RE.fullmatch(alias):
        reason = "does not start with a lowercase letter"
    else:
        return alias
    raise ConfigError(f"company alias {show_value(alias)} {reason}; {_ALIAS_RULE}")


def _apply_template(template: str, alias: str, what: str) -> str:
    """Substitute ``{alias}`` into a template, allowing nothing else str.format could do.

    str.format itself is not used: a field like ``{alias.__class__}`` would let a template reach
    into Python objects.
    """
    if not isinstance(template, str):
        raise ConfigError(f"{what} template must be a string, got {type(template).__name__}")
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ConfigError(f"{what} template {show_value(template)} is not a valid format string: {error}") from None
    out: list[str] = []
    has_alias = False
    for literal, field, spec, conversion in pieces:
        out.append(literal)
        if field is None:
            continue
        if field != "alias" or spec or conversion:
            shown = "{" + field + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ConfigError(
                f"{what} template {show_value(template)} uses {shown!r}; the only field allowed is '{{alias}}'"
            )
        out.append(alias)
        has_alias = True
    # Without the alias every company would share one bucket or schema.
    if not has_alias:
        raise ConfigError(f"{what} template {show_value(template)} must contain '{{alias}}'")
    return "".join(out)


def _bucket_problem(name: str) -> str | None:
    """What makes name an invalid S3 general purpose bucket name, or None when it is valid."""
    if not 3 <= len(name) <= 63:
        return f"it is {len(name)} characters long (3-63 allowed)"
    if not _BUCKET_CHARS_RE.fullmatch(name):
        return f"it contains {_bad_characters(name, re.compile(r'[a-z0-9.-]'))} (only a-z, 0-9, '.' and '-')"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "it must start and end with a letter or digit"
    if ".." in name:
        return "it contains '..'"
    if _IPV4_LIKE_RE.fullmatch(name):
        return "it looks like an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"the prefix {prefix!r} is reserved by S3"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"the suffix {suffix!r} is reserved by S3"
    return None


def bucket_name(template: str, alias: str) -> str:
    """The S3 bucket of a company: the template (e.g. ``reports-{alias}``) with the alias filled in.

    Bucket names cannot contain '_', so underscores in the alias become '-' (the alias rules
    forbid '-', so two aliases never map to the same bucket). The result is checked against
    the S3 naming rules; ConfigError names the alias, the template and the problem.
    """
    check_alias(alias)
    try:
        name = _apply_template(template, alias.replace("_", "-"), "bucket")
    except ConfigError as error:
        raise ConfigError(f"{error} (alias {alias!r})") from None
    problem = _bucket_problem(name)
    if problem is not None:
        raise ConfigError(
            f"bucket name {show_value(name)} (template {show_value(template)}, alias {alias!r}) "
            f"is not a valid S3 bucket name: {problem}"
        )
    return name


def schema_name(template: str, alias: str) -> str:
    """The MySQL schema of a company: the template (e.g. ``{alias}``) with the alias filled in.

    The result must be a valid identifier (see check_identifier) and not one of the server's
    own schemas (mysql, information_schema, performance_schema, sys, ndbinfo).
    """
    check_alias(alias)
    try:
        name = _apply_template(template, alias, "schema")
    except ConfigError as error:
        raise ConfigError(f"{error} (alias {alias!r})") from None
    try:
        check_identifier(name, "schema")
    except ConfigError as error:
        raise ConfigError(f"{error} (template {show_value(template)}, alias {alias!r})") from None
    if name.lower() in _SYSTEM_SCHEMAS:
        raise ConfigError(
            f"schema {name!r} (template {show_value(template)}, alias {alias!r}) is a MySQL system schema"
        )
    return name
