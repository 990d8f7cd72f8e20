"""``report-pipeline add-table`` / ``enable`` / ``disable``: admin rows written through ``admin``,
validated by the same ``config.build_table`` the DAG uses, instead of hand-written SQL.

A row that the DAG would turn into a config-error task is refused here before it is written.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from report_pipeline import admin
from report_pipeline.config import build_table
from report_pipeline.errors import ConfigError
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.snapshot import expire_snapshot
from report_pipeline.vocabulary import LOAD_MODES

Connect = Callable[[Settings], Any]


def add_parsers(sub: Any) -> None:
    """Add the admin-writing subcommands to the CLI's subparsers."""
    p = sub.add_parser("add-table", help="add a validated tables row (refused if the DAG could not run it)")
    p.add_argument("--name", required=True, help="table name (also the S3 folder and task id prefix)")
    p.add_argument("--query-select", required=True, help="the SELECT run on the source")
    p.add_argument("--query-insert", required=True, help="e.g. 'REPLACE INTO users(id, name) VALUES '")
    p.add_argument("--params-select", default="", help="legacy references, e.g. 'company[1],date'")
    p.add_argument("--load-mode", choices=LOAD_MODES, default="upsert")
    p.add_argument("--chunk-column")
    p.add_argument("--chunk-rows", type=int)
    p.add_argument("--inactive", action="store_true", help="write it with status 0")
    p.add_argument("--dry-run", action="store_true", help="validate only")
    for verb in ("enable", "disable"):
        p = sub.add_parser(verb, help=f"{verb} a company (by alias) or a table (by name)")
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--company", help="company alias")
        which.add_argument("--table", help="table name")


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


COMMANDS = {"add-table": cmd_add_table, "enable": cmd_enable, "disable": cmd_disable}
