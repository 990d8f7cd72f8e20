"""The admin database: creating and upgrading its schema, and reading its rows.

The connection is handed in by the caller (in Airflow: ``MySqlHook(reports_admin_db).get_conn()``).
Reads work on a seed-era schema that was never upgraded: missing added columns take their defaults.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
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
        ("all_companies", "TINYINT(1) NOT NULL DEFAULT 0"),
        ("allow_empty_swap", "TINYINT(1) NOT NULL DEFAULT 0"),
        ("max_shrink_percent", "TINYINT UNSIGNED NULL DEFAULT NULL"),
        ("cursor_column", "VARCHAR(64) NULL DEFAULT NULL"),
        ("cursor_overlap", "INT UNSIGNED NULL DEFAULT NULL"),
        ("verify_after_load", "TINYINT(1) NOT NULL DEFAULT 0"),
        ("delete_detection", "VARCHAR(8) NOT NULL DEFAULT 'none'"),
        ("schema_evolution", "VARCHAR(8) NOT NULL DEFAULT 'fail'"),
        ("reconcile_every_days", "INT UNSIGNED NOT NULL DEFAULT 0"),
    ),
    "companies": (
        ("publish_together", "TINYINT(1) NOT NULL DEFAULT 0"),
        ("publish_partial", "TINYINT(1) NOT NULL DEFAULT 0"),
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
    if lookback_configuration_id(cursor, create=False) is None:
        lookback_configuration_id(cursor)
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


# --- writing admin rows: the one place with INSERTs and UPDATEs of the admin tables (onboarding, the
# CLI's add-table / enable / disable, demo, scripts).


@dataclass(frozen=True)
class TableRow:
    """A ``tables`` row as written: the seed's columns plus the added, defaulted ones."""

    name: str
    query_select: str
    query_insert: str
    params_select: str = ""
    params_insert: str = ""
    status: int = 1
    load_mode: str = "upsert"
    chunk_column: str | None = None
    chunk_rows: int | None = None
    all_companies: int = 0
    allow_empty_swap: int = 0
    max_shrink_percent: int | None = None
    cursor_column: str | None = None
    cursor_overlap: int | None = None
    verify_after_load: int = 0
    delete_detection: str = "none"
    schema_evolution: str = "fail"
    reconcile_every_days: int = 0
    id: int | None = None


def add_table(cursor: Any, row: TableRow) -> int:
    """Insert a ``tables`` row; returns its id.

    Added columns are written only when they differ from their defaults, so a seed-era admin schema
    that was never upgraded takes rows that need none of them.
    """
    added = {name for name, _ in ADDED_COLUMNS["tables"]}
    defaults = {f.name: f.default for f in fields(TableRow)}
    values = {
        k: v for k, v in asdict(row).items() if not (k == "id" and v is None) and not (k in added and v == defaults[k])
    }
    columns = ", ".join(f"`{name}`" for name in values)
    marks = ", ".join(["%s"] * len(values))
    cursor.execute(f"INSERT INTO `tables` ({columns}) VALUES ({marks})", tuple(values.values()))
    return int(row.id if row.id is not None else cursor.lastrowid)


def add_company(cursor: Any, company_id: int, alias: str, status: int = 1, row_id: int | None = None) -> int:
    """Insert a ``companies`` row; returns its id."""
    if row_id is None:
        cursor.execute(
            "INSERT INTO companies (company_id, status, alias) VALUES (%s, %s, %s)", (company_id, status, alias)
        )
        return int(cursor.lastrowid)
    cursor.execute(
        "INSERT INTO companies (id, company_id, status, alias) VALUES (%s, %s, %s, %s)",
        (row_id, company_id, status, alias),
    )
    return row_id


def lookback_configuration_id(cursor: Any, create: bool = True) -> int | None:
    """The id of the ``date Y-M-D`` configuration, created when missing (unless ``create`` is False)."""
    cursor.execute("SELECT id FROM configurations WHERE name = %s", (LOOKBACK_CONFIGURATION,))
    found = cursor.fetchone()
    if found is not None:
        return int(found[0])
    if not create:
        return None
    cursor.execute("INSERT INTO configurations (name) VALUES (%s)", (LOOKBACK_CONFIGURATION,))
    return int(cursor.lastrowid)


def stored_lookback(cursor: Any, company_id: int) -> str | None:
    """The company's stored ``date Y-M-D`` value, if it has one."""
    config_id = lookback_configuration_id(cursor, create=False)
    if config_id is None:
        return None
    cursor.execute(
        "SELECT configuration_value FROM companies_configurations WHERE retail_id = %s AND configuration_id = %s",
        (company_id, config_id),
    )
    found = cursor.fetchone()
    return None if found is None else str(found[0])


def set_lookback(cursor: Any, company_id: int, days: int) -> None:
    """Store the company's look-back (``companies_configurations.retail_id`` is the company_id)."""
    cursor.execute(
        "INSERT INTO companies_configurations (retail_id, configuration_id, configuration_value) VALUES (%s, %s, %s)",
        (company_id, lookback_configuration_id(cursor), str(days)),
    )


def set_company_status(cursor: Any, alias: str, status: int) -> int:
    """Set a company's ``status`` (1 active, 0 not) by alias; returns the rows changed (0: already so).

    Raises LookupError when no company has that alias, so an operator's typo is not a silent no-op.
    """
    return _set_status(cursor, "companies", "alias", alias, status)


def set_table_status(cursor: Any, name: str, status: int) -> int:
    """Set a table spec's ``status`` (1 active, 0 not) by name; returns the rows changed."""
    return _set_status(cursor, "tables", "name", name, status)


def _set_status(cursor: Any, table: str, column: str, value: str, status: int) -> int:
    if status not in (0, 1):
        raise ValueError(f"status must be 0 or 1, not {status!r}")
    cursor.execute(f"SELECT id FROM `{table}` WHERE `{column}` = %s", (value,))
    if not cursor.fetchall():
        raise LookupError(f"no {table} row with {column} = {value!r}")
    cursor.execute(f"UPDATE `{table}` SET `status` = %s WHERE `{column}` = %s", (status, value))
    return int(cursor.rowcount)
