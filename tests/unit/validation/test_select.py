"""Tests of report_pipeline.validation.select: every admin-row input is hostile, so most cases are rejections."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.errors import ParseError
from tests.unit.validation.samples import SEED_SELECT, SQLISH

from report_pipeline.errors import ConfigError
from report_pipeline.validation import check_select, select
from report_pipeline.validation.select import MAX_QUERY_CHARS
from report_pipeline.validation.tokens import lex, read_tokens

# --------------------------------------------------------------------------------------------
# check_select: what is accepted
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (SEED_SELECT, SEED_SELECT),
        ("SELECT 1", "SELECT 1"),
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ;  \n\t", "SELECT 1"),
        ("  SELECT 1\n", "  SELECT 1"),
        ("select a from t", "select a from t"),
        (
            "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id "
            "LEFT JOIN refunds r USING (order_id) WHERE o.day >= %s",
            None,
        ),
        ("SELECT a FROM t WHERE b IN (SELECT b FROM u WHERE c > 0)", None),
        ("SELECT * FROM (SELECT a, COUNT(*) AS n FROM t GROUP BY a) AS x WHERE n > 1", None),
        ("SELECT a FROM t UNION SELECT a FROM u", None),
        ("SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a LIMIT 10", None),
        ("(SELECT a FROM t) UNION (SELECT a FROM u)", None),
        ("(SELECT a FROM t)", None),
        ("SELECT a FROM t INTERSECT SELECT a FROM u", None),
        ("WITH c AS (SELECT 1 AS a) SELECT a FROM c", None),
        ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT n FROM c", None),
        ("SELECT a FROM t WHERE d >= %(date_from)s AND d < %(date_to)s", None),
        ("SELECT a FROM t WHERE d >= %(date_from)s OR e >= %(date_from)s", None),
        ("SELECT a FROM t WHERE b = %s AND c IN %s", None),
        ("SELECT a FROM t WHERE b LIKE 'a%%'", None),
        ("SELECT a FROM t WHERE b LIKE CONCAT('%%', %s, '%%')", None),
        ("SELECT a %% 7 FROM t", None),
        ("SELECT ';' AS semi FROM t", None),
        ("SELECT '/*!50000 DROP TABLE t */' AS looks_executable", None),
        ("SELECT 'SLEEP(10)', 'LOAD_FILE(x)', \"INTO OUTFILE\", 'FOR UPDATE' FROM t", None),
        ("SELECT '; DELETE FROM t; --' AS s", None),
        ('SELECT \'it\'\'s\', "say ""hi"""', None),
        ("SELECT 'C:\\\\dir\\\\' AS path", None),
        ("SELECT 'a\\nb' AS newline_escape", None),
        ("SELECT `into`, `sleep`, `for` FROM `select`", None),
        ("SELECT a FROM t WHERE a = @threshold", None),
        ("SELECT a FROM t /* plain comment */ WHERE a = 1", None),
        ("SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t", None),
        ("SELECT a FROM t WHERE a = 1 -- trailing comment\n", "SELECT a FROM t WHERE a = 1 -- trailing comment\n"),
        ("SELECT a FROM t WHERE a = 1 -- trailing comment", "SELECT a FROM t WHERE a = 1 -- trailing comment\n"),
        ("SELECT a FROM t # hash comment", "SELECT a FROM t # hash comment\n"),
        ("-- leading comment\nSELECT 1", None),
        ("SELECT 1 -- c; DELETE FROM t\n", "SELECT 1 -- c; DELETE FROM t\n"),
        ("SELECT 1 - -1", None),
        ("SELECT JSON_EXTRACT(doc, '$.a') AS a, doc->>'$.b' AS b FROM t", None),
        ("SELECT GROUP_CONCAT(a ORDER BY a SEPARATOR ';') FROM t", None),
        ("SELECT DATE_ADD(d, INTERVAL %s DAY) FROM t", None),
        ("SELECT SQL_NO_CACHE a FROM t USE INDEX (i) WHERE a > 0", None),
        ("SELECT j.x FROM JSON_TABLE('[1]', '$[*]' COLUMNS (n FOR ORDINALITY, x INT PATH '$')) AS j", None),
        ("SELECT sleep_minutes, sys_total FROM stats", None),
        ("SELECT a FROM t WHERE b = _utf8mb4'x' COLLATE utf8mb4_bin", None),
        ("SELECT a FROM t;\n", "SELECT a FROM t"),
    ],
)
def test_check_select_accepts(query: str, expected: str | None) -> None:
    assert check_select(query) == (query if expected is None else expected)


# --------------------------------------------------------------------------------------------
# check_select: what is rejected
# --------------------------------------------------------------------------------------------

MULTIPLE = "more than one statement"
NOT_SELECT = "only a SELECT statement is allowed"
INTO = "SELECT ... INTO"
LOCK = "locking reads"
ASSIGN = "assigning a user variable"
EXECUTABLE = "executable comment"
UNPARSABLE = "cannot be parsed"


def function(name: str) -> str:
    return f"function {name}() is not allowed"


REJECTED_SELECTS = [
    # empty
    ("", "the query is empty"),
    ("   \n\t", "the query is empty"),
    (";", "the query is empty"),
    ("-- only a comment", "the query is empty"),
    ("/* only a comment */", "the query is empty"),
    # more than one statement
    ("SELECT 1; DELETE FROM t", MULTIPLE),
    ("SELECT 1 /* x */; DROP TABLE t", MULTIPLE),
    ("SELECT 1;;", MULTIPLE),
    ("SELECT 1; SELECT 2", MULTIPLE),
    ("SELECT 1 -- c\n; DELETE FROM t", MULTIPLE),
    ("SELECT 1; -- trailing comment after the semicolon", MULTIPLE),
    ("SELECT 'a'; UPDATE t SET a = 1; -- '", MULTIPLE),
    # not a SELECT
    ("-- comment\nDELETE FROM t", NOT_SELECT),
    ("/* c */ DELETE FROM t", NOT_SELECT),
    ("DELETE FROM t", NOT_SELECT),
    ("UPDATE t SET a = 1", NOT_SELECT),
    ("INSERT INTO t VALUES (1)", NOT_SELECT),
    ("REPLACE INTO t VALUES (1)", NOT_SELECT),
    ("CALL p()", NOT_SELECT),
    ("SET @a = 1", NOT_SELECT),
    ("SET GLOBAL read_only = 0", NOT_SELECT),
    ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", NOT_SELECT),
    ("DO SLEEP(10)", NOT_SELECT),
    ("HANDLER t OPEN", NOT_SELECT),
    ("CREATE TABLE t (a INT)", NOT_SELECT),
    ("DROP TABLE t", NOT_SELECT),
    ("ALTER TABLE t ADD b INT", NOT_SELECT),
    ("TRUNCATE TABLE t", NOT_SELECT),
    ("GRANT ALL ON *.* TO 'u'@'%%'", NOT_SELECT),
    ("SHOW TABLES", NOT_SELECT),
    ("EXPLAIN SELECT 1", NOT_SELECT),
    ("DESCRIBE t", NOT_SELECT),
    ("TABLE t", NOT_SELECT),
    ("VALUES ROW(1)", NOT_SELECT),
    ("LOCK TABLES t READ", NOT_SELECT),
    ("START TRANSACTION", NOT_SELECT),
    ("`SELECT` 1", NOT_SELECT),
    ("WITH c AS (SELECT 1) DELETE FROM t", "this is a DELETE statement"),
    ("WITH c AS (SELECT 1) UPDATE t SET a = 1", "this is a UPDATE statement"),
    # writing results somewhere
    ("SELECT a INTO OUTFILE '/tmp/x' FROM t", INTO),
    ("SELECT a FROM t INTO OUTFILE '/tmp/x'", INTO),
    ("SELECT a FROM t INTO DUMPFILE '/tmp/x'", INTO),
    ("SELECT a INTO @v FROM t", INTO),
    ("SELECT a FROM t INTO @v", INTO),
    ("SELECT 1 UNION SELECT a INTO @v FROM t", INTO),
    ("SELECT a FROM t into outfile '/tmp/x'", INTO),
    # locks
    ("SELECT a FROM t FOR UPDATE", LOCK),
    ("SELECT a FROM t FOR UPDATE NOWAIT", LOCK),
    ("SELECT a FROM t FOR UPDATE OF t SKIP LOCKED", LOCK),
    ("SELECT a FROM t LOCK IN SHARE MODE", LOCK),
    ("SELECT a FROM t FOR SHARE", LOCK),
    ("SELECT a FROM t for  /* x */ update", LOCK),
    ("SELECT a FROM t WHERE b = (SELECT b FROM u LIMIT 1 FOR UPDATE)", LOCK),
    ("SELECT 1 UNION SELECT 2 FOR UPDATE", LOCK),
    # dangerous functions
    ("SELECT LOAD_FILE('/etc/passwd')", function("LOAD_FILE")),
    ("SELECT SLEEP(10)", function("SLEEP")),
    ("SELECT sleep (10)", function("SLEEP")),
    ("SELECT sleep/**/(10)", function("SLEEP")),
    ("SELECT `sleep`(10)", function("SLEEP")),
    ("SELECT a FROM t WHERE a = 1 AND SLEEP(10) = 0", function("SLEEP")),
    ("SELECT a FROM t ORDER BY (SELECT SLEEP(1))", function("SLEEP")),
    ("SELECT BENCHMARK(100000000, MD5('a'))", function("BENCHMARK")),
    ("SELECT GET_LOCK('a', 10)", function("GET_LOCK")),
    ("SELECT RELEASE_LOCK('a')", function("RELEASE_LOCK")),
    ("SELECT RELEASE_ALL_LOCKS()", function("RELEASE_ALL_LOCKS")),
    ("SELECT IS_FREE_LOCK('a')", function("IS_FREE_LOCK")),
    ("SELECT IS_USED_LOCK('a')", function("IS_USED_LOCK")),
    ("SELECT MASTER_POS_WAIT('bin.000001', 4)", function("MASTER_POS_WAIT")),
    ("SELECT SOURCE_POS_WAIT('bin.000001', 4)", function("SOURCE_POS_WAIT")),
    ("SELECT WAIT_FOR_EXECUTED_GTID_SET('uuid:1-5', 1)", function("WAIT_FOR_EXECUTED_GTID_SET")),
    ("SELECT WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS('uuid:1-5')", function("WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS")),
    ("SELECT sys_exec('rm -rf /')", function("SYS_EXEC")),
    ("SELECT SYS_EVAL('id')", function("SYS_EVAL")),
    ("SELECT sys_anything(1)", function("SYS_ANYTHING")),
    ("SELECT mydb.sleep(1)", function("SLEEP")),
    # Conservative on purpose: to the token check a CTE column list looks like a call.
    ("WITH sleep (n) AS (SELECT 1) SELECT n FROM sleep", function("SLEEP")),
    # user variable assignment
    ("SELECT @x := 1", ASSIGN),
    ("SELECT a FROM t WHERE (@n := @n + 1) > 0", ASSIGN),
    ("SELECT @`x` := 1", ASSIGN),
    # executable comments
    ("SELECT /*! SLEEP(10) */ 1", EXECUTABLE),
    ("SELECT 1 /*!50000 , SLEEP(10) */", EXECUTABLE),
    ("SELECT 1 /*M!100100 , SLEEP(10) */", EXECUTABLE),
    ("SELECT 1 /*!*/", EXECUTABLE),
    ("SELECT 1 /*m!100100 , SLEEP(10) */", EXECUTABLE),
    ("SELECT 1 FROM t /*!, mysql.user */", EXECUTABLE),
    # lexical traps: places where sqlglot's reading of the text differs from MySQL's
    ("SELECT 1 --(SLEEP(10))", "is not followed by a space"),
    ("SELECT 1--1", "is not followed by a space"),
    ("SELECT 'a\\' /*! , SLEEP(5) */ '", "backslash before a quote"),
    ("SELECT 'it\\'s'", "backslash before a quote"),
    ('SELECT "a\\"b"', "backslash before a quote"),
    ("SELECT 'unterminated", "unterminated string literal"),
    ("SELECT `unterminated", "unterminated quoted identifier"),
    ("SELECT 1 /* unterminated", "unterminated /* comment"),
    ("SELECT 1 /* a /* nested */ , SLEEP(1) /* b */", function("SLEEP")),
    ("SELECT 1\x00; DROP TABLE t", "NUL character"),
    # placeholders (check_select applies check_placeholders)
    ("SELECT a FROM t WHERE b LIKE 'a%'", "must be written %%"),
    ("SELECT a % 7 FROM t", "must be written %%"),
    ("SELECT a FROM t WHERE b = '%s'", "inside a string literal"),
    ("SELECT a FROM t WHERE b = %s AND c = %(c)s", "mixes positional"),
    # what sqlglot cannot parse, or what MySQL would not run
    ("SELECT a FROM t PROCEDURE ANALYSE()", UNPARSABLE),
    ("SELECT FROM WHERE", UNPARSABLE),
    ("SELECT (1", UNPARSABLE),
    ("SELECT", "has no select list"),
    ("SELECT a FROM t WHERE b = ?", "write %s or %(name)s"),
    ("(TABLE t)", NOT_SELECT),
    ("(DELETE FROM t)", UNPARSABLE),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "nested too deeply"),
    ("SELECT 1 " + " " * MAX_QUERY_CHARS, "characters long"),
]


@pytest.mark.parametrize(("query", "expected"), REJECTED_SELECTS)
def test_check_select_rejects(query: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_select(query)
    assert expected in str(caught.value)


def test_check_select_unparsable_message_is_the_parsers_first_line() -> None:
    with pytest.raises(ConfigError) as caught:
        check_select("SELECT a FROM t PROCEDURE ANALYSE()")
    message = str(caught.value)
    assert "\n" not in message
    assert "Invalid expression / Unexpected token. Line 1, Col:" in message


def test_check_select_rejects_non_strings() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        check_select(None)  # type: ignore[arg-type]


def test_check_select_names_the_statement_it_refuses() -> None:
    with pytest.raises(ConfigError, match="starts with 'DELETE'"):
        check_select("-- harmless\nDELETE FROM t")


def test_sqlglot_is_imported_only_when_a_query_is_checked() -> None:
    # Every DAG parse imports the package; sqlglot costs ~0.1 s and parsing from a snapshot checks nothing.
    code = (
        "import sys\n"
        "import report_pipeline.config, report_pipeline.validation as v\n"
        "assert 'sqlglot' not in sys.modules\n"
        "v.quote_identifier('a'); v.parse_insert_target('REPLACE INTO t (a) VALUES'); v.count_placeholders('%s')\n"
        "assert 'sqlglot' not in sys.modules\n"
        "v.check_select('SELECT 1')\n"
        "assert 'sqlglot' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# The two layers on their own: each must catch the hostile cases without the other
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT a FROM t FOR UPDATE", LOCK),
        ("SELECT a FROM t LOCK IN SHARE MODE", LOCK),
        ("SELECT a FROM t FOR SHARE", LOCK),
        ("(SELECT a FROM t FOR UPDATE) UNION SELECT 2", LOCK),
        ("SELECT a FROM t WHERE b = (SELECT b FROM u FOR UPDATE)", LOCK),
        ("SELECT a INTO @v FROM t", INTO),
        ("SELECT SLEEP(1)", function("SLEEP")),
        ("SELECT `sleep`(1)", function("SLEEP")),
        ("SELECT mydb.sleep(1)", function("SLEEP")),
        ("SELECT LOAD_FILE('/etc/passwd')", function("LOAD_FILE")),
        ("SELECT sys_eval('id')", function("SYS_EVAL")),
        ("SELECT a FROM t WHERE (@x := 1) > 0", ASSIGN),
        ("WITH c AS (SELECT 1) DELETE FROM t", "DELETE statement"),
        ("DELETE FROM t", "DELETE statement"),
        ("UPDATE t SET a = 1", "UPDATE statement"),
        ("SET @a = 1", "SET statement"),
        ("SHOW TABLES", "SHOW statement"),
        ("EXPLAIN SELECT 1", "DESCRIBE statement"),
        ("CALL p()", "COMMAND statement"),
        ("TRUNCATE TABLE t", "TRUNCATETABLE statement"),
        ("VALUES ROW(1)", "VALUES statement"),
        ("TABLE t", "ALIAS statement"),
        ("SELECT", "has no select list"),
    ],
)
def test_tree_checks_alone(query: str, expected: str) -> None:
    tree = sqlglot.parse_one(query, dialect="mysql")
    with pytest.raises(ConfigError) as caught:
        select._check_tree(tree)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT a FROM t INTO OUTFILE '/tmp/x'", INTO),
        ("SELECT a FROM t FOR UPDATE", LOCK),
        ("SELECT a FROM t FOR SHARE", LOCK),
        ("SELECT a FROM t LOCK /* */ IN SHARE MODE", LOCK),
        ("SELECT SLEEP (1)", function("SLEEP")),
        ("SELECT `Sleep`(1)", function("SLEEP")),
        ("SELECT sys_exec('x')", function("SYS_EXEC")),
        ("SELECT @x:=1", ASSIGN),
    ],
)
def test_token_checks_alone(query: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        select._check_tokens(read_tokens(query, lex(query)))
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'INTO', 'SLEEP(1)', 'FOR UPDATE', ':=' FROM t",
        "SELECT `into`, `for` FROM t",
        "SELECT a FROM t /* INTO OUTFILE SLEEP( */",
        "SELECT @x : = 1",  # not an assignment to MySQL either: ':=' is one token
        "SELECT sleep_minutes FROM t",
    ],
)
def test_token_checks_ignore_data_and_comments(query: str) -> None:
    select._check_tokens(read_tokens(query, lex(query)))


# These pin down how sqlglot 29 reads the hostile cases, so an upgrade that changes it fails here
# (and the matching checks can be revisited) instead of silently letting something through.


def test_sqlglot_fails_to_parse_into_outfile() -> None:
    with pytest.raises(ParseError):
        sqlglot.parse_one("SELECT a FROM t INTO OUTFILE '/tmp/x'", dialect="mysql")


def test_sqlglot_reads_into_variable_as_into_node() -> None:
    tree = sqlglot.parse_one("SELECT a INTO @v FROM t", dialect="mysql")
    assert isinstance(tree.args.get("into"), exp.Into)


@pytest.mark.parametrize("clause", ["FOR UPDATE", "FOR SHARE", "LOCK IN SHARE MODE"])
def test_sqlglot_reads_locking_clauses_as_lock_nodes(clause: str) -> None:
    tree = sqlglot.parse_one(f"SELECT a FROM t {clause}", dialect="mysql")
    assert tree.find(exp.Lock) is not None


def test_sqlglot_falls_back_to_command_for_call() -> None:
    assert isinstance(sqlglot.parse_one("CALL p()", dialect="mysql"), exp.Command)


def test_sqlglot_keeps_executable_comments_as_comments() -> None:
    tree = sqlglot.parse_one("SELECT /*! SLEEP(1) */ 1", dialect="mysql")
    assert tree.find(exp.Anonymous) is None


def test_sqlglot_reads_double_dash_without_space_as_comment() -> None:
    # MySQL reads "1--1" as 1 - (-1): this is why check_select refuses '--' without a space.
    tree = sqlglot.parse_one("SELECT 1--(SLEEP(1))", dialect="mysql")
    assert tree.find(exp.Anonymous) is None


def test_sqlglot_reads_table_statement_as_an_alias() -> None:
    assert isinstance(sqlglot.parse_one("TABLE t", dialect="mysql"), exp.Alias)


def test_sqlglot_reads_unknown_functions_as_anonymous() -> None:
    tree = sqlglot.parse_one("SELECT SLEEP(1), LOAD_FILE('x'), GET_LOCK('a', 1)", dialect="mysql")
    assert [f.name for f in tree.find_all(exp.Anonymous)] == ["SLEEP", "LOAD_FILE", "GET_LOCK"]


def test_sqlglot_cannot_parse_driver_placeholders() -> None:
    with pytest.raises(ParseError):
        sqlglot.parse_one("SELECT a FROM t WHERE b = %s", dialect="mysql")


# --------------------------------------------------------------------------------------------
# Fuzzing: hostile text may only ever produce ConfigError, never another exception
# --------------------------------------------------------------------------------------------


@given(SQLISH | st.text(max_size=60))
@settings(max_examples=400, deadline=None)
def test_check_select_only_raises_config_error(query: str) -> None:
    try:
        result = check_select(query)
    except ConfigError:
        return
    # Accepted text is the input, shortened at the end (plus a newline after a final line comment).
    assert query.startswith(result) or (result.endswith("\n") and query.startswith(result[:-1]))
