"""What ``report-pipeline validate`` checks on the servers: each active query, schema and target table.

The admin rows themselves are checked when the plan is built (config.build_plan); this adds what
only the servers can tell: the query runs, its result columns match query_insert's by name, the target
table exists with those columns and (for modes that need one) a key, and the company's schema is its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from report_pipeline import ownership
from report_pipeline.collations import merge_problem
from report_pipeline.columnmatch import column_problems, evolution_of, load_columns
from report_pipeline.config import Plan, table_label
from report_pipeline.connections import source_session
from report_pipeline.evolution import describe_changes
from report_pipeline.guards import key_problem, narrowest_key
from report_pipeline.incremental.cursor import cursor_problem
from report_pipeline.incremental.horizon import UNGUARDED_NOTE, read_counter, read_server, read_writers
from report_pipeline.reconciliation import RECONCILE_NEEDS_KEY
from report_pipeline.routines import Routine, stored_functions, write_warnings
from report_pipeline.runs import bind_parameters, window_for
from report_pipeline.session import opened, probe_collations, probe_columns, probe_types
from report_pipeline.settings import Settings
from report_pipeline.strategies import strategy_for
from report_pipeline.target.mysql import MySqlTarget


def server_problems(
    plan: Plan, settings: Settings, conns: Any, notes: list[str] | None = None, warnings: list[str] | None = None
) -> list[str]:
    """Run each active query with LIMIT 0 on the source and check the company's schema and target tables.

    ``conns`` opens the source and target and knows the protected schemas (cli.CliConnections). Every
    problem is listed, naming company, table and admin row; none stops the check. For ``evolve`` tables,
    what the next load would add or widen is appended to ``notes`` (nothing is changed here). A query
    calling a stored function that may write is appended to ``warnings`` (not a problem: the function may
    be harmless, but the source's READ ONLY transaction refuses one that writes).
    """
    problems: list[str] = []
    today = dt.datetime.now(dt.UTC)
    logical = dt.datetime.combine(today.date(), dt.time(), dt.UTC)
    protected = conns.protected_schemas()
    with source_session(conns, settings) as source, opened(conns.target()) as target_conn:
        target = MySqlTarget(target_conn, settings)
        functions, current_schema = _source_functions(source)
        for cp in plan.companies:
            c = cp.company
            owner = _schema_owner_problem(target, c.schema, protected, [t.target.table for t in cp.tables])
            if owner:
                problems.append(f"company {c.alias!r} (companies row id={c.id}): {owner}")
                continue
            for spec in cp.tables:
                where = table_label(c.alias, spec.name, spec.id)
                try:
                    params = bind_parameters(spec, c, window_for(logical, c.lookback_days))
                    if spec.schema_evolution == "evolve":  # only the evolution check needs the types
                        description, types = probe_types(source, spec.query_select, params)
                    else:
                        description, types = probe_columns(source, spec.query_select, params), []
                except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the check
                    problems.append(f"{where}: source query fails: {exc}")
                    continue
                if warnings is not None:
                    warnings += [f"{where}: {w}" for w in write_warnings(spec.query_select, functions, current_schema)]
                names = [d[0] for d in description]
                if spec.schema_evolution == "evolve":
                    evolution = evolution_of(target, c.schema, spec.target, list(zip(names, types, strict=True)))
                    found = list(evolution.refusals)
                    if evolution.changes and notes is not None:
                        notes.append(f"{where}: schema evolution would {describe_changes(evolution.changes)}")
                else:
                    found = column_problems(target, c.schema, spec.target, names)
                cursor = spec.cursor_column and cursor_problem(description, spec.cursor_column)
                found += [cursor] if cursor else []
                if not found and strategy_for(spec.load_mode).needs_key:
                    keyless = key_problem(target.unique_keys(c.schema, spec.target.table), spec.target.columns)
                    found += [f"target table {c.schema}.{spec.target.table} {keyless}"] if keyless else []
                    found += _merge_problems(source, target, c.schema, spec, params, names)
                if not found and spec.reconcile_every_days:
                    keyed = narrowest_key(target.unique_keys(c.schema, spec.target.table), names)
                    found += [] if keyed else [f"reconcile_every_days is set, but {RECONCILE_NEEDS_KEY}"]
                problems += [f"{where}: {p}" for p in found]
    return problems


def _source_functions(source: Any) -> tuple[list[Routine], str | None]:
    cursor = source.cursor()
    try:
        cursor.execute("SELECT DATABASE()")
        row = cursor.fetchone()
        return stored_functions(cursor), (str(row[0]) if row and row[0] is not None else None)
    finally:
        cursor.close()


def _merge_problems(
    source: Any, target: MySqlTarget, schema: str, spec: Any, params: Any, names: Sequence[str]
) -> list[str]:
    """The key-collation refusal a load would make (report_pipeline.collations), found ahead of it."""
    collations = probe_collations(source, spec.query_select, params)
    loaded = {n.lower(): s for n, s in zip(load_columns(names, spec.target), collations, strict=True)}
    problem = merge_problem(target.key_collations(schema, spec.target.table), loaded)
    return [f"target table {schema}.{spec.target.table}: {problem}"] if problem else []


def commit_safety_note(plan: Plan, settings: Settings, conns: Any) -> str | None:
    """Why incremental watermarks of this plan fall back to the overlap (horizon.UNGUARDED_NOTE), or None.

    Asked of the source connection every incremental table reads; None when the plan has none.
    """
    if not any(spec.cursor_column for cp in plan.companies for spec in cp.tables):
        return None
    try:
        with source_session(conns, settings) as source:
            guarded = (
                not read_server(source).replica
                and read_counter(source) is not None
                and read_writers(source) is not None
            )
    except Exception as exc:  # noqa: BLE001 - a note, never a failure of plan or validate
        return f"incremental tables: could not ask the source whether open transactions are readable ({exc})"
    return None if guarded else f"incremental tables: {UNGUARDED_NOTE}"


def _schema_owner_problem(
    target: MySqlTarget, schema: str, protected: Mapping[str, str], company_tables: Sequence[str]
) -> str | None:
    problem = ownership.foreign_schema_problem(schema, protected)
    if problem is None and target.schema_exists(schema):
        problem = ownership.adoption_problem(schema, target.tables(schema), company_tables)
    return problem
