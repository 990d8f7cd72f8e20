"""The admin database: creating and upgrading its schema, and reading its rows.

The connection is handed in by the caller (in Airflow: ``MySqlHook(reports_admin_db).get_conn()``).
Reads work on a seed-era schema that was never upgraded: missing added columns take their defaults.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from report_pipeline.config import LOOKBACK_CONFIGURATION, AdminRows

log = logging.getLogger(__name__)

ADMIN_TABLES = ("companies", "tables", "configurations", "companies_configurations")

# Columns this project adds to the seed's `tables`, each with a default so seed rows keep their meaning.
ADDED_COLUMNS = {
    "tables": (
        ("load_mode", "VARCHAR(16) NOT NULL DEFAULT 'upsert'"),
        ("chunk_column", "VARCHAR(64) NULL DEFAULT NULL"),
        ("chunk_rows", "INT UNSIGNED NULL DEFAULT NULL"),
    ),
}

_NO_SUCH_TABLE = 1146


def schema_statements() -> list[str]:
    """The statements of ``sql/admin_schema.sql``, one per entry."""
    text = resources.files("report_pipeline").joinpath("sql/admin_schema.sql").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def init_admin(conn: Any) -> list[str]:
    """Create the admin schema, or upgrade a seed-era one in place; idempotent.

    Returns what was done, one line per change (empty when everything was already there).
    """
    done: list[str] = []
    cursor = conn.cursor()
    cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    existing = {str(r[0]) for r in cursor.fetchall()}
    for statement, table in zip(schema_statements(), ADMIN_TABLES, strict=False):
        if table not in existing:
            cursor.execute(statement)
            done.append(f"created table {table}")
    for table, columns in ADDED_COLUMNS.items():
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        present = {str(r[0]).lower() for r in cursor.fetchall()}
        for name, definition in columns:
            if name not in present:
                cursor.execute(f"ALTER TABLE `{table}` ADD COLUMN `{name}` {definition}")
                done.append(f"added column {table}.{name}")
    cursor.execute("SELECT id FROM configurations WHERE name = %s", (LOOKBACK_CONFIGURATION,))
    if cursor.fetchone() is None:
        cursor.execute("INSERT INTO configurations (name) VALUES (%s)", (LOOKBACK_CONFIGURATION,))
        done.append(f"added configuration {LOOKBACK_CONFIGURATION!r}")
    conn.commit()
    cursor.close()
    return done


def _select_all(cursor: Any, table: str) -> list[dict[str, Any]]:
    try:
        cursor.execute(f"SELECT * FROM `{table}`")
    except Exception as exc:
        # The seed's first version had no configuration tables: read them as empty.
        if (
            table in ("configurations", "companies_configurations")
            and getattr(exc, "args", (None,))[0] == _NO_SUCH_TABLE
        ):
            return []
        raise
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=False)) for row in cursor.fetchall()]


def read_admin_rows(conn: Any) -> AdminRows:
    """Read the four admin tables in one consistent snapshot."""
    cursor = conn.cursor()
    try:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        rows = AdminRows(*(_select_all(cursor, t) for t in ADMIN_TABLES))
        conn.rollback()
        return rows
    finally:
        cursor.close()
