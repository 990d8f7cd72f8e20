"""Schema evolution's DDL on a MySQL target: one ALTER TABLE that adds and widens columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from report_pipeline.errors import TransferError
from report_pipeline.evolution import ColumnChange
from report_pipeline.validation import quote_identifier

# A column line of SHOW CREATE TABLE: its quoted name, its type (with UNSIGNED/ZEROFILL), the rest.
_COLUMN_LINE = re.compile(
    r"^\s*(`(?:[^`]|``)+`)\s+([a-z]+(?:\([^)]*\))?(?:\s+unsigned)?(?:\s+zerofill)?)(.*?),?$", re.IGNORECASE
)


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def alter_columns(cursor: Any, schema: str, table: str, changes: Sequence[ColumnChange]) -> None:
    """One ALTER TABLE: ADD COLUMN ... NULL at the end, MODIFY COLUMN keeping the rest of the column's definition.

    MODIFY restates the whole column, so its line of SHOW CREATE TABLE is kept with only the type replaced:
    NULL-ness, default, charset, collation and comment stay as they were. One statement is atomic, so a
    failure leaves the table as it was. Types come from ``evolution.result_type`` or the server's catalogue.
    """
    if not changes:
        return
    cursor.execute(f"SHOW CREATE TABLE {_name(schema, table)}")
    lines: dict[str, re.Match[str]] = {}
    for text in str(cursor.fetchone()[1]).splitlines():
        match = _COLUMN_LINE.match(text)
        if match:
            lines[match.group(1)[1:-1].replace("``", "`").lower()] = match
    clauses = []
    for change in changes:
        column = quote_identifier(change.column)
        if change.change == "add":
            clauses.append(f"ADD COLUMN {column} {change.new_type} NULL DEFAULT NULL")
            continue
        line = lines.get(change.column.lower())
        if line is None:
            raise TransferError(f"cannot find column {change.column} in SHOW CREATE TABLE of {schema}.{table}")
        clauses.append(f"MODIFY COLUMN {column} {change.new_type}{line.group(3)}")
    cursor.execute(f"ALTER TABLE {_name(schema, table)} " + ", ".join(clauses))
