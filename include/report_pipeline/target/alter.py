"""Schema evolution's DDL on a MySQL target: one ALTER TABLE that adds and widens columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from report_pipeline.errors import TransferError
from report_pipeline.evolution import parse_type
from report_pipeline.validation import quote_identifier
from report_pipeline.vocabulary import ColumnChange

# A column line of SHOW CREATE TABLE: its quoted name, its type (with UNSIGNED/ZEROFILL), the rest.
_COLUMN_LINE = re.compile(
    r"^\s*(`(?:[^`]|``)+`)\s+([a-z]+(?:\([^)]*\))?(?:\s+unsigned)?(?:\s+zerofill)?)(.*?),?$", re.IGNORECASE
)
# The rest of a column line as tokens: quoted strings whole (so a COMMENT's text is never read as words).
_TOKEN = re.compile(r"'(?:[^'\\]|\\.|'')*'|\(|\)|[^\s'()]+")
_QUOTED = re.compile(r"('(?:[^'\\]|\\.|'')*')")
_LITERAL = re.compile(r"'.*|[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|0x[0-9a-f]*|b'[01]*'|x'[0-9a-f]*'", re.IGNORECASE | re.DOTALL)
# CURRENT_TIMESTAMP as a default or ON UPDATE; MySQL 8 wants its precision to be the column's (error 1067).
_NOW = re.compile(r"\b((?:DEFAULT|ON\s+UPDATE)\s+)CURRENT_TIMESTAMP(?:\(\d*\))?", re.IGNORECASE)
_TEMPORAL = ("datetime", "timestamp", "time")


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def _column_lines(create_table: str) -> dict[str, re.Match[str]]:
    lines: dict[str, re.Match[str]] = {}
    for text in create_table.splitlines():
        match = _COLUMN_LINE.match(text)
        if match:
            lines[match.group(1)[1:-1].replace("``", "`").lower()] = match
    return lines


def alter_statement(schema: str, table: str, create_table: str, changes: Sequence[ColumnChange]) -> str:
    """The ALTER TABLE making ``changes`` to the table SHOW CREATE TABLE printed as ``create_table``.

    MODIFY restates the whole column, so its line is kept with only the type replaced: NULL-ness,
    default, charset, collation and comment stay as they were. A temporal column's CURRENT_TIMESTAMP
    default / ON UPDATE takes the new precision (MySQL 8 refuses DATETIME(6) DEFAULT CURRENT_TIMESTAMP).
    """
    lines = _column_lines(create_table)
    clauses = []
    for change in changes:
        column = quote_identifier(change.column)
        if change.change == "add":
            clauses.append(f"ADD COLUMN {column} {change.new_type} NULL DEFAULT NULL")
            continue
        line = lines.get(change.column.lower())
        if line is None:
            raise TransferError(f"cannot find column {change.column} in SHOW CREATE TABLE of {schema}.{table}")
        rest = line.group(3)
        new = parse_type(change.new_type)
        if new.family in _TEMPORAL and new.size:
            # Outside quoted strings only: a COMMENT's text stays as it was.
            rest = "".join(
                piece if piece.startswith("'") else _NOW.sub(rf"\g<1>CURRENT_TIMESTAMP({new.size})", piece)
                for piece in _QUOTED.split(rest)
            )
        clauses.append(f"MODIFY COLUMN {column} {change.new_type}{rest}")
    return f"ALTER TABLE {_name(schema, table)} " + ", ".join(clauses)


def alter_columns(cursor: Any, schema: str, table: str, changes: Sequence[ColumnChange]) -> None:
    """One ALTER TABLE (``alter_statement``): ADD COLUMN ... NULL at the end, MODIFY COLUMN keeping the rest.

    One statement is atomic, so a failure leaves the table as it was. Types come from
    ``evolution.result_type`` (checked by ``plan_evolution``) or the server's catalogue.
    """
    if not changes:
        return
    cursor.execute(f"SHOW CREATE TABLE {_name(schema, table)}")
    cursor.execute(alter_statement(schema, table, str(cursor.fetchone()[1]), changes))


def literal_default(rest: str) -> str | None:
    """The literal DEFAULT of a column line's rest (after its type), or None (none, NULL, or an expression)."""
    tokens = _TOKEN.findall(rest)
    for i, token in enumerate(tokens[:-1]):
        if token.upper() == "DEFAULT":
            value = tokens[i + 1]
            return value if _LITERAL.fullmatch(value) else None
    return None


def lob_obstacles(cursor: Any, schema: str, table: str) -> dict[str, str]:
    """Why a column cannot become TEXT/BLOB/JSON in place (lower-cased name -> why), for ``plan_evolution``.

    MySQL 8 refuses a literal DEFAULT on those types (error 1101), and both servers refuse a key on them
    without a prefix length (error 1170): a column with either is not widened into one automatically.
    """
    cursor.execute(f"SHOW CREATE TABLE {_name(schema, table)}")
    obstacles: dict[str, str] = {}
    for name, line in _column_lines(str(cursor.fetchone()[1])).items():
        default = literal_default(line.group(3))
        if default is not None:
            obstacles[name] = f"it has the literal default {default}, which TEXT/BLOB/JSON columns cannot have"
    cursor.execute(
        "SELECT COLUMN_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (schema, table),
    )
    indexed: dict[str, str] = {}
    for column, index in cursor.fetchall():
        if column is not None:  # None: a functional key part (MySQL 8), no column of its own
            name = (column.decode() if isinstance(column, bytes) else str(column)).lower()
            indexed.setdefault(name, index.decode() if isinstance(index, bytes) else str(index))
    for name, index in indexed.items():
        why = f"it is part of index {index}, which a TEXT/BLOB column can only be in with a prefix length"
        obstacles[name] = f"{obstacles[name]}, and {why}" if name in obstacles else why
    return obstacles
