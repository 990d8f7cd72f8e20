"""Onboarding's statements on a MySQL target: a company's schema, and its report tables shaped like the source's."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from report_pipeline.validation import quote_identifier

_FOREIGN_KEY = re.compile(r",\s*CONSTRAINT\s+`[^`]+`\s+FOREIGN KEY[^\n]*", re.IGNORECASE)
_TABLE_NAME = re.compile(r"^CREATE TABLE `[^`]+`", re.IGNORECASE)


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def create_schema(cursor: Any, schema: str) -> None:
    """Create the schema (utf8mb4)."""
    cursor.execute(f"CREATE DATABASE {quote_identifier(schema)} CHARACTER SET utf8mb4")


def create_table_from(cursor: Any, source: Any, schema: str, table: str, keep: Sequence[str]) -> None:
    """Create ``schema.table`` as the source's table of that name, kept to the ``keep`` columns.

    Foreign keys are dropped: the target holds one table of a graph, loaded on its own.
    """
    source_cursor = source.cursor()
    source_cursor.execute(f"SHOW CREATE TABLE {quote_identifier(table)}")
    ddl = _FOREIGN_KEY.sub("", str(source_cursor.fetchone()[1]))
    ddl = _TABLE_NAME.sub(f"CREATE TABLE {_name(schema, table)}", ddl, count=1)
    cursor.execute(ddl)
    wanted = {c.lower() for c in keep}
    extra = [c for c in source_columns(source, table) if c.lower() not in wanted]
    if extra:
        drops = ", ".join(f"DROP COLUMN {quote_identifier(c)}" for c in extra)
        cursor.execute(f"ALTER TABLE {_name(schema, table)} {drops}")


def source_columns(conn: Any, table: str) -> list[str]:
    """The columns of a table in the connection's default schema, in table order (empty: no such table)."""
    cursor = conn.cursor()
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [str(r[0]) for r in cursor.fetchall()]
