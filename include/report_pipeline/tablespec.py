"""A ``tables`` admin row validated into a ``TableSpec``: safe to run as written, or refused with why.

``config.build_plan`` calls ``build_table`` for every active row; ``admin_commands`` calls it before it
writes a row, so a row the DAG would refuse is never written.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from report_pipeline import legacy, validation
from report_pipeline.errors import ConfigError
from report_pipeline.rowvalues import Row, as_days, as_flag, as_int, as_text
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

DEFAULT_CHUNK_ROWS = 1_000_000


def table_label(company: str | None, table: str, row_id: int | None = None) -> str:
    """How every message names a table: ``company 'acme' table 'orders' (tables row id=2)``, leaving out
    what the caller does not know (the company alias, the admin ``tables`` row)."""
    label = f"table {table!r}" if company is None else f"company {company!r} table {table!r}"
    return label if row_id is None else f"{label} (tables row id={row_id})"


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


def build_table(row: Row) -> TableSpec:
    """Validate one ``tables`` row into a TableSpec; ConfigError says what is wrong with it."""
    name = validation.check_identifier(as_text(row.get("name")) or "", "table name")
    query = validation.check_select(as_text(row.get("query_select")) or "")
    validation.check_placeholders(query)
    positional, named = validation.count_placeholders(query)
    references = legacy.parse_params_select(as_text(row.get("params_select")))
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
    target = validation.parse_insert_target(as_text(row.get("query_insert")) or "")
    if target.table.lower() in RESERVED_TARGET_TABLES or target.table.lower().startswith(RESERVED_TARGET_PREFIX):
        raise ConfigError(
            f"query_insert loads into {target.table!r}, a table the pipeline itself keeps in every target schema "
            f"({', '.join(sorted(RESERVED_TARGET_TABLES))}, {RESERVED_TARGET_PREFIX}*); choose another table"
        )
    mode = (as_text(row.get("load_mode")) or DEFAULT_LOAD_MODE).strip().lower()
    if mode not in LOAD_MODES:
        raise ConfigError(f"load_mode {mode!r} is not one of {LOAD_MODES}")
    chunk_column = as_text(row.get("chunk_column"))
    chunk_rows: int | None = None
    if chunk_column is not None and chunk_column.strip():
        chunk_column = validation.check_identifier(chunk_column.strip(), "chunk column")
        raw_rows = row.get("chunk_rows")
        chunk_rows = DEFAULT_CHUNK_ROWS if raw_rows in (None, 0, "") else as_int(raw_rows, "chunk_rows")
        if chunk_rows <= 0:
            raise ConfigError(f"chunk_rows must be positive, got {chunk_rows}")
    else:
        chunk_column = None
    all_companies = as_flag(row.get("all_companies"), "all_companies")
    if not all_companies and not binds_company(references, named):
        raise ConfigError(
            "query_select never refers to the company (no company[0], company[1] or company[3] in params_select, "
            "no %(company_id)s or %(alias)s), so every company would receive every tenant's rows; bind the company "
            "in the query, or set tables.all_companies = 1 if the table really is the same for every company"
        )
    max_shrink = row.get("max_shrink_percent")
    max_shrink_percent = None if max_shrink is None else as_int(max_shrink, "max_shrink_percent")
    if max_shrink_percent is not None and not 0 <= max_shrink_percent <= 100:
        raise ConfigError(f"max_shrink_percent must be between 0 and 100, got {max_shrink_percent}")
    cursor_column, cursor_overlap = _cursor(row, mode)
    if cursor_column is not None:
        dates = [i for i, r in enumerate(references) if r.kind == "date"]
        window = validation.window_problem(query, dates, cursor_column)
        if window:
            raise ConfigError(window)
    return TableSpec(
        id=as_int(row.get("id"), "tables.id"),
        name=name,
        query_select=query,
        references=references,
        named_parameters=tuple(sorted(named)),
        target=target,
        load_mode=mode,  # type: ignore[arg-type]
        chunk_column=chunk_column,
        chunk_rows=chunk_rows,
        all_companies=all_companies,
        allow_empty_swap=as_flag(row.get("allow_empty_swap"), "allow_empty_swap"),
        max_shrink_percent=max_shrink_percent,
        cursor_column=cursor_column,
        cursor_overlap=cursor_overlap,
        verify_after_load=as_flag(row.get("verify_after_load"), "verify_after_load"),
        delete_detection=_delete_detection(row, mode, references, named),
        schema_evolution=_schema_evolution(row),
        reconcile_every_days=as_days(row.get("reconcile_every_days"), "reconcile_every_days"),
    )


def _schema_evolution(row: Row) -> SchemaEvolution:
    value = (as_text(row.get("schema_evolution")) or DEFAULT_SCHEMA_EVOLUTION).strip().lower()
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
    column = (as_text(row.get("cursor_column")) or "").strip() or None
    if mode == "incremental" and column is None:
        raise ConfigError("load_mode 'incremental' needs tables.cursor_column (e.g. updated_at, or an increasing id)")
    if mode != "incremental" and column is not None:
        raise ConfigError(
            f"cursor_column {column!r} is set but load_mode is {mode!r}; a cursor is used only by 'incremental'"
        )
    overlap = row.get("cursor_overlap")
    overlap_value = None if overlap is None else as_int(overlap, "cursor_overlap")
    if overlap_value is not None and overlap_value < 0:
        raise ConfigError(f"cursor_overlap must be >= 0, got {overlap_value}")
    if column is None:
        return None, overlap_value
    return validation.check_identifier(column, "cursor column"), overlap_value


DELETE_DETECTIONS = ("none", "keys")


def _delete_detection(row: Row, mode: str, references: Sequence[legacy.Reference], named: Collection[str]) -> str:
    """``keys`` compares the source's whole key set with the target's: only for incremental tables whose
    query selects the whole table (a date window's keys would make every older row look deleted)."""
    value = (as_text(row.get("delete_detection")) or "none").strip().lower()
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


def binds_company(references: Sequence[legacy.Reference], named: Collection[str]) -> bool:
    """Whether a query's parameters name the company: its row id, company_id or alias."""
    return any(r.kind == "company" and r.index in (0, 1, 3) for r in references) or bool(
        {"company_id", "alias"} & set(named)
    )
