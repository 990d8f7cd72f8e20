"""The typed config model, built by one function from admin rows.

Nothing outside this module sees a raw admin row: ``build_plan`` turns the four admin tables into a
``Plan`` of companies and table specs, and records every problem with the row it came from instead of
raising, so one bad row fails only its own task.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from report_pipeline import legacy, validation
from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings
from report_pipeline.taskids import group_id
from report_pipeline.vocabulary import (
    DEFAULT_LOAD_MODE,
    DEFAULT_SCHEMA_EVOLUTION,
    LOAD_MODES,
    RESERVED_TARGET_PREFIX,
    RESERVED_TARGET_TABLES,
    SCHEMA_EVOLUTIONS,
    LoadMode,
    SchemaEvolution,
)

LOOKBACK_CONFIGURATION = "date Y-M-D"
DEFAULT_CHUNK_ROWS = 1_000_000
# About 100 years: more cannot be meant, and a window must stay inside the calendar (year >= 1).
MAX_LOOKBACK_DAYS = 36_600

# ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits, which int() rejects
# or misreads, and at most 18 of them, so a huge value is an error rather than an enormous number.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")

Row = Mapping[str, Any]


def table_label(company: str | None, table: str, row_id: int | None = None) -> str:
    """How every message names a table: ``company 'acme' table 'orders' (tables row id=2)``, leaving out
    what the caller does not know (the company alias, the admin ``tables`` row)."""
    label = f"table {table!r}" if company is None else f"company {company!r} table {table!r}"
    return label if row_id is None else f"{label} (tables row id={row_id})"


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
class TableSpec:
    """An active table spec, validated: safe to run as written."""

    id: int
    name: str
    query_select: str
    references: tuple[legacy.Reference, ...]
    named_parameters: tuple[str, ...]
    target: validation.InsertTarget
    load_mode: LoadMode = DEFAULT_LOAD_MODE
    chunk_column: str | None = None
    chunk_rows: int | None = None
    # Opt-in for a query that does not bind the company (a table that is the same for every company).
    all_companies: bool = False
    # Swap guard: a swap may empty a non-empty table only when allowed, and may shrink it by at most
    # this percentage (None: the deployment's default, Settings.swap_max_shrink_percent).
    allow_empty_swap: bool = False
    max_shrink_percent: int | None = None
    # incremental: the result column whose newer values mark changed rows, and how far before the
    # watermark each run re-reads (seconds for a time cursor, units for an integer; None: the default).
    cursor_column: str | None = None
    cursor_overlap: int | None = None
    # Compare source and target (count and checksum, server-side) after each load.
    verify_after_load: bool = False
    # incremental: "keys" also deletes target rows whose key the source no longer returns.
    delete_detection: str = "none"
    # "fail": the target's columns are fixed; "evolve": added columns are added, widened ones widened.
    schema_evolution: SchemaEvolution = DEFAULT_SCHEMA_EVOLUTION
    # Reconcile (compare by key and repair) every N days, as a task after the load; 0: never.
    reconcile_every_days: int = 0

    @property
    def where(self) -> str:
        """How messages name this table without its company: by name and admin row (``table_label``)."""
        return table_label(None, self.name, self.id)

    @property
    def uses_dates(self) -> bool:
        """Whether binding this query needs the company's look-back window."""
        return any(r.kind == "date" for r in self.references) or bool(
            {"date_from", "date_to"} & set(self.named_parameters)
        )


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


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if _WHOLE_NUMBER.fullmatch(text.strip()):
            return int(text.strip())
        shown = repr(text) if len(text) <= 80 else repr(text[:80]) + f"... ({len(text)} characters)"
        raise ConfigError(f"{what} must be a whole number, got {shown}")
    raise ConfigError(f"{what} must be a whole number, got {value!r}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _lookbacks(rows: AdminRows) -> dict[int, str]:
    """Map company_id -> raw look-back value from the seed's configuration tables."""
    config_ids = {
        r["id"] for r in rows.configurations if (_text(r.get("name")) or "").strip() == LOOKBACK_CONFIGURATION
    }
    found: dict[int, str] = {}
    for r in sorted(rows.companies_configurations, key=lambda r: r.get("id") or 0):
        if r.get("configuration_id") in config_ids and r.get("retail_id") is not None:
            found[r["retail_id"]] = _text(r.get("configuration_value")) or ""
    return found


def _build_company(row: Row, settings: Settings, lookbacks: Mapping[int, str]) -> Company:
    alias = validation.check_alias(_text(row.get("alias")) or "")
    company_id = row.get("company_id")
    raw = lookbacks.get(company_id) if company_id is not None else None
    if raw is None:
        days, source = settings.default_lookback_days, "default"
    else:
        days = _as_int(raw, f"configuration {LOOKBACK_CONFIGURATION!r} for company_id={company_id}")
        if days < 0:
            raise ConfigError(f"configuration {LOOKBACK_CONFIGURATION!r} is {days}; days must be >= 0")
        if days > MAX_LOOKBACK_DAYS:
            raise ConfigError(
                f"configuration {LOOKBACK_CONFIGURATION!r} is {days}; days must be at most {MAX_LOOKBACK_DAYS}"
            )
        source = "configuration"
    return Company(
        id=_as_int(row.get("id"), "companies.id"),
        company_id=company_id,
        status=_as_int(row.get("status"), "companies.status"),
        alias=alias,
        bucket=validation.bucket_name(settings.bucket_template, alias),
        schema=validation.schema_name(settings.schema_template, alias),
        lookback_days=days,
        lookback_source=source,
        publish_together=_flag(row.get("publish_together"), "publish_together"),
        publish_partial=_flag(row.get("publish_partial"), "publish_partial"),
    )


def build_table(row: Row) -> TableSpec:
    """Validate one ``tables`` row into a TableSpec; ConfigError says what is wrong with it."""
    name = validation.check_identifier(_text(row.get("name")) or "", "table name")
    query = validation.check_select(_text(row.get("query_select")) or "")
    validation.check_placeholders(query)
    positional, named = validation.count_placeholders(query)
    references = legacy.parse_params_select(_text(row.get("params_select")))
    if named:
        unknown = sorted(named - legacy.NAMED_PARAMETERS)
        if unknown:
            raise ConfigError(
                f"query_select uses unknown named placeholder(s) {unknown}; known: {sorted(legacy.NAMED_PARAMETERS)}"
            )
        if references:
            raise ConfigError("query_select uses named placeholders, so params_select must be empty")
    elif positional != len(references):
        raise ConfigError(
            f"query_select has {positional} %s placeholder(s) but params_select lists {len(references)} reference(s)"
        )
    target = validation.parse_insert_target(_text(row.get("query_insert")) or "")
    if target.table.lower() in RESERVED_TARGET_TABLES or target.table.lower().startswith(RESERVED_TARGET_PREFIX):
        raise ConfigError(
            f"query_insert loads into {target.table!r}, a table the pipeline itself keeps in every target schema "
            f"({', '.join(sorted(RESERVED_TARGET_TABLES))}, {RESERVED_TARGET_PREFIX}*); choose another table"
        )
    mode = (_text(row.get("load_mode")) or DEFAULT_LOAD_MODE).strip().lower()
    if mode not in LOAD_MODES:
        raise ConfigError(f"load_mode {mode!r} is not one of {LOAD_MODES}")
    chunk_column = _text(row.get("chunk_column"))
    chunk_rows: int | None = None
    if chunk_column is not None and chunk_column.strip():
        chunk_column = validation.check_identifier(chunk_column.strip(), "chunk column")
        raw_rows = row.get("chunk_rows")
        chunk_rows = DEFAULT_CHUNK_ROWS if raw_rows in (None, 0, "") else _as_int(raw_rows, "chunk_rows")
        if chunk_rows <= 0:
            raise ConfigError(f"chunk_rows must be positive, got {chunk_rows}")
    else:
        chunk_column = None
    all_companies = _flag(row.get("all_companies"), "all_companies")
    if not all_companies and not binds_company(references, named):
        raise ConfigError(
            "query_select never refers to the company (no company[0], company[1] or company[3] in params_select, "
            "no %(company_id)s or %(alias)s), so every company would receive every tenant's rows; bind the company "
            "in the query, or set tables.all_companies = 1 if the table really is the same for every company"
        )
    max_shrink = row.get("max_shrink_percent")
    max_shrink_percent = None if max_shrink is None else _as_int(max_shrink, "max_shrink_percent")
    if max_shrink_percent is not None and not 0 <= max_shrink_percent <= 100:
        raise ConfigError(f"max_shrink_percent must be between 0 and 100, got {max_shrink_percent}")
    cursor_column, cursor_overlap = _cursor(row, mode)
    if cursor_column is not None:
        dates = [i for i, r in enumerate(references) if r.kind == "date"]
        window = validation.window_problem(query, dates, cursor_column)
        if window:
            raise ConfigError(window)
    return TableSpec(
        id=_as_int(row.get("id"), "tables.id"),
        name=name,
        query_select=query,
        references=references,
        named_parameters=tuple(sorted(named)),
        target=target,
        load_mode=mode,  # type: ignore[arg-type]
        chunk_column=chunk_column,
        chunk_rows=chunk_rows,
        all_companies=all_companies,
        allow_empty_swap=_flag(row.get("allow_empty_swap"), "allow_empty_swap"),
        max_shrink_percent=max_shrink_percent,
        cursor_column=cursor_column,
        cursor_overlap=cursor_overlap,
        verify_after_load=_flag(row.get("verify_after_load"), "verify_after_load"),
        delete_detection=_delete_detection(row, mode, references, named),
        schema_evolution=_schema_evolution(row),
        reconcile_every_days=_days(row.get("reconcile_every_days"), "reconcile_every_days"),
    )


def _days(value: Any, what: str) -> int:
    days = 0 if value is None else _as_int(value, what)
    if not 0 <= days <= MAX_LOOKBACK_DAYS:
        raise ConfigError(f"{what} must be between 0 and {MAX_LOOKBACK_DAYS}, got {days}")
    return days


def _schema_evolution(row: Row) -> SchemaEvolution:
    value = (_text(row.get("schema_evolution")) or DEFAULT_SCHEMA_EVOLUTION).strip().lower()
    for known in SCHEMA_EVOLUTIONS:
        if value == known:
            return known
    raise ConfigError(
        f"schema_evolution {value!r} is not one of {SCHEMA_EVOLUTIONS} ('fail': the target's columns stay as they "
        "are; 'evolve': columns the query adds are added to the target, widened types widened)"
    )


def _cursor(row: Row, mode: str) -> tuple[str | None, int | None]:
    """The cursor column and overlap of a row: required by ``incremental``, meaningless otherwise.

    Its type and nullability are the query result's business, checked by ``validate`` and each extract.
    """
    column = (_text(row.get("cursor_column")) or "").strip() or None
    if mode == "incremental" and column is None:
        raise ConfigError("load_mode 'incremental' needs tables.cursor_column (e.g. updated_at, or an increasing id)")
    if mode != "incremental" and column is not None:
        raise ConfigError(
            f"cursor_column {column!r} is set but load_mode is {mode!r}; a cursor is used only by 'incremental'"
        )
    overlap = row.get("cursor_overlap")
    overlap_value = None if overlap is None else _as_int(overlap, "cursor_overlap")
    if overlap_value is not None and overlap_value < 0:
        raise ConfigError(f"cursor_overlap must be >= 0, got {overlap_value}")
    if column is None:
        return None, overlap_value
    return validation.check_identifier(column, "cursor column"), overlap_value


DELETE_DETECTIONS = ("none", "keys")


def _delete_detection(row: Row, mode: str, references: Sequence[legacy.Reference], named: Collection[str]) -> str:
    """``keys`` compares the source's whole key set with the target's: only for incremental tables whose
    query selects the whole table (a date window's keys would make every older row look deleted)."""
    value = (_text(row.get("delete_detection")) or "none").strip().lower()
    if value not in DELETE_DETECTIONS:
        raise ConfigError(f"delete_detection {value!r} is not one of {DELETE_DETECTIONS}")
    if value == "none":
        return value
    if mode != "incremental":
        raise ConfigError(
            f"delete_detection {value!r} needs load_mode 'incremental' (a swap replaces the table anyway)"
        )
    if any(r.kind == "date" for r in references) or {"date_from", "date_to"} & set(named):
        raise ConfigError(
            "delete_detection 'keys' needs a query_select over the whole table; this one binds a date window, so "
            "every row outside it would look deleted"
        )
    return value


def _flag(value: Any, what: str) -> bool:
    if value in (None, "", 0, b"0", "0", b"\x00"):
        return False
    if value in (1, b"1", "1", b"\x01", True):
        return True
    raise ConfigError(f"{what} must be 0 or 1, got {value!r}")


def binds_company(references: Sequence[legacy.Reference], named: Collection[str]) -> bool:
    """Whether a query's parameters name the company: its row id, company_id or alias."""
    return any(r.kind == "company" and r.index in (0, 1, 3) for r in references) or bool(
        {"company_id", "alias"} & set(named)
    )


def _table_label(row: Row) -> str:
    """A task-id-safe label for a table row, even when its name is unusable."""
    name = _text(row.get("name")) or ""
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
