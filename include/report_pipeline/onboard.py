"""Onboarding a company (the seed's planned "script to auto-create the information, only setting a
customer"): admin rows, look-back configuration, bucket, target schema and missing target tables.

Every step first looks at what exists, so running it again changes nothing; ``dry_run`` only reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline import admin as admin_rows
from report_pipeline import ownership, validation
from report_pipeline.config import LOOKBACK_CONFIGURATION, TableSpec
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket
from report_pipeline.target.mysql import MySqlTarget
from report_pipeline.target.mysql_onboard import source_columns


@dataclass(frozen=True)
class Step:
    """One thing onboarding checked: what, and whether it had to be done."""

    what: str
    action: str  # "exists", "created", "would create", or CANNOT + the reason


CANNOT = "cannot create"


def _done(dry_run: bool) -> str:
    return "would create" if dry_run else "created"


def _admin_rows(cursor: Any, company_id: int, alias: str, lookback_days: int | None, dry_run: bool) -> list[Step]:
    steps: list[Step] = []
    cursor.execute("SELECT id, company_id, status FROM companies WHERE alias = %s", (alias,))
    row = cursor.fetchone()
    if row is not None and row[1] != company_id:
        raise ConfigError(f"alias {alias!r} already belongs to company_id={row[1]} (companies row id={row[0]})")
    if row is None:
        if not dry_run:
            admin_rows.add_company(cursor, company_id, alias)
        steps.append(Step(f"admin companies row {alias!r} (company_id={company_id})", _done(dry_run)))
    else:
        steps.append(Step(f"admin companies row {alias!r} (id={row[0]}, status={row[2]})", "exists"))
    if lookback_days is None:
        return steps
    what = f"configuration {LOOKBACK_CONFIGURATION!r} = {lookback_days} for company_id={company_id}"
    stored = admin_rows.stored_lookback(cursor, company_id)
    if stored is None:
        if not dry_run:
            admin_rows.set_lookback(cursor, company_id, lookback_days)
        steps.append(Step(what, _done(dry_run)))
    else:
        steps.append(Step(f"{what} (stored: {stored})", "exists"))
    return steps


def _refuse_foreign_bucket(s3: Any, settings: Settings, name: str, owner_is_caller: bool) -> None:
    """RefusedError when a bucket of this name exists and belongs to another account."""
    from botocore.exceptions import ClientError

    bucket = Bucket(s3, name, expected_owner=settings.s3_expected_owner, owner_is_caller=owner_is_caller)
    try:
        with bucket._owned():
            s3.head_bucket(Bucket=name, **bucket._owner())
    except ClientError:
        return  # missing (created later, in our account) or not ours to look at: _bucket tells
    bucket.check_owner()


def _bucket(s3: Any, settings: Settings, name: str, dry_run: bool) -> list[Step]:
    """The company's bucket (owned by ``REPORTS_S3_EXPECTED_OWNER`` when set) and its expiry rule."""
    from botocore.exceptions import ClientError

    bucket = Bucket(s3, name, settings.sse, settings.sse_kms_key_id, settings.s3_expected_owner)
    owner = f" (owner {settings.s3_expected_owner})" if settings.s3_expected_owner else ""
    try:
        # Through Bucket, so a bucket of this name in another account fails here, naming the owner.
        with bucket._owned():
            s3.head_bucket(Bucket=name, **bucket._owner())
        steps = [Step(f"bucket s3://{name}{owner}", "exists")]
    except ClientError:
        if not dry_run:
            bucket.ensure()
        steps = [Step(f"bucket s3://{name}{owner}", _done(dry_run))]
    days = settings.s3_expire_days
    if days:
        what = f"lifecycle rule on s3://{name}: date folders expire after {days} days"
        current = None if dry_run and steps[0].action != "exists" else bucket.expiry_days()
        if current == days:
            steps.append(Step(what, "exists"))
        else:
            if not dry_run:
                bucket.expire_after(days)
            steps.append(Step(what + (f" (was {current})" if current else ""), _done(dry_run)))
    return steps


def _target_tables(
    target: MySqlTarget, source: Any, schema: str, tables: Sequence[TableSpec], dry_run: bool
) -> list[Step]:
    steps: list[Step] = []
    for spec in tables:
        table = spec.target.table
        if target.columns(schema, table):
            steps.append(Step(f"target table {schema}.{table}", "exists"))
            continue
        if not source_columns(source, table):
            # The definition is copied from the source table of the same name; without one, say so
            # (for this table only) instead of failing the whole onboarding halfway.
            steps.append(Step(f"target table {schema}.{table}", f"{CANNOT}: the source has no table {table!r} to copy"))
            continue
        if not dry_run:
            target.create_table_from(source, schema, table, spec.target.columns)
        steps.append(Step(f"target table {schema}.{table} (from source {table})", _done(dry_run)))
    return steps


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
    adopt_schema: bool = False,
    protected_schemas: Mapping[str, str] | None = None,
    owner_is_caller: bool = False,
) -> list[Step]:
    """Create what company ``alias`` needs; returns each step and whether it was done or existed.

    ``admin``, ``source`` and ``target`` are mysqlclient connections, ``s3`` a boto3 client.
    ``owner_is_caller``: ``s3`` authenticates as REPORTS_S3_EXPECTED_OWNER's account, so a bucket its
    ListBuckets does not list is another account's and refused, before anything is written.
    """
    alias = validation.check_alias(alias)
    schema = validation.schema_name(settings.schema_template, alias)
    # Checked before anything is written: a company whose schema would be somebody else's is not created.
    foreign = ownership.foreign_schema_problem(schema, protected_schemas or {})
    if foreign:
        raise ConfigError(f"company {alias!r}: {foreign}; choose another alias or REPORTS_TARGET_SCHEMA_TEMPLATE")
    tgt = MySqlTarget(target, settings)
    if tgt.schema_exists(schema) and not adopt_schema:
        problem = ownership.adoption_problem(schema, tgt.tables(schema), [t.target.table for t in tables])
        if problem:
            raise ConfigError(f"company {alias!r}: {problem}")
    bucket_name = validation.bucket_name(settings.bucket_template, alias)
    _refuse_foreign_bucket(s3, settings, bucket_name, owner_is_caller)
    steps = _admin_rows(admin.cursor(), company_id, alias, lookback_days, dry_run)
    if not dry_run:
        admin.commit()
    steps += _bucket(s3, settings, bucket_name, dry_run)
    if tgt.schema_exists(schema):
        steps.append(Step(f"target schema {schema}", "exists"))
    else:
        if not dry_run:
            tgt.create_schema(schema)
        steps.append(Step(f"target schema {schema}", _done(dry_run)))
    if not dry_run:
        tgt.ensure_ledger(schema)
        tgt.ensure_as_of(schema)
    steps += _target_tables(tgt, source, schema, tables, dry_run)
    return steps
