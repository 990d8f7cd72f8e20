"""Onboarding a company (the seed's planned "script to auto-create the information, only setting a
customer"): admin rows, look-back configuration, bucket, target schema and missing target tables.

Every step first looks at what exists, so running it again changes nothing; ``dry_run`` only reports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline import validation as sql  # named sql so this branch only touches this line; rename after merging
from report_pipeline.config import LOOKBACK_CONFIGURATION, TableSpec
from report_pipeline.errors import ConfigError
from report_pipeline.load import REPORT_LOADS_DDL
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket

_FOREIGN_KEY = re.compile(r",\s*CONSTRAINT\s+`[^`]+`\s+FOREIGN KEY[^\n]*", re.IGNORECASE)
_TABLE_NAME = re.compile(r"^CREATE TABLE `[^`]+`", re.IGNORECASE)


@dataclass(frozen=True)
class Step:
    """One thing onboarding checked: what, and whether it had to be done."""

    what: str
    action: str  # "exists", "created", "would create", or CANNOT + the reason


CANNOT = "cannot create"


def _admin_rows(cursor: Any, company_id: int, alias: str, lookback_days: int | None, dry_run: bool) -> list[Step]:
    steps: list[Step] = []
    cursor.execute("SELECT id, company_id, status FROM companies WHERE alias = %s", (alias,))
    row = cursor.fetchone()
    if row is not None and row[1] != company_id:
        raise ConfigError(f"alias {alias!r} already belongs to company_id={row[1]} (companies row id={row[0]})")
    if row is None:
        if not dry_run:
            cursor.execute("INSERT INTO companies (company_id, status, alias) VALUES (%s, 1, %s)", (company_id, alias))
        steps.append(
            Step(f"admin companies row {alias!r} (company_id={company_id})", "would create" if dry_run else "created")
        )
    else:
        steps.append(Step(f"admin companies row {alias!r} (id={row[0]}, status={row[2]})", "exists"))
    if lookback_days is None:
        return steps
    cursor.execute("SELECT id FROM configurations WHERE name = %s", (LOOKBACK_CONFIGURATION,))
    config = cursor.fetchone()
    if config is None:
        if not dry_run:
            cursor.execute("INSERT INTO configurations (name) VALUES (%s)", (LOOKBACK_CONFIGURATION,))
            config = (cursor.lastrowid,)
    what = f"configuration {LOOKBACK_CONFIGURATION!r} = {lookback_days} for company_id={company_id}"
    existing = None
    if config is not None:
        cursor.execute(
            "SELECT configuration_value FROM companies_configurations WHERE retail_id = %s AND configuration_id = %s",
            (company_id, config[0]),
        )
        existing = cursor.fetchone()
    if existing is None:
        if not dry_run:
            cursor.execute(
                "INSERT INTO companies_configurations (retail_id, configuration_id, configuration_value) "
                "VALUES (%s, %s, %s)",
                (company_id, config[0], str(lookback_days)),  # type: ignore[index]
            )
        steps.append(Step(what, "would create" if dry_run else "created"))
    else:
        steps.append(Step(f"{what} (stored: {existing[0]})", "exists"))
    return steps


def _target_table_ddl(source_cursor: Any, spec: TableSpec) -> str:
    """The target table's DDL: the source table of the same name, kept to the columns the load fills."""
    source_cursor.execute(f"SHOW CREATE TABLE {sql.quote_identifier(spec.target.table)}")
    ddl = str(source_cursor.fetchone()[1])
    ddl = _FOREIGN_KEY.sub("", ddl)
    return _TABLE_NAME.sub(f"CREATE TABLE {sql.quote_identifier(spec.target.table)}", ddl, count=1)


def _source_columns(source_cursor: Any, table: str) -> list[str]:
    source_cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [str(r[0]) for r in source_cursor.fetchall()]


def onboard(
    *,
    admin: Any,
    source: Any,
    target: Any,
    s3: Any,
    settings: Settings,
    company_id: int,
    alias: str,
    tables: Sequence[TableSpec],
    lookback_days: int | None = None,
    dry_run: bool = False,
) -> list[Step]:
    """Create what company ``alias`` needs; returns each step and whether it was done or existed."""
    alias = sql.check_alias(alias)
    bucket_name = sql.bucket_name(settings.bucket_template, alias)
    schema = sql.schema_name(settings.schema_template, alias)
    admin_cursor = admin.cursor()
    steps = _admin_rows(admin_cursor, company_id, alias, lookback_days, dry_run)
    if not dry_run:
        admin.commit()

    bucket = Bucket(s3, bucket_name, settings.sse, settings.sse_kms_key_id)
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket_name)
        steps.append(Step(f"bucket s3://{bucket_name}", "exists"))
    except ClientError:
        if not dry_run:
            bucket.ensure()
        steps.append(Step(f"bucket s3://{bucket_name}", "would create" if dry_run else "created"))

    target_cursor = target.cursor()
    target_cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
    schema_exists = target_cursor.fetchone() is not None
    quoted_schema = sql.quote_identifier(schema)
    if not schema_exists:
        if not dry_run:
            target_cursor.execute(f"CREATE DATABASE {quoted_schema} CHARACTER SET utf8mb4")
        steps.append(Step(f"target schema {schema}", "would create" if dry_run else "created"))
    else:
        steps.append(Step(f"target schema {schema}", "exists"))
    if not dry_run:
        target_cursor.execute(REPORT_LOADS_DDL.format(schema=quoted_schema))

    source_cursor = source.cursor()
    for spec in tables:
        table = spec.target.table
        target_cursor.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (schema, table)
        )
        if target_cursor.fetchone() is not None:
            steps.append(Step(f"target table {schema}.{table}", "exists"))
            continue
        if not _source_columns(source_cursor, table):
            # The definition is copied from the source table of the same name; without one, say so
            # (for this table only) instead of failing the whole onboarding halfway.
            steps.append(Step(f"target table {schema}.{table}", f"{CANNOT}: the source has no table {table!r} to copy"))
            continue
        if not dry_run:
            ddl = _target_table_ddl(source_cursor, spec)
            target.select_db(schema)
            target_cursor.execute(ddl)
            keep = {c.lower() for c in spec.target.columns}
            extra = [c for c in _source_columns(source_cursor, table) if c.lower() not in keep]
            if extra:
                drops = ", ".join(f"DROP COLUMN {sql.quote_identifier(c)}" for c in extra)
                target_cursor.execute(f"ALTER TABLE {quoted_schema}.{sql.quote_identifier(table)} {drops}")
        steps.append(
            Step(f"target table {schema}.{table} (from source {table})", "would create" if dry_run else "created")
        )
    target.commit()
    return steps
