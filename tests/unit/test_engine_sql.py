"""Engine statements stay behind ``report_pipeline/target/``: no other module spells SQL DDL or DML, or a MySQL
error number (issue 23: ledger, watermarks and the schema log carried InnoDB DDL and error codes).

Read from the source with ast, so what counts is the code's string literals (f-strings' literal pieces too)
and numbers, not comments or docstrings. Supporting another engine then means new modules under target/,
not edits across the package. SELECTs on the source (the extract's own business) are not judged here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from report_pipeline.target import mysql_errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "report_pipeline"

# Where engine statements may be, and why.
ALLOWED = {
    # Each target engine's own modules: the point of this test.
    "include/report_pipeline/target/": "the target engines",
    # Parses and checks the admin rows' user SQL (query_select, query_insert): its keyword lists name statements.
    "include/report_pipeline/validation/": "parses user SQL",
    # The admin database's reader and its own schema (init-admin, onboard's admin rows): not a target.
    "include/report_pipeline/admin.py": "the admin reader",
}

# A literal that starts with a statement (or a piece of one); advice inside a message ("change the column by
# hand (ALTER TABLE ... MODIFY ...)") is text for a person, not a statement the code runs.
STATEMENT = re.compile(
    r"^\s*(CREATE (TEMPORARY )?TABLE|CREATE (DATABASE|SCHEMA|INDEX|VIEW|USER)|ALTER TABLE|"
    r"DROP (TEMPORARY )?TABLE|DROP (DATABASE|SCHEMA|INDEX|VIEW)|RENAME TABLE|TRUNCATE TABLE|"
    r"INSERT (IGNORE )?INTO|REPLACE INTO|UPDATE `?\w+`? SET|DELETE FROM|LOAD DATA|GRANT \w+)\b|ENGINE=InnoDB"
)
# Every number mysql_errors names, wherever it appears; and any number in MySQL's error ranges that code
# compares with, or names like an error, even one mysql_errors does not know yet.
KNOWN = {v for v in vars(mysql_errors).values() if isinstance(v, int)} | {
    n for v in vars(mysql_errors).values() if isinstance(v, frozenset) for n in v
}
ERROR_NAME = re.compile(r"ERR|CODE|NO_SUCH|DUPLICATE|DENIED|LOCK_WAIT|TIMEOUTS|GONE|LOST|UNKNOWN|NO_PROCESS")


def _error_range(value: object) -> bool:
    return type(value) is int and (1040 <= value < 2100 or 3000 <= value < 4200) and value % 100 != 0


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _numbers(node: ast.AST) -> Iterator[ast.Constant]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and _error_range(inner.value):
            yield inner


def engine_findings(source: str) -> list[tuple[int, str]]:
    """(line, what) of each SQL statement literal and MySQL error number in ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, str) and (match := STATEMENT.search(node.value)):
                found.append((node.lineno, f"SQL {match.group(0)!r}"))
            elif type(node.value) is int and node.value in KNOWN:
                found.append((node.lineno, f"MySQL error number {node.value}"))
        elif isinstance(node, ast.Compare):
            found += [(c.lineno, f"MySQL error number {c.value}") for c in _numbers(node) if c.value not in KNOWN]
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and ERROR_NAME.search(t.id.upper()) for t in node.targets
        ):
            found += [(c.lineno, f"MySQL error number {c.value}") for c in _numbers(node.value) if c.value not in KNOWN]
    return sorted(set(found))


def _judged() -> Iterator[Path]:
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "dags").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if not any(relative.startswith(prefix) for prefix in ALLOWED):
            yield path


def test_the_detector_finds_statements_and_error_numbers_and_skips_docstrings_and_plain_numbers():
    planted = '''
"""Writes with INSERT INTO t and ALTER TABLE, as a docstring says."""
DDL = "CREATE TABLE IF NOT EXISTS {t} (id INT) ENGINE=InnoDB"
def f(cursor, exc, schema):
    """Runs REPLACE INTO."""
    cursor.execute(f"DELETE FROM {schema}.t WHERE id = %s", (1,))
    if exc.args[0] in (1146, 1451):
        return 3600 > 1024
_FK_ERROR = 1452
PAGE = 2000
HINT = f"refusing: change it by hand (ALTER TABLE ... MODIFY {PAGE}) or GRANT PROCESS to the user"
'''
    assert engine_findings(planted) == [
        (3, "SQL 'CREATE TABLE'"),
        (6, "SQL 'DELETE FROM'"),
        (7, "MySQL error number 1146"),
        (7, "MySQL error number 1451"),
        (9, "MySQL error number 1452"),
    ]


def test_the_allow_list_is_short_and_every_entry_exists():
    assert len(ALLOWED) <= 3
    assert all((ROOT / prefix).exists() for prefix in ALLOWED)
    judged = {p.relative_to(ROOT).as_posix() for p in _judged()}
    # The modules issue 23 named are judged, and clean.
    names = ("ledger", "watermarks", "schemalog", "asof", "pending", "reconcilelog", "load", "session")
    assert {f"include/report_pipeline/{n}.py" for n in names} <= judged


def test_no_module_outside_target_spells_engine_sql_or_mysql_error_numbers():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _judged()
        for line, what in engine_findings(path.read_text())
    ]
    assert not offenders, (
        "engine statements outside report_pipeline/target/ (move them into the engine's modules there, e.g. "
        "target/mysql_*.py, and error numbers into target/mysql_errors.py):\n" + "\n".join(offenders)
    )
