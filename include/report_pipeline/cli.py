"""``report-pipeline``: the operator's shell tool, reading the same connections as the DAG.

The commands are plain Python: ``main`` is handed a function that opens the connections (the console
script in ``report_pipeline.airflow.console`` hands it the Airflow hooks), so this module never imports
Airflow and ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from report_pipeline import admin, ledger, onboard, ownership, tasks
from report_pipeline.config import (
    Company,
    Plan,
    TableSpec,
    bind_parameters,
    build_plan,
    build_table,
    plan_to_dict,
    window_for,
)
from report_pipeline.errors import ReportPipelineError
from report_pipeline.incremental import cursor_problem
from report_pipeline.load import column_problems
from report_pipeline.manifest import MANIFEST_NAME, Manifest, extract_prefix
from report_pipeline.modes import LOAD_MODES, key_problem, strategy_for
from report_pipeline.session import opened, probe_columns
from report_pipeline.settings import Settings
from report_pipeline.snapshot import expire_snapshot
from report_pipeline.target.mysql import MySqlTarget


class CliConnections(tasks.Connections, Protocol):
    """The connections the commands use: the tasks' three plus the admin DB."""

    def admin(self) -> Any:
        """A mysqlclient connection to the admin DB."""


ConnectionsFactory = Callable[[Settings], CliConnections]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    """Print rows as an aligned plain-text table."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _fresh_plan(settings: Settings, connect: ConnectionsFactory) -> Plan:
    with opened(connect(settings).admin()) as conn:
        return build_plan(admin.read_admin_rows(conn), settings)


def _parse_date(text: str | None) -> dt.datetime:
    if not text:
        today = dt.datetime.now(dt.UTC).date()
        return dt.datetime.combine(today, dt.time(), dt.UTC)
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def cmd_init_admin(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    with opened(connect(settings).admin()) as conn:
        done = admin.init_admin(conn)
    print("\n".join(done) if done else "admin schema is up to date; nothing to do")
    if done:
        expire_snapshot(settings.snapshot_path)
    return 0


def cmd_plan(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = _fresh_plan(settings, connect)
    if args.json:
        print(json.dumps(plan_to_dict(plan), indent=1, default=str))
        return 0
    logical = _parse_date(args.date)
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
                    json.dumps(bind_parameters(spec, c, window), default=str),
                ]
            )
        for broken in cp.broken:
            rows.append([c.alias, broken.name, c.bucket, c.schema, "-", "-", "-", "-", f"ERROR {broken.problem}"])
    for bc in plan.broken_companies:
        rows.append([bc.key, "-", "-", "-", "-", "-", "-", "-", f"ERROR {bc.problem}"])
    print(
        f"plan for logical date {logical.date()}: {len(plan.companies)} active companies, "
        f"{plan.inactive_companies} inactive; {plan.inactive_tables} inactive tables"
    )
    print_table(["company", "table", "bucket", "schema", "target", "mode", "chunks", "look-back", "parameters"], rows)
    return 0


def _validate_against_servers(plan: Plan, settings: Settings, connect: ConnectionsFactory) -> list[str]:
    """Run each active query with LIMIT 0 on the source and check the company's schema and target tables."""
    problems: list[str] = []
    conns = connect(settings)
    logical = _parse_date(None)
    protected = conns.protected_schemas()
    with opened(conns.source()) as source, opened(conns.target()) as target_conn:
        target = MySqlTarget(target_conn)
        for cp in plan.companies:
            c = cp.company
            owner = _schema_owner_problem(target, c.schema, protected, [t.target.table for t in cp.tables])
            if owner:
                problems.append(f"company {c.alias!r} (companies row id={c.id}): {owner}")
                continue
            for spec in cp.tables:
                where = f"company {c.alias!r} {spec.where}"
                try:
                    params = bind_parameters(spec, c, window_for(logical, c.lookback_days))
                    description = probe_columns(source, spec.query_select, params)
                except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the check
                    problems.append(f"{where}: source query fails: {exc}")
                    continue
                names = [d[0] for d in description]
                found = column_problems(target, c.schema, spec.target, names)
                cursor = spec.cursor_column and cursor_problem(description, spec.cursor_column)
                found += [cursor] if cursor else []
                if not found and strategy_for(spec.load_mode).needs_key:
                    keyless = key_problem(target.unique_keys(c.schema, spec.target.table), spec.target.columns)
                    found += [f"target table {c.schema}.{spec.target.table} {keyless}"] if keyless else []
                problems += [f"{where}: {p}" for p in found]
    return problems


def _schema_owner_problem(
    target: MySqlTarget, schema: str, protected: Mapping[str, str], company_tables: Sequence[str]
) -> str | None:
    problem = ownership.foreign_schema_problem(schema, protected)
    if problem is None and target.schema_exists(schema):
        problem = ownership.adoption_problem(schema, target.tables(schema), company_tables)
    return problem


def cmd_validate(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = _fresh_plan(settings, connect)
    problems = [str(p) for p in plan.problems]
    if not args.offline:
        problems += _validate_against_servers(plan, settings, connect)
    checked = sum(len(cp.tables) + len(cp.broken) for cp in plan.companies)
    if problems:
        print(f"{len(problems)} problem(s) in {checked} company x table pairs:")
        for problem in problems:
            print(f"- {problem}")
        return 1
    print(f"ok: {len(plan.companies)} companies x tables = {checked} pairs, no problems")
    return 0


def cmd_onboard(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    conns = connect(settings)
    with opened(conns.admin()) as adm, opened(conns.source()) as src, opened(conns.target()) as tgt:
        tables: list[TableSpec] = []
        for row in _active_table_rows(adm):
            # Broken rows are reported by `validate`; onboarding creates what the valid ones need.
            with contextlib.suppress(ReportPipelineError):
                spec = build_table(row)
                if spec.target.table not in {t.target.table for t in tables}:
                    tables.append(spec)
        steps = onboard.onboard(
            admin=adm,
            source=src,
            target=tgt,
            s3=conns.s3(),
            settings=settings,
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


def cmd_run(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = _fresh_plan(settings, connect)
    company, spec = _spec_of(plan, args.company, args.table)
    company_plan = plan.company(args.company)
    logical = _parse_date(args.date)
    run_id = f"cli__{logical.isoformat()}"
    conns = connect(settings)
    started = time.monotonic()
    reset = args.reset_watermark
    if spec.chunk_column:
        ranges = tasks.plan_table_chunks(conns, company, spec, logical, reset_watermark=reset)
        manifests = [
            tasks.extract_table(
                conns, settings, company, spec, logical, run_id, chunk=r, chunk_index=i, reset_watermark=reset
            )
            for i, r in enumerate(ranges)
        ]
    else:
        manifests = [tasks.extract_table(conns, settings, company, spec, logical, run_id, reset_watermark=reset)]
    extracted = time.monotonic() - started
    result = tasks.load_table(
        conns,
        settings,
        company,
        spec,
        [m.key for m in manifests],
        logical,
        run_id,
        load_mode=args.load_mode,
        allow_shrink=args.allow_shrink,
        company_tables=[t.target.table for t in company_plan.tables],
    )
    tasks.verify_after_load(conns, company, spec, logical, result)
    total = time.monotonic() - started
    if result.skip_reason:
        print(f"{company.alias}.{spec.name}: nothing loaded ({result.skip_reason})")
    print_table(
        ["company", "table", "rows extracted", "rows loaded", "csv bytes", "stored bytes", "extract s", "total s"],
        [
            [
                company.alias,
                spec.name,
                sum(m.rows for m in manifests),
                result.rows,
                sum(m.csv_bytes for m in manifests),
                sum(m.stored_bytes for m in manifests),
                f"{extracted:.2f}",
                f"{total:.2f}",
            ]
        ],
    )
    return 0


def _spec_of(plan: Plan, alias: str, table: str) -> tuple[Company, TableSpec]:
    """The company and the active, valid table spec named on the command line."""
    company_plan = plan.company(alias)
    spec = next((t for t in company_plan.tables if t.name == table), None)
    if spec is None:
        broken = next((b for b in company_plan.broken if b.name == table), None)
        raise ReportPipelineError(str(broken.problem) if broken else f"no active table {table!r}")
    return company_plan.company, spec


def cmd_verify(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Compare source and target for one table; exit 1 naming the first differing key range."""
    company, spec = _spec_of(_fresh_plan(settings, connect), args.company, args.table)
    verdict = tasks.verify_table(
        connect(settings), company, spec, _parse_date(args.date), lookback_days=args.lookback_days
    )
    print(f"{company.alias}.{spec.name} -> {company.schema}.{spec.target.table}: {verdict.describe()}")
    return 0 if verdict.matches else 1


def cmd_report(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Per company and table: rows the run's extract wrote and rows its load recorded."""
    plan = _fresh_plan(settings, connect)
    logical = _parse_date(args.date)
    conns = connect(settings)
    rows: list[list[Any]] = []
    with opened(conns.target()) as target:
        cursor = target.cursor()
        for cp in plan.companies:
            c = cp.company
            bucket = tasks.company_bucket(conns, settings, c)
            for spec in cp.tables:
                extracted: Any = "-"
                with contextlib.suppress(Exception):
                    key = f"{extract_prefix(spec.name, logical, None)}/{MANIFEST_NAME}"
                    extracted = Manifest.from_json(bucket.get(key)).rows
                loaded = ledger.latest(cursor, c.schema, spec.target.table, logical)
                shown = (loaded.rows_loaded, loaded.load_mode, loaded.finished_at) if loaded else ("-", "-", "-")
                rows.append([c.alias, spec.name, extracted, *shown])
            for broken in cp.broken:
                rows.append([c.alias, broken.name, "-", "-", "config error", str(broken.problem.message)[:60]])
    print(f"logical date {logical.date()}")
    print_table(["company", "table", "rows extracted", "rows loaded", "mode", "finished at"], rows)
    return 0


Command = Callable[[argparse.Namespace, Settings, ConnectionsFactory], int]


def build_parser(extra: Mapping[str, tuple[str, Command]] | None = None) -> argparse.ArgumentParser:
    """The command-line grammar; ``extra`` adds argument-less commands by name (help, handler)."""
    parser = argparse.ArgumentParser(prog="report-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-admin", help="create or upgrade the admin schema (idempotent)")
    p = sub.add_parser("plan", help="print companies x tables with resolved parameters and config errors")
    p.add_argument("--date", help="logical date to resolve windows for (default: today, UTC)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p = sub.add_parser("validate", help="check every active admin row; non-zero exit on any problem")
    p.add_argument("--offline", action="store_true", help="check the admin rows only, not the source and target")
    p = sub.add_parser("onboard", help="create everything a new company needs (idempotent)")
    p.add_argument("--company-id", type=int, required=True)
    p.add_argument("--alias", required=True)
    p.add_argument("--lookback-days", type=int)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument(
        "--adopt-schema",
        action="store_true",
        help="take over an existing target schema that holds other tables (after checking it is the company's)",
    )
    p = sub.add_parser("run", help="one table's extract and load, through the same code as the tasks")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--date", help="logical date, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--load-mode", choices=LOAD_MODES)
    p.add_argument("--allow-shrink", action="store_true", help="lift the swap guard for this run")
    p.add_argument(
        "--reset-watermark",
        action="store_true",
        help="incremental tables: read every row and replace the stored watermark (a full reload)",
    )
    p = sub.add_parser("verify", help="compare source and target (row count, server-side checksum); exit 1 if not")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--date", help="logical date the query's parameters are bound for (default: today, UTC)")
    p.add_argument("--lookback-days", type=int, help="override the company's look-back for the comparison")
    p = sub.add_parser("report", help="rows extracted and loaded per company and table for a logical date")
    p.add_argument("--date", required=True)
    for name, (help_text, _) in (extra or {}).items():
        sub.add_parser(name, help=help_text)
    return parser


COMMANDS: dict[str, Command] = {
    "init-admin": cmd_init_admin,
    "plan": cmd_plan,
    "validate": cmd_validate,
    "onboard": cmd_onboard,
    "run": cmd_run,
    "verify": cmd_verify,
    "report": cmd_report,
}


def main(
    argv: Sequence[str] | None, connect: ConnectionsFactory, extra: Mapping[str, tuple[str, Command]] | None = None
) -> int:
    """Run one command; ``connect`` opens the connections (the console script passes Airflow's hooks)."""
    args = build_parser(extra).parse_args(argv)
    commands = {**COMMANDS, **{name: handler for name, (_, handler) in (extra or {}).items()}}
    try:
        settings = Settings.from_env()
        return commands[args.command](args, settings, connect)
    except ReportPipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # A server that refuses or is unreachable is an operator's problem to read, not a traceback.
        if type(exc).__module__.split(".")[0] not in ("MySQLdb", "botocore", "boto3"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2

