"""The typed config model, built by one function from admin rows.

Nothing outside the config model (this module, ``tablespec`` for a ``tables`` row and ``rowvalues`` for a
column's value) sees a raw admin row: ``build_plan`` turns the four admin tables into a
``Plan`` of companies and table specs, and records every problem with the row it came from instead of
raising, so one bad row fails only its own task.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from report_pipeline import validation
from report_pipeline.errors import ConfigError
from report_pipeline.rowvalues import MAX_LOOKBACK_DAYS, Row, as_flag, as_int, as_text
from report_pipeline.settings import Settings
from report_pipeline.tablespec import (
    DEFAULT_CHUNK_ROWS,
    DELETE_DETECTIONS,
    TableSpec,
    binds_company,
    build_table,
    table_label,
)
from report_pipeline.taskids import group_id

# The table spec lives in tablespec.py; its names are the config model's too, and callers import them from here.
__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DELETE_DETECTIONS",
    "LOOKBACK_CONFIGURATION",
    "MAX_LOOKBACK_DAYS",
    "AdminRows",
    "BrokenCompany",
    "BrokenTable",
    "Company",
    "CompanyPlan",
    "Plan",
    "Problem",
    "TableSpec",
    "binds_company",
    "build_plan",
    "build_table",
    "table_label",
]

LOOKBACK_CONFIGURATION = "date Y-M-D"


@dataclass(frozen=True)
class AdminRows:
    """The admin database's four tables as fetched, one mapping per row."""

    companies: Sequence[Row]
    tables: Sequence[Row]
    configurations: Sequence[Row] = ()
    companies_configurations: Sequence[Row] = ()


@dataclass(frozen=True)
class Company:
    """An active company: the seed's ``companies`` row plus what was resolved for it."""

    id: int
    company_id: int | None
    status: int
    alias: str
    bucket: str
    schema: str
    lookback_days: int
    lookback_source: str
    # companies.publish_together: the swap tables of a run go live together, in one RENAME (publication.py);
    # companies.publish_partial: when one of them failed, publish the others instead of none.
    publish_together: bool = False
    publish_partial: bool = False

    def legacy_row(self) -> tuple[Any, ...]:
        """The row the seed's ``company[i]`` references index: (id, company_id, status, alias)."""
        return (self.id, self.company_id, self.status, self.alias)


@dataclass(frozen=True)
class Problem:
    """A row that cannot be used, with the message users see on its failing task."""

    table: str
    row_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.table} row id={self.row_id}" if self.row_id is not None else self.table
        return f"admin {where}: {self.message}"


@dataclass(frozen=True)
class BrokenTable:
    """A table spec of an active company that failed validation; rendered as a failing task."""

    name: str
    problem: Problem


@dataclass(frozen=True)
class CompanyPlan:
    """One active company with its usable and broken table specs (stable order: by row id)."""

    company: Company
    tables: tuple[TableSpec, ...] = ()
    broken: tuple[BrokenTable, ...] = ()


@dataclass(frozen=True)
class BrokenCompany:
    """An active company row that failed validation; rendered as a group with one failing task."""

    key: str
    problem: Problem


@dataclass(frozen=True)
class Plan:
    """Everything the DAG generates: active companies x active tables, plus what is broken."""

    companies: tuple[CompanyPlan, ...] = ()
    broken_companies: tuple[BrokenCompany, ...] = ()
    inactive_companies: int = 0
    inactive_tables: int = 0
    built_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def problems(self) -> list[Problem]:
        """Every problem in the plan, companies first, in row order."""
        found = [b.problem for b in self.broken_companies]
        for company_plan in self.companies:
            found.extend(b.problem for b in company_plan.broken)
        return found

    def company(self, alias: str) -> CompanyPlan:
        """The plan of one company by alias; ConfigError if it is not an active, valid company."""
        for company_plan in self.companies:
            if company_plan.company.alias == alias:
                return company_plan
        raise ConfigError(f"no active, valid company with alias {alias!r}")


def _lookbacks(rows: AdminRows) -> dict[int, str]:
    """Map company_id -> raw look-back value from the seed's configuration tables."""
    config_ids = {
        r["id"] for r in rows.configurations if (as_text(r.get("name")) or "").strip() == LOOKBACK_CONFIGURATION
    }
    found: dict[int, str] = {}
    for r in sorted(rows.companies_configurations, key=lambda r: r.get("id") or 0):
        if r.get("configuration_id") in config_ids and r.get("retail_id") is not None:
            found[r["retail_id"]] = as_text(r.get("configuration_value")) or ""
    return found


def _build_company(row: Row, settings: Settings, lookbacks: Mapping[int, str]) -> Company:
    alias = validation.check_alias(as_text(row.get("alias")) or "")
    company_id = row.get("company_id")
    raw = lookbacks.get(company_id) if company_id is not None else None
    if raw is None:
        days, source = settings.default_lookback_days, "default"
    else:
        days = as_int(raw, f"configuration {LOOKBACK_CONFIGURATION!r} for company_id={company_id}")
        if days < 0:
            raise ConfigError(f"configuration {LOOKBACK_CONFIGURATION!r} is {days}; days must be >= 0")
        if days > MAX_LOOKBACK_DAYS:
            raise ConfigError(
                f"configuration {LOOKBACK_CONFIGURATION!r} is {days}; days must be at most {MAX_LOOKBACK_DAYS}"
            )
        source = "configuration"
    return Company(
        id=as_int(row.get("id"), "companies.id"),
        company_id=company_id,
        status=as_int(row.get("status"), "companies.status"),
        alias=alias,
        bucket=validation.bucket_name(settings.bucket_template, alias),
        schema=validation.schema_name(settings.schema_template, alias),
        lookback_days=days,
        lookback_source=source,
        publish_together=as_flag(row.get("publish_together"), "publish_together"),
        publish_partial=as_flag(row.get("publish_partial"), "publish_partial"),
    )


def _table_label(row: Row) -> str:
    """A task-id-safe label for a table row, even when its name is unusable."""
    name = as_text(row.get("name")) or ""
    try:
        return validation.check_identifier(name, "table name")
    except ConfigError:
        return f"table_{row.get('id')}"


def build_plan(rows: AdminRows, settings: Settings) -> Plan:
    """Build the whole plan from admin rows: the one place raw rows become typed config.

    Problems never raise: each becomes a BrokenCompany or BrokenTable naming its row, so every
    other company and table is still generated.
    """
    lookbacks = _lookbacks(rows)
    active_tables = sorted((r for r in rows.tables if r.get("status") == 1), key=lambda r: r.get("id") or 0)
    specs: list[TableSpec | BrokenTable] = []
    seen_names: set[str] = set()
    writers: dict[str, int] = {}
    for row in active_tables:
        try:
            spec = build_table(row)
            if spec.name in seen_names:
                raise ConfigError(f"another active table row already uses the name {spec.name!r}")
            target = spec.target.table.lower()
            if target in writers:
                # Two writers of one target table would overwrite each other's rows in every company.
                raise ConfigError(
                    f"tables row id={writers[target]} already loads target table {spec.target.table!r}; "
                    "one target table has one active admin row: deactivate or retarget one of them"
                )
            writers[target] = spec.id
            seen_names.add(spec.name)
            specs.append(spec)
        except ConfigError as exc:
            label = _table_label(row)
            if label in seen_names:
                label = f"table_{row.get('id')}"
            seen_names.add(label)
            specs.append(BrokenTable(label, Problem("tables", row.get("id"), str(exc))))

    companies: list[CompanyPlan] = []
    broken: list[BrokenCompany] = []
    claimed: dict[str, str] = {}
    active = sorted((r for r in rows.companies if r.get("status") == 1), key=lambda r: r.get("id") or 0)
    for row in active:
        try:
            company = _build_company(row, settings, lookbacks)
            for resource, value in (("bucket", company.bucket), ("schema", company.schema)):
                other = claimed.get(f"{resource}:{value}")
                if other is not None:
                    raise ConfigError(f"{resource} {value!r} is already used by company {other!r}")
            claimed[f"bucket:{company.bucket}"] = claimed[f"schema:{company.schema}"] = company.alias
        except ConfigError as exc:
            broken.append(BrokenCompany(group_id(str(row.get("id"))), Problem("companies", row.get("id"), str(exc))))
            continue
        good = tuple(s for s in specs if isinstance(s, TableSpec))
        bad = tuple(s for s in specs if isinstance(s, BrokenTable))
        companies.append(CompanyPlan(company, good, bad))
    return Plan(
        companies=tuple(companies),
        broken_companies=tuple(broken),
        inactive_companies=len(rows.companies) - len(active),
        inactive_tables=len(rows.tables) - len(active_tables),
    )
