"""The SELECT-only check of a row's ``query_select``, and its placeholders.

How a query is judged (``check_select``) works in two layers, because a check that only looks at
sqlglot's tree is only as good as sqlglot's agreement with the MySQL lexer:

* the MySQL tokeniser (tokens.py) finds what the server would see as code, and the token checks
  here reject executable comments, stacked statements and the forbidden keywords and function
  names there;
* sqlglot then parses a copy of the query with comments blanked and placeholders replaced, and
  the tree must be a single read-only SELECT.

Queries are executed with MySQLdb, which applies Python %-formatting to the whole text whenever
parameters are passed. A query accepted here must therefore always be executed WITH a parameter
sequence or mapping (an empty ``()`` when it has no placeholders), so that ``%%`` becomes ``%``.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from report_pipeline.errors import ConfigError, show_value
from report_pipeline.validation.placeholders import check_placeholders, percents
from report_pipeline.validation.tokens import (
    MYSQL_SPACE,
    Segment,
    Token,
    lex,
    read_segments,
    read_tokens,
    segment_at,
    token_name,
)

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot (~0.1 s to import) is imported where a query is validated, not at module import: every
# DAG parse imports this module, and parsing from a snapshot never validates SQL.

__all__ = ["MAX_QUERY_CHARS", "check_select"]

# A query is parsed several times over; bounding its size bounds the work a hostile row can cause.
MAX_QUERY_CHARS: Final = 100_000

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


def _check_tokens(tokens: list[Token]) -> None:
    """The keyword and function checks, over what MySQL itself would read as code.

    They repeat the tree checks on purpose: if sqlglot ever reads a stretch of code as a
    literal or comment, these still see it.
    """
    keywords = [t.keyword for t in tokens]
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
        name = token_name(token)
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


def _parse_copy(sql: str, segments: list[Segment]) -> str:
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
    for p in percents(sql):
        if segment_at(segments, starts, p.start).kind != "code":
            continue
        if p.kind == "escape":
            # The driver turns %% into the modulo operator %.
            chars[p.start + 1] = " "
        elif p.kind in ("positional", "named"):
            chars[p.start : p.end] = list("0".ljust(p.end - p.start))
    return "".join(chars)


def _strip_end(sql: str, segments: list[Segment]) -> str:
    """sql without trailing whitespace and one trailing ';' that is code (not inside a comment)."""
    if not segments or segments[-1].kind != "code":
        return sql
    last = segments[-1]
    code = sql[last.start : last.end].rstrip(MYSQL_SPACE)
    if code.endswith(";"):
        code = code[:-1].rstrip(MYSQL_SPACE)
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

    segments = lex(sql)
    # A literal whose end depends on whether backslash escapes ('it\'s') can hide code from
    # one reading or the other; the server's sql_mode decides which one it uses. A literal that
    # never ends under the other reading is read differently too (an unclosed segment).
    if read_segments(sql, backslash_escapes=False) != segments:
        raise ConfigError(
            "a string literal contains a backslash before a quote, which MySQL reads differently "
            "depending on sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES); write a quote inside a "
            "literal by doubling it: 'it''s'"
        )
    text = _strip_end(sql, segments)
    segments = lex(text)
    if segments and segments[-1].kind == "line_comment":
        # Whatever is appended to the query (a wrapping subquery's ')') must not land in the comment.
        text += "\n"
        segments = lex(text)
    tokens = read_tokens(text, segments)
    if not tokens:
        raise ConfigError("the query is empty")

    for seg in segments:
        body = text[seg.start : seg.end]
        if seg.kind == "block_comment":
            _check_hint(body, seg.start)
        if seg.kind == "block_comment" and (body.startswith("/*!") or body[2:4].upper() == "M!"):
            raise ConfigError(
                f"executable comment {show_value(body[:20])} at offset {seg.start} is not allowed: "
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
    first = token_name(tokens[0]) if tokens[0].kind == "word" else tokens[0].text
    if first not in _QUERY_STARTS and first != "(":
        raise ConfigError(
            f"only a SELECT statement is allowed (or WITH ... SELECT, or a UNION of SELECTs); "
            f"this one starts with {show_value(first or '')}"
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
