"""The ``report-pipeline`` commands of the admin rows: ``init-admin``, ``plan``, ``validate``, ``onboard``,
and ``add-table`` / ``enable`` / ``disable``, which write rows through ``admin``, validated by the same
``config.build_table`` the DAG uses, instead of hand-written SQL.

A row that the DAG would turn into a config-error task is refused here before it is written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from report_pipeline import admin, checks, onboard, publication, shards
from report_pipeline.arguments import parse_date
from report_pipeline.config import Plan, TableSpec, build_plan, build_table
from report_pipeline.connections import bucket_owner, source_session
from report_pipeline.errors import ConfigError, ReportPipelineError
from report_pipeline.plaintable import print_table
from report_pipeline.runs import bind_parameters, window_for
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.snapshot import expire_snapshot, plan_to_dict

Connect = Callable[[Settings], Any]


def fresh_plan(settings: Settings, connect: Connect) -> Plan:
    """The plan built from the admin rows as they are now (not from the parse-time snapshot)."""
    with opened(connect(settings).admin()) as conn:
        return build_plan(admin.read_admin_rows(conn), settings)


def cmd_init_admin(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    with opened(connect(settings).admin()) as conn:
        done = admin.init_admin(conn)
    print("\n".join(done) if done else "admin schema is up to date; nothing to do")
    if done:
        expire_snapshot(settings.snapshot_path)
    return 0


def cmd_plan(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    plan = fresh_plan(settings, connect)
    if args.json:
        print(json.dumps(plan_to_dict(plan), indent=1, default=str))
        return 0
    logical = parse_date(args.date)
    rows: list[list[Any]] = []
    for cp in plan.companies:
        c = cp.company
        window = window_for(logical, c.lookback_days)
        for spec in cp.tables:
            rows.append(
                [
                    c.alias,
                    spec.name,
                    c.bucket,
                    c.schema,
                    spec.target.table,
                    spec.load_mode,
                    f"{spec.chunk_column}/{spec.chunk_rows}" if spec.chunk_column else "-",
                    f"{c.lookback_days}d ({c.lookback_source})",
                    f"every {spec.reconcile_every_days}d" if spec.reconcile_every_days else "-",
                    json.dumps(bind_parameters(spec, c, window), default=str),
                ]
            )
        for broken in cp.broken:
            rows.append([c.alias, broken.name, c.bucket, c.schema, "-", "-", "-", "-", "-", f"ERROR {broken.problem}"])
    for bc in plan.broken_companies:
        rows.append([bc.key, "-", "-", "-", "-", "-", "-", "-", "-", f"ERROR {bc.problem}"])
    print(
        f"plan for logical date {logical.date()}: {len(plan.companies)} active companies, "
        f"{plan.inactive_companies} inactive; {plan.inactive_tables} inactive tables"
    )
    note = checks.commit_safety_note(plan, settings, connect(settings)) if not args.offline else None
    if note:
        print(f"note: {note}")
    headers = "company table bucket schema target mode chunks look-back reconcile parameters".split()
    if settings.dag_shards > 1:
        # Which DAG to trigger or backfill for a company (README "Scaling out").
        print(f"companies split over {settings.dag_shards} DAGs (REPORTS_DAG_SHARDS)")
        headers.append("dag")
        rows = [[*r, shards.dag_id_of(r[0], settings.dag_shards)] for r in rows]
    print_table(headers, rows)
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    plan = fresh_plan(settings, connect)
    problems = [str(p) for p in plan.problems]
    notes: list[str] = []
    warnings: list[str] = []
    if not args.offline:
        problems += checks.server_problems(plan, settings, connect(settings), notes, warnings)
        safety = checks.commit_safety_note(plan, settings, connect(settings))
        if safety:
            print(f"note: {safety}")
    checked = sum(len(cp.tables) + len(cp.broken) for cp in plan.companies)
    for note in notes:
        print(f"note: {note} on its next load (nothing was changed)")
    for warning in warnings:
        print(f"warning: {warning}")
    for note in publication.joining_notes(plan):
        print(f"note: {note}")
    if problems:
        print(f"{len(problems)} problem(s) in {checked} company x table pairs:")
        for problem in problems:
            print(f"- {problem}")
        return 1
    print(f"ok: {len(plan.companies)} companies x tables = {checked} pairs, no problems")
    return 0


def cmd_onboard(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    conns = connect(settings)
    with opened(conns.admin()) as adm, source_session(conns, settings) as src, opened(conns.target()) as tgt:
        tables: list[TableSpec] = []
        for row in _active_table_rows(adm):
            # Broken rows are reported by `validate`; onboarding creates what the valid ones need.
            with contextlib.suppress(ReportPipelineError):
                spec = build_table(row)
                if spec.target.table not in {t.target.table for t in tables}:
                    tables.append(spec)
        owner, owner_is_caller = bucket_owner(conns, settings)
        steps = onboard.onboard(
            owner_is_caller=owner_is_caller,
            admin=adm,
            source=src,
            target=tgt,
            s3=conns.s3(),
            settings=dataclasses.replace(settings, s3_expected_owner=owner),
            company_id=args.company_id,
            alias=args.alias,
            tables=tables,
            lookback_days=args.lookback_days,
            dry_run=args.dry_run,
            adopt_schema=args.adopt_schema,
            protected_schemas=conns.protected_schemas(),
        )
    print_table(["step", "result"], [[s.what, s.action] for s in steps])
    if not args.dry_run and any(s.action == "created" for s in steps):
        # The DAG on this machine picks the new company up at its next parse, not a TTL later.
        expire_snapshot(settings.snapshot_path)
    return 1 if any(s.action.startswith(onboard.CANNOT) for s in steps) else 0


def _active_table_rows(conn: Any) -> list[Mapping[str, Any]]:
    return [r for r in admin.read_admin_rows(conn).tables if r.get("status") == 1]


def cmd_add_table(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    """Validate the row as the DAG would, then insert it in one transaction."""
    row = admin.TableRow(
        name=args.name,
        query_select=args.query_select,
        query_insert=args.query_insert,
        params_select=args.params_select,
        status=0 if args.inactive else 1,
        load_mode=args.load_mode,
        chunk_column=args.chunk_column,
        chunk_rows=args.chunk_rows,
    )
    spec = build_table({**dataclasses.asdict(row), "id": 0})
    with opened(connect(settings).admin()) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT id FROM `tables` WHERE name = %s AND status = 1", (row.name,))
        taken = cursor.fetchone()
        if taken is not None and row.status == 1:
            raise ConfigError(
                f"an active table {row.name!r} exists already (tables row id={taken[0]}); "
                f"disable it first or pick another name"
            )
        if args.dry_run:
            print(f"ok (dry run): {spec.name} -> {spec.target.table}, mode {spec.load_mode}; nothing written")
            return 0
        row_id = admin.add_table(cursor, row)
        conn.commit()
    expire_snapshot(settings.snapshot_path)
    print(f"added tables row id={row_id}: {spec.name} -> {spec.target.table}, mode {spec.load_mode}")
    return 0


def _set_status(args: argparse.Namespace, settings: Settings, connect: Connect, status: int) -> int:
    with opened(connect(settings).admin()) as conn:
        cursor = conn.cursor()
        try:
            if args.company:
                changed = admin.set_company_status(cursor, args.company, status)
                what = f"company {args.company!r}"
            else:
                changed = admin.set_table_status(cursor, args.table, status)
                what = f"table {args.table!r}"
        except LookupError as exc:
            raise ConfigError(str(exc)) from None
        conn.commit()
    state = "active" if status else "inactive"
    print(f"{what} is now {state}" if changed else f"{what} was already {state}; nothing changed")
    if changed:
        expire_snapshot(settings.snapshot_path)
    return 0


def cmd_enable(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    """Set status 1 on a company or table."""
    return _set_status(args, settings, connect, 1)


def cmd_disable(args: argparse.Namespace, settings: Settings, connect: Connect) -> int:
    """Set status 0 on a company or table."""
    return _set_status(args, settings, connect, 0)


COMMANDS = {
    "init-admin": cmd_init_admin,
    "plan": cmd_plan,
    "validate": cmd_validate,
    "onboard": cmd_onboard,
    "add-table": cmd_add_table,
    "enable": cmd_enable,
    "disable": cmd_disable,
}
