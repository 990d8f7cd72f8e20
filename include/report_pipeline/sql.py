"""Validation of the SQL fragments and names that come from admin rows.

Everything here treats its input as hostile: admin rows are written by users, and what they
contain ends up as identifiers in generated SQL, as S3 bucket names, or as a query executed on
the source database. Every function either returns a value that is safe for its one use or
raises ConfigError saying what is wrong.

How a query is judged (``check_select``) works in two layers, because a check that only looks at
sqlglot's tree is only as good as sqlglot's agreement with the MySQL lexer:

* a small lexer that follows MySQL's own rules (string escapes, ``--`` needing a space, ``#``
  and non-nesting ``/* */`` comments) finds what the server would see as code, and rejects
  executable comments, stacked statements and the forbidden keywords and function names there;
* sqlglot then parses a copy of the query with comments blanked and placeholders replaced, and
  the tree must be a single read-only SELECT.

Queries are executed with MySQLdb, which applies Python %-formatting to the whole text whenever
parameters are passed. A query accepted here must therefore always be executed WITH a parameter
sequence or mapping (an empty ``()`` when it has no placeholders), so that ``%%`` becomes ``%``.
"""

from __future__ import annotations

import functools
import re
import string
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from report_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot (~0.1 s to import) is imported where a query is validated, not at module import: every
# DAG parse imports this module, and parsing from a snapshot never validates SQL.

__all__ = [
    "InsertTarget",
    "bucket_name",
    "check_alias",
    "check_identifier",
    "check_placeholders",
    "check_select",
    "count_placeholders",
    "parse_insert_target",
    "quote_identifier",
    "schema_name",
]

# A query is parsed several times over; bounding its size bounds the work a hostile row can cause.
MAX_QUERY_CHARS: Final = 100_000
MAX_INSERT_CHARS: Final = 10_000

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

# Functions that read server files, stall the server, take advisory locks or wait on replication.
_FORBIDDEN_FUNCTIONS: Final = frozenset(
    {
        "LOAD_FILE",
        "SLEEP",
        "BENCHMARK",
        "GET_LOCK",
        "RELEASE_LOCK",
        "RELEASE_ALL_LOCKS",
        "IS_FREE_LOCK",
        "IS_USED_LOCK",
        "MASTER_POS_WAIT",
        "SOURCE_POS_WAIT",
        "WAIT_FOR_EXECUTED_GTID_SET",
        "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS",
        # MariaDB's own replication wait.
        "MASTER_GTID_WAIT",
        # MariaDB sequences: a SELECT calling these advances or resets the sequence on the source.
        "NEXTVAL",
        "SETVAL",
    }
)
# lib_mysqludf_sys and its clones register sys_exec, sys_eval, sys_get, sys_set, ...
_FORBIDDEN_FUNCTION_PREFIX: Final = "SYS_"

_QUERY_STARTS: Final = frozenset({"SELECT", "WITH"})

# MySQL's whitespace (my_isspace); anything else, including non-ASCII spaces, is not a separator.
_MYSQL_SPACE: Final = " \t\n\v\f\r"
# Characters of an unquoted MySQL identifier or keyword (ASCII word characters, $, U+0080..U+FFFF).
_WORD_RE: Final = re.compile("[0-9A-Za-z$_\u0080-\uffff]+")

_NAMED_PLACEHOLDER_RE: Final = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")


def _show(value: str, limit: int = 80) -> str:
    """repr() of a user value, cut short so a huge hostile value cannot flood logs."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def _bad_characters(value: str, allowed: re.Pattern[str]) -> str:
    """The distinct characters of value that allowed does not match, listed for an error message."""
    bad: list[str] = []
    for ch in value:
        if not allowed.fullmatch(ch) and ch not in bad:
            bad.append(ch)
    shown = ", ".join(repr(ch) for ch in bad[:5])
    return shown + (", ..." if len(bad) > 5 else "")


# --------------------------------------------------------------------------------------------
# Identifiers, aliases, buckets and schemas
# --------------------------------------------------------------------------------------------

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
    raise ConfigError(f"{what} {_show(name)} is not a valid MySQL identifier: {reason}; {_IDENTIFIER_RULE}")


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
    raise ConfigError(f"company alias {_show(alias)} {reason}; {_ALIAS_RULE}")


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
        raise ConfigError(f"{what} template {_show(template)} is not a valid format string: {error}") from None
    out: list[str] = []
    has_alias = False
    for literal, field, spec, conversion in pieces:
        out.append(literal)
        if field is None:
            continue
        if field != "alias" or spec or conversion:
            shown = "{" + field + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            raise ConfigError(
                f"{what} template {_show(template)} uses {shown!r}; the only field allowed is '{{alias}}'"
            )
        out.append(alias)
        has_alias = True
    # Without the alias every company would share one bucket or schema.
    if not has_alias:
        raise ConfigError(f"{what} template {_show(template)} must contain '{{alias}}'")
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
            f"bucket name {_show(name)} (template {_show(template)}, alias {alias!r}) "
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
        raise ConfigError(f"{error} (template {_show(template)}, alias {alias!r})") from None
    if name.lower() in _SYSTEM_SCHEMAS:
        raise ConfigError(f"schema {name!r} (template {_show(template)}, alias {alias!r}) is a MySQL system schema")
    return name


# --------------------------------------------------------------------------------------------
# A lexer that follows MySQL's rules
# --------------------------------------------------------------------------------------------

_SegmentKind = Literal["code", "string", "identifier", "line_comment", "block_comment"]


@dataclass(frozen=True)
class _Segment:
    kind: _SegmentKind
    start: int
    end: int  # exclusive


def _quoted_end(sql: str, start: int, backslash_escapes: bool) -> int:
    """End (exclusive) of the quoted string or backtick identifier opening at start."""
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
    what = "quoted identifier" if quote == "`" else "string literal"
    raise ConfigError(f"unterminated {what} starting at offset {start}: {_show(sql[start : start + 30])}")


def _starts_dash_comment(sql: str, i: int) -> bool:
    """MySQL only reads '--' as a comment when a space or control character (or the end) follows."""
    if not sql.startswith("--", i):
        return False
    if i + 2 >= len(sql):
        return True
    nxt = sql[i + 2]
    return nxt in _MYSQL_SPACE or ord(nxt) < 32 or ord(nxt) == 127


def _lex(sql: str, *, backslash_escapes: bool = True) -> list[_Segment]:
    """Split sql into code, string literals, quoted identifiers and comments as MySQL would.

    ``backslash_escapes=False`` is the NO_BACKSLASH_ESCAPES sql_mode (and what ANSI_QUOTES does
    to double-quoted text). Raises ConfigError on an unterminated literal or comment.
    """
    segments: list[_Segment] = []
    n = len(sql)
    code_start = 0
    i = 0
    while i < n:
        ch = sql[i]
        kind: _SegmentKind
        if ch in "'\"":
            kind, end = "string", _quoted_end(sql, i, backslash_escapes)
        elif ch == "`":
            kind, end = "identifier", _quoted_end(sql, i, False)
        elif ch == "#" or _starts_dash_comment(sql, i):
            # The comment runs to '\n' only: MySQL does not end it at '\r'.
            newline = sql.find("\n", i)
            kind, end = "line_comment", (n if newline < 0 else newline)
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            if close < 0:
                raise ConfigError(f"unterminated /* comment starting at offset {i}")
            kind, end = "block_comment", close + 2
        else:
            i += 1
            continue
        if code_start < i:
            segments.append(_Segment("code", code_start, i))
        segments.append(_Segment(kind, i, end))
        i = code_start = end
    if code_start < n:
        segments.append(_Segment("code", code_start, n))
    return segments


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "punct", "string", "identifier"]
    text: str
    start: int


def _tokens(sql: str, segments: list[_Segment]) -> list[_Token]:
    """The significant tokens: words and punctuation of code, and literals, without comments."""
    tokens: list[_Token] = []
    for seg in segments:
        if seg.kind == "string" or seg.kind == "identifier":
            tokens.append(_Token(seg.kind, sql[seg.start : seg.end], seg.start))
            continue
        if seg.kind != "code":
            continue
        i = seg.start
        while i < seg.end:
            ch = sql[i]
            if ch in _MYSQL_SPACE:
                i += 1
                continue
            match = _WORD_RE.match(sql, i, seg.end)
            if match:
                tokens.append(_Token("word", match.group(), i))
                i = match.end()
            else:
                tokens.append(_Token("punct", ch, i))
                i += 1
    return tokens


def _token_name(token: _Token) -> str | None:
    """The upper-cased name a word or backtick identifier stands for; None for anything else."""
    if token.kind == "word":
        return token.text.upper()
    if token.kind == "identifier":
        return token.text[1:-1].replace("``", "`").upper()
    return None


# --------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------

_PercentKind = Literal["escape", "positional", "named", "bad"]


@dataclass(frozen=True)
class _Percent:
    kind: _PercentKind
    start: int
    end: int
    name: str = ""


def _percents(sql: str) -> list[_Percent]:
    """Every '%' directive, read left to right the way Python %-formatting reads the whole text."""
    found: list[_Percent] = []
    i = sql.find("%")
    while i >= 0:
        nxt = sql[i + 1 : i + 2]
        if nxt == "%":
            found.append(_Percent("escape", i, i + 2))
        elif nxt == "s":
            found.append(_Percent("positional", i, i + 2))
        elif (match := _NAMED_PLACEHOLDER_RE.match(sql, i)) is not None:
            found.append(_Percent("named", i, match.end(), match.group(1)))
        else:
            found.append(_Percent("bad", i, i + 1))
        i = sql.find("%", found[-1].end)
    return found


def _segment_at(segments: list[_Segment], starts: list[int], position: int) -> _Segment:
    return segments[bisect_right(starts, position) - 1]


def _placeholders_in_code(sql: str, segments: list[_Segment]) -> list[_Percent]:
    starts = [s.start for s in segments]
    return [
        p
        for p in _percents(sql)
        if p.kind in ("positional", "named") and _segment_at(segments, starts, p.start).kind == "code"
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
    for p in _placeholders_in_code(sql, _lex(sql)):
        if p.kind == "positional":
            positional += 1
        else:
            named.add(p.name)
    return positional, frozenset(named)


_KIND_WORDS: Final[dict[_SegmentKind, str]] = {
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
    segments = _lex(sql)
    starts = [s.start for s in segments]
    positional: list[_Percent] = []
    named: list[_Percent] = []
    for p in _percents(sql):
        fragment = sql[p.start : p.start + 12]
        if p.kind == "bad":
            raise ConfigError(
                f"'%' at offset {p.start} ({_show(fragment)}) is neither a placeholder (%s, %(name)s) "
                "nor an escaped percent sign: the MySQL driver applies Python %-formatting to the whole "
                "query, string literals included, so a literal % must be written %% "
                "(for example LIKE 'a%%', or a %% b for modulo)"
            )
        if p.kind == "escape":
            continue
        kind = _segment_at(segments, starts, p.start).kind
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


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------

@functools.cache
def _not_read_only_nodes() -> tuple[type[exp.Expression], ...]:
    from sqlglot import exp

    return (
        exp.DML,
        exp.Command,
        exp.Set,
        exp.Create,
        exp.Drop,
        exp.Alter,
        exp.TruncateTable,
        exp.LoadData,
        exp.Describe,
        exp.Show,
        exp.Transaction,
        exp.Commit,
        exp.Rollback,
        exp.Use,
    )

_INTO_MESSAGE: Final = "SELECT ... INTO (OUTFILE, DUMPFILE or @variable) is not allowed: the query may only return rows"
_LOCK_MESSAGE: Final = (
    "locking reads (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) are not allowed: "
    "the query must not lock rows on the source"
)
_ASSIGN_MESSAGE: Final = "assigning a user variable (@x := ...) is not allowed"


_SEQUENCE_MESSAGE: Final = "NEXT VALUE FOR is not allowed: it advances a sequence on the source"
_SYSTEM_SCHEMA_READ_MESSAGE: Final = (
    "the query reads {table!r} in the server's own schema {schema!r} (accounts, password hashes, "
    "server internals); only application tables may be copied"
)
# information_schema is left out on purpose: it shows only what the user may already see anyway.
_PRIVATE_SCHEMAS: Final = frozenset({"mysql", "performance_schema", "sys"})


def _function_message(name: str) -> str:
    return (
        f"function {name}() is not allowed: it reads server files, stalls the server, takes locks, "
        "waits on replication, changes a sequence or runs commands"
    )


def _is_forbidden_function(name: str) -> bool:
    upper = name.upper()
    return upper in _FORBIDDEN_FUNCTIONS or upper.startswith(_FORBIDDEN_FUNCTION_PREFIX)


def _check_tokens(tokens: list[_Token]) -> None:
    """The keyword and function checks, over what MySQL itself would read as code.

    They repeat the tree checks on purpose: if sqlglot ever reads a stretch of code as a
    literal or comment, these still see it.
    """
    # Keywords are only ever bare words: a backtick-quoted `into` is a column name.
    keywords = [t.text.upper() if t.kind == "word" else None for t in tokens]
    for i, token in enumerate(tokens):
        keyword = keywords[i]
        following = keywords[i + 1 : i + 4]
        if keyword == "INTO":
            raise ConfigError(_INTO_MESSAGE)
        # sqlglot cannot parse NEXT VALUE FOR, so without this users would see a bare parse error.
        # After a '.', MySQL reads even a reserved word as a name (t.next is a column).
        qualified = i > 0 and tokens[i - 1].text == "."
        if keyword == "NEXT" and not qualified and following[:2] == ["VALUE", "FOR"]:
            raise ConfigError(_SEQUENCE_MESSAGE)
        if (keyword == "FOR" and following[:1] in (["UPDATE"], ["SHARE"])) or (
            keyword == "LOCK" and following == ["IN", "SHARE", "MODE"]
        ):
            raise ConfigError(_LOCK_MESSAGE)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is None:
            continue
        # MySQL allows space (and comments) between a function name and its '('.
        name = _token_name(token)
        if name is not None and nxt.text == "(" and _is_forbidden_function(name):
            raise ConfigError(_function_message(name))
        if token.text == ":" and nxt.text == "=" and nxt.start == token.start + 1:
            raise ConfigError(_ASSIGN_MESSAGE)
    for token in tokens:
        # sqlglot happily parses '?', but MySQLdb formats %s client-side and never binds '?'.
        if token.text == "?":
            raise ConfigError(f"'?' at offset {token.start} is not a placeholder here; write %s or %(name)s")


def _function_names(node: exp.Func) -> list[str]:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return [node.name]
    names: list[str] = type(node).sql_names()  # type: ignore[no-untyped-call]
    return [node.key, *names]


def _check_tree(tree: exp.Expression) -> None:
    """Require a single read-only SELECT (or UNION/INTERSECT/EXCEPT of them, or WITH ... SELECT)."""
    from sqlglot import exp

    top = tree
    while isinstance(top, exp.Subquery):
        top = top.this
    if not isinstance(top, (exp.Select, exp.SetOperation)):
        raise ConfigError(f"only a SELECT statement is allowed; this is a {top.key.upper()} statement")
    for node in tree.walk():
        if isinstance(node, _not_read_only_nodes()):
            raise ConfigError(f"only a read-only SELECT is allowed; the query contains a {node.key.upper()}")
        if isinstance(node, exp.Into):
            raise ConfigError(_INTO_MESSAGE)
        if isinstance(node, exp.Lock):
            raise ConfigError(_LOCK_MESSAGE)
        if isinstance(node, exp.Table) and node.db.lower() in _PRIVATE_SCHEMAS:
            raise ConfigError(_SYSTEM_SCHEMA_READ_MESSAGE.format(table=node.name, schema=node.db))
        # sqlglot reads ':=' as PropertyEQ; in MySQL it can only assign a user variable.
        if isinstance(node, exp.PropertyEQ):
            raise ConfigError(_ASSIGN_MESSAGE)
        # sqlglot accepts a bare "SELECT"; MySQL does not, so fail here rather than at run time.
        if isinstance(node, exp.Select) and not node.expressions:
            raise ConfigError("a SELECT has no select list")
        if isinstance(node, exp.Func):
            for name in _function_names(node):
                if _is_forbidden_function(name):
                    raise ConfigError(_function_message(name.upper()))


def _parse_copy(sql: str, segments: list[_Segment]) -> str:
    """The text sqlglot parses: comments blanked, placeholders and %% made plain SQL.

    Comments are blanked because MySQL and sqlglot disagree about some of them; blanking keeps
    line and column numbers in sqlglot's messages. Placeholders become a literal 0, which is
    valid wherever a bound value is.
    """
    chars = list(sql)
    for seg in segments:
        if seg.kind in ("line_comment", "block_comment"):
            for i in range(seg.start, seg.end):
                if chars[i] != "\n":
                    chars[i] = " "
    starts = [s.start for s in segments]
    for p in _percents(sql):
        if _segment_at(segments, starts, p.start).kind != "code":
            continue
        if p.kind == "escape":
            # The driver turns %% into the modulo operator %.
            chars[p.start + 1] = " "
        elif p.kind in ("positional", "named"):
            chars[p.start : p.end] = list("0".ljust(p.end - p.start))
    return "".join(chars)


def _strip_end(sql: str, segments: list[_Segment]) -> str:
    """sql without trailing whitespace and one trailing ';' that is code (not inside a comment)."""
    if not segments or segments[-1].kind != "code":
        return sql
    last = segments[-1]
    code = sql[last.start : last.end].rstrip(_MYSQL_SPACE)
    if code.endswith(";"):
        code = code[:-1].rstrip(_MYSQL_SPACE)
    return sql[: last.start + len(code)]


# Optimizer hints that would lift the session's bounds for one statement (REPORTS_QUERY_TIMEOUT):
# MAX_EXECUTION_TIME(0) or above the bound, SET_VAR of any *time* variable (max_execution_time,
# lock_wait_timeout, net_write_timeout, ...). A lower MAX_EXECUTION_TIME only tightens it and passes.
_EXECUTION_TIME_HINT = re.compile(r"\bMAX_EXECUTION_TIME\s*\(\s*([^)]*?)\s*\)", re.IGNORECASE)
_SET_VAR_HINT = re.compile(r"\bSET_VAR\s*\(\s*`?(\w*)", re.IGNORECASE)


def _query_timeout_ms() -> int:
    from report_pipeline.settings import Settings

    try:
        return Settings.from_env().query_timeout_seconds * 1000
    except ConfigError:
        return Settings.query_timeout_seconds * 1000


def _check_hint(body: str, offset: int) -> None:
    """Refuse an optimizer hint comment (``/*+ ... */``) that would lift the pipeline's query bounds."""
    if not body.startswith("/*+"):
        return
    for match in _EXECUTION_TIME_HINT.finditer(body):
        value = match.group(1)
        if not value.isdigit() or not 0 < int(value) <= _query_timeout_ms():
            raise ConfigError(
                f"optimizer hint MAX_EXECUTION_TIME({value}) at offset {offset} is not allowed: it would lift "
                f"the source query timeout (REPORTS_QUERY_TIMEOUT, {_query_timeout_ms()} ms); remove the hint "
                "or give a smaller positive limit"
            )
    for match in _SET_VAR_HINT.finditer(body):
        if "time" in match.group(1).lower() or not match.group(1):
            raise ConfigError(
                f"optimizer hint SET_VAR({match.group(1)}=...) at offset {offset} is not allowed: it would change "
                "the session's bounds for this query (REPORTS_QUERY_TIMEOUT, lock and network timeouts)"
            )


def check_select(sql: str) -> str:
    """Validate a user-written query and return it ready to execute.

    Accepts exactly one read-only SELECT: a plain SELECT, a UNION/INTERSECT/EXCEPT of SELECTs,
    or WITH ... SELECT, with ``%s`` or ``%(name)s`` placeholders (see check_placeholders). The
    result is the text as written minus trailing whitespace and one trailing ';'; if it ends
    in a ``--`` or ``#`` comment, a newline is kept after it so the query can be wrapped in a
    subquery. It must be executed with parameters (``()`` when there are none).

    Raises ConfigError saying why when the query is empty, holds more than one statement, is
    not a SELECT, writes anywhere (INTO OUTFILE/DUMPFILE/@var, := assignments), takes locks
    (FOR UPDATE/SHARE, LOCK IN SHARE MODE), calls a dangerous function (LOAD_FILE, SLEEP,
    BENCHMARK, lock and replication-wait functions, sequence writers NEXTVAL/SETVAL/NEXT VALUE
    FOR, sys_* UDFs), reads the server's private schemas
    (mysql, performance_schema, sys), hides code in an executable comment (``/*! */``,
    ``/*M! */``), cannot be tokenized the same way under every sql_mode, or cannot be parsed.
    """
    if not isinstance(sql, str):
        raise ConfigError(f"the query must be a string, got {type(sql).__name__}")
    if len(sql) > MAX_QUERY_CHARS:
        raise ConfigError(f"the query is {len(sql)} characters long (at most {MAX_QUERY_CHARS})")
    if "\x00" in sql:
        raise ConfigError("the query contains a NUL character")

    segments = _lex(sql)
    # A literal whose end depends on whether backslash escapes ('it\'s') can hide code from
    # one reading or the other; the server's sql_mode decides which one it uses.
    try:
        ambiguous = _lex(sql, backslash_escapes=False) != segments
    except ConfigError:
        ambiguous = True
    if ambiguous:
        raise ConfigError(
            "a string literal contains a backslash before a quote, which MySQL reads differently "
            "depending on sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES); write a quote inside a "
            "literal by doubling it: 'it''s'"
        )
    text = _strip_end(sql, segments)
    segments = _lex(text)
    if segments and segments[-1].kind == "line_comment":
        # Whatever is appended to the query (a wrapping subquery's ')') must not land in the comment.
        text += "\n"
        segments = _lex(text)
    tokens = _tokens(text, segments)
    if not tokens:
        raise ConfigError("the query is empty")

    for seg in segments:
        body = text[seg.start : seg.end]
        if seg.kind == "block_comment":
            _check_hint(body, seg.start)
        if seg.kind == "block_comment" and (body.startswith("/*!") or body[2:4].upper() == "M!"):
            raise ConfigError(
                f"executable comment {_show(body[:20])} at offset {seg.start} is not allowed: "
                "MySQL and MariaDB run the code inside /*! ... */ and /*M! ... */"
            )
        if seg.kind == "code" and "--" in body:
            raise ConfigError(
                f"'--' at offset {seg.start + body.index('--')} is not followed by a space, so MySQL "
                "reads it as two minus signs, not a comment; write '-- ' for a comment"
            )
    for token in tokens:
        if token.text == ";":
            raise ConfigError(f"more than one statement: ';' at offset {token.start}; only a single SELECT is allowed")
    first = _token_name(tokens[0]) if tokens[0].kind == "word" else tokens[0].text
    if first not in _QUERY_STARTS and first != "(":
        raise ConfigError(
            f"only a SELECT statement is allowed (or WITH ... SELECT, or a UNION of SELECTs); "
            f"this one starts with {_show(first or '')}"
        )

    check_placeholders(text)
    _check_tokens(tokens)

    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        trees = [t for t in sqlglot.parse(_parse_copy(text, segments), dialect="mysql") if t is not None]
    except SqlglotError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"the query cannot be parsed: {message}") from None
    except RecursionError:
        raise ConfigError("the query is nested too deeply to be parsed") from None
    except Exception as error:  # noqa: BLE001
        # A parser crash on one hostile row must mark that row as broken, not break the caller.
        raise ConfigError(f"the query cannot be parsed: sqlglot failed with {type(error).__name__}") from None
    if len(trees) != 1:
        raise ConfigError(f"the query holds {len(trees)} statements; only a single SELECT is allowed")
    _check_tree(trees[0])
    return text


# --------------------------------------------------------------------------------------------
# INSERT targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsertTarget:
    """Where a table spec's rows are loaded: a table in the company schema, and its columns.

    ``mode`` comes from the statement's verb: REPLACE, INSERT, or INSERT IGNORE.
    """

    table: str
    columns: tuple[str, ...]
    mode: Literal["replace", "insert", "ignore"]


_INSERT_TOKEN_RE: Final = re.compile(
    r"(?P<space>[ \t\r\n]+)|(?P<identifier>`(?:[^`]|``)*`)|(?P<word>[A-Za-z0-9_$]+)|(?P<punct>[(),.;])"
)
# Reserved words that cannot be a bare table name: seeing one there means the name was left out.
_INSERT_RESERVED: Final = frozenset(
    {"INSERT", "REPLACE", "IGNORE", "INTO", "VALUES", "VALUE", "SELECT", "SET", "TABLE", "WITH", "PARTITION", "ON"}
)
_INSERT_MODIFIERS: Final = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY"})


@dataclass(frozen=True)
class _InsertToken:
    kind: Literal["identifier", "word", "punct", "other", "end"]
    text: str
    start: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _insert_tokens(sql: str, shown: str) -> list[_InsertToken]:
    """Tokens of a query_insert header, ending with an "end" token; "other" is any stray character."""
    tokens: list[_InsertToken] = []
    i = 0
    while i < len(sql):
        match = _INSERT_TOKEN_RE.match(sql, i)
        if match is None:
            if sql[i] == "#" or sql.startswith("--", i) or sql.startswith("/*", i):
                raise ConfigError(f"query_insert {shown} contains a comment at offset {i}; comments are not allowed")
            if sql[i] == "`":
                raise ConfigError(f"query_insert {shown} has an unterminated quoted identifier at offset {i}")
            tokens.append(_InsertToken("other", sql[i], i))
            i += 1
            continue
        if match.lastgroup == "identifier":
            tokens.append(_InsertToken("identifier", match.group(), i))
        elif match.lastgroup == "word":
            tokens.append(_InsertToken("word", match.group(), i))
        elif match.lastgroup == "punct":
            tokens.append(_InsertToken("punct", match.group(), i))
        i = match.end()
    tokens.append(_InsertToken("end", "", len(sql)))
    return tokens


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
    shown = _show(sql)
    tokens = _insert_tokens(sql, shown)
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
