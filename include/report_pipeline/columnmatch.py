"""How the query's result columns meet the target table's: matched by name, never by position, and what
schema evolution would change. One rule for the load (which refuses to start) and ``report-pipeline validate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from report_pipeline.evolution import Evolution, plan_evolution
from report_pipeline.target import Catalogue, ColumnChanges
from report_pipeline.validation import InsertTarget


class _CatalogueAndChanges(Catalogue, ColumnChanges, Protocol):
    """What reading a table's evolution needs: its columns and types, and what evolution did to it."""


def name_problem(result_columns: Sequence[str], insert: InsertTarget) -> str | None:
    """Why the query's result columns cannot be matched by name to query_insert's columns, or None.

    Columns are matched by name, never by position: a ``SELECT *`` whose source table changed its
    column order still loads every value into its own column, and a different set is refused.
    """
    repeated = repeated_problem(result_columns)
    if repeated:
        return repeated
    names = [c.lower() for c in result_columns]
    wanted = [c.lower() for c in insert.columns]
    missing = [c for c in insert.columns if c.lower() not in names]
    extra = [c for c in result_columns if c.lower() not in wanted]
    if not missing and not extra:
        return None
    return (
        f"query_select returns columns {list(result_columns)} but query_insert names {list(insert.columns)} "
        f"(not returned by the query: {missing}; not in query_insert: {extra}); columns are matched by name, "
        "so alias the query's columns (... AS name) or fix query_insert's column list"
    )


def repeated_problem(result_columns: Sequence[str]) -> str | None:
    """Why the query's result cannot be loaded by name whatever the target: a name returned twice."""
    names = [c.lower() for c in result_columns]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        return f"query_select returns the column name(s) {repeated} more than once; alias them apart"
    return None


def load_columns(result_columns: Sequence[str], insert: InsertTarget) -> tuple[str, ...]:
    """query_insert's column for each CSV column, in CSV order (after ``name_problem`` found none).

    A column query_insert does not name (schema evolution loads every result column) keeps the query's name.
    """
    by_name = {c.lower(): c for c in insert.columns}
    return tuple(by_name.get(c.lower(), c) for c in result_columns)


def evolution_of(
    target: _CatalogueAndChanges, schema: str, insert: InsertTarget, result: Sequence[tuple[str, str | None]]
) -> Evolution:
    """What loading these result columns (name, source type) into the insert target would change; reads only."""
    types = target.column_types(schema, insert.table)
    if not types:
        return Evolution(refusals=(f"target table {schema}.{insert.table} does not exist",))
    added = target.added_columns(schema, insert.table)
    return plan_evolution(result, types, insert.columns, added, target.lob_obstacles(schema, insert.table))


def column_problems(target: Catalogue, schema: str, insert: InsertTarget, result_columns: Sequence[str]) -> list[str]:
    """What keeps the query's result columns from loading into the insert target; empty when they fit.

    One rule for the load (which refuses to start) and ``report-pipeline validate`` (which lists it).
    """
    problems = []
    mismatch = name_problem(result_columns, insert)
    if mismatch:
        problems.append(mismatch)
    existing = {c.lower() for c in target.columns(schema, insert.table)}
    if not existing:
        return [*problems, f"target table {schema}.{insert.table} does not exist"]
    missing = [c for c in insert.columns if c.lower() not in existing]
    if missing:
        problems.append(f"target table {schema}.{insert.table} has no column(s) {missing}")
    return problems
