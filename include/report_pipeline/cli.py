"""``report-pipeline``: the operator's shell tool, reading the same Airflow connections as the DAG.

Airflow (for its hooks) is imported only when a command needs a connection, so ``--help`` and the
pure package stay Airflow-free.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from report_pipeline import admin, demo, onboard, tasks
from report_pipeline.config import (
    Plan,
    TableSpec,
    bind_parameters,
    build_plan,
    build_table,
    plan_to_dict,
    window_for,
)
from report_pipeline.errors import ReportPipelineError
from report_pipeline.load import REPORT_LOADS, target_column_problems
from report_pipeline.manifest import MANIFEST_NAME, Manifest, extract_prefix
from report_pipeline.settings import Settings, check_environment
from report_pipeline.snapshot import expire_snapshot
from report_pipeline.sql import quote_identifier
from report_pipeline.tasks import opened


def _logs_to_stderr() -> None:
    """Send Airflow's log lines to stderr, so stdout carries only this tool's tables.

    Importing Airflow configures its logging to stdout (stdlib handlers and structlog's writer);
    a warning such as "Skipping masking for a secret" would otherwise land in the middle of a table
    that an operator pipes into another tool.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)
    with contextlib.suppress(Exception):  # structlog's layout is Airflow's internal business
        import structlog

        factory: Any = structlog.get_config().get("logger_factory")
        if factory is not None and hasattr(factory, "io"):
            factory.io = sys.stderr


def _connections(settings: Settings) -> Any:
    from report_pipeline.airflow.connections import HookConnections

    _logs_to_stderr()
    return HookConnections(settings.admin_timeout_seconds)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    """Print rows as an aligned plain-text table."""
    out = out or sys.stdout
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _fresh_plan(settings: Settings) -> Plan:
    with opened(_connections(settings).admin()) as conn:
        return build_plan(admin.read_admin_rows(conn), settings)


def _parse_date(text: str | None) -> dt.datetime:
    if not text:
        today = dt.datetime.now(dt.UTC).date()
        return dt.datetime.combine(today, dt.time(), dt.UTC)
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def cmd_init_admin(args: argparse.Namespace, settings: Settings) -> int:
    with opened(_connections(settings).admin()) as conn:
        done = admin.init_admin(conn)
    print("\n".join(done) if done else "admin schema is up to date; nothing to do")
    if done:
        expire_snapshot(settings.snapshot_path)
    return 0


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    plan = _fresh_plan(settings)
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


def _validate_against_servers(plan: Plan, settings: Settings) -> list[str]:
    """Run each active query with LIMIT 0 on the source and check its target table's columns."""
    problems: list[str] = []
    conns = _connections(settings)
    logical = _parse_date(None)
    with opened(conns.source()) as source, opened(conns.target()) as target:
        src, tgt = source.cursor(), target.cursor()
        for cp in plan.companies:
            c = cp.company
            for spec in cp.tables:
                where = f"company {c.alias!r} table {spec.name!r} (tables row id={spec.id})"
                try:
                    params = bind_parameters(spec, c, window_for(logical, c.lookback_days))
                    src.execute(f"SELECT * FROM ({spec.query_select}) AS _rp_check LIMIT 0", params)
                    width = len(src.description or ())
                    src.fetchall()
                except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the check
                    problems.append(f"{where}: source query fails: {exc}")
                    continue
                problems += [f"{where}: {p}" for p in target_column_problems(tgt, c.schema, spec.target, width)]
    return problems


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    plan = _fresh_plan(settings)
    problems = [str(p) for p in plan.problems]
    if not args.offline:
        problems += _validate_against_servers(plan, settings)
    checked = sum(len(cp.tables) + len(cp.broken) for cp in plan.companies)
    if problems:
        print(f"{len(problems)} problem(s) in {checked} company x table pairs:")
        for problem in problems:
            print(f"- {problem}")
        return 1
    print(f"ok: {len(plan.companies)} companies x tables = {checked} pairs, no problems")
    return 0


def cmd_onboard(args: argparse.Namespace, settings: Settings) -> int:
    conns = _connections(settings)
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
        )
    print_table(["step", "result"], [[s.what, s.action] for s in steps])
    if not args.dry_run and any(s.action == "created" for s in steps):
        # The DAG on this machine picks the new company up at its next parse, not a TTL later.
        expire_snapshot(settings.snapshot_path)
    return 1 if any(s.action.startswith(onboard.CANNOT) for s in steps) else 0


def _active_table_rows(conn: Any) -> list[Mapping[str, Any]]:
    return [r for r in admin.read_admin_rows(conn).tables if r.get("status") == 1]


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    plan = _fresh_plan(settings)
    company_plan = plan.company(args.company)
    spec = next((t for t in company_plan.tables if t.name == args.table), None)
    if spec is None:
        broken = next((b for b in company_plan.broken if b.name == args.table), None)
        raise ReportPipelineError(str(broken.problem) if broken else f"no active table {args.table!r}")
    company = company_plan.company
    logical = _parse_date(args.date)
    run_id = f"cli__{logical.isoformat()}"
    conns = _connections(settings)
    started = time.monotonic()
    if spec.chunk_column:
        ranges = tasks.plan_table_chunks(conns, company, spec, logical)
        manifests = [
            tasks.extract_table(conns, settings, company, spec, logical, run_id, chunk=r, chunk_index=i)
            for i, r in enumerate(ranges)
        ]
    else:
        manifests = [tasks.extract_table(conns, settings, company, spec, logical, run_id)]
    extracted = time.monotonic() - started
    result = tasks.load_table(
        conns, settings, company, spec, [m.key for m in manifests], logical, run_id, load_mode=args.load_mode
    )
    total = time.monotonic() - started
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


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Per company and table: rows the run's extract wrote and rows its load recorded."""
    plan = _fresh_plan(settings)
    logical = _parse_date(args.date)
    conns = _connections(settings)
    s3 = conns.s3()
    rows: list[list[Any]] = []
    with opened(conns.target()) as target:
        cursor = target.cursor()
        for cp in plan.companies:
            c = cp.company
            for spec in cp.tables:
                extracted: Any = "-"
                with contextlib.suppress(Exception):
                    key = f"{extract_prefix(spec.name, logical, None)}/{MANIFEST_NAME}"
                    body = s3.get_object(Bucket=c.bucket, Key=key)["Body"].read()
                    extracted = Manifest.from_json(body).rows
                cursor.execute(
                    f"SELECT rows_loaded, load_mode, finished_at FROM {quote_identifier(c.schema)}.`{REPORT_LOADS}` "
                    "WHERE table_name = %s AND logical_date = %s ORDER BY id DESC LIMIT 1",
                    (spec.target.table, logical.replace(tzinfo=None)),
                )
                loaded = cursor.fetchone()
                rows.append([c.alias, spec.name, extracted, *(loaded or ("-", "-", "-"))])
            for broken in cp.broken:
                rows.append([c.alias, broken.name, "-", "-", "config error", str(broken.problem.message)[:60]])
    print(f"logical date {logical.date()}")
    print_table(["company", "table", "rows extracted", "rows loaded", "mode", "finished at"], rows)
    return 0


def cmd_demo_setup(args: argparse.Namespace, settings: Settings) -> int:
    conns = _connections(settings)
    with opened(conns.admin()) as adm, opened(conns.source()) as src:
        admin.init_admin(adm)
        demo.create_admin_rows(adm)
        counts = demo.create_source(src)
    print_table(["source table", "rows"], sorted(counts.items()))
    for _, company_id, status, alias, lookback in demo.DEMO_COMPANIES:
        if status != 1:
            continue
        ns = argparse.Namespace(company_id=company_id, alias=alias, lookback_days=lookback, dry_run=False)
        print(f"\nonboarding {alias}:")
        cmd_onboard(ns, settings)
    return 0


def cmd_check_settings(args: argparse.Namespace, settings: Settings) -> int:
    """Refuse unknown or malformed REPORTS_* variables (what a container checks before it starts)."""
    check_environment()
    names = sorted(name for name in os.environ if name.startswith("REPORTS_"))
    print(f"settings ok: {len(names)} REPORTS_* variable(s) set{': ' if names else ''}{', '.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
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
    p = sub.add_parser("run", help="one table's extract and load, through the same code as the tasks")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--date", help="logical date, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--load-mode", choices=["upsert", "swap"])
    p = sub.add_parser("report", help="rows extracted and loaded per company and table for a logical date")
    p.add_argument("--date", required=True)
    sub.add_parser("demo-setup", help="create the demo admin rows, source tables and company targets")
    sub.add_parser("check-settings", help="fail on unknown or malformed REPORTS_* variables, naming them")
    return parser


COMMANDS = {
    "init-admin": cmd_init_admin,
    "plan": cmd_plan,
    "validate": cmd_validate,
    "onboard": cmd_onboard,
    "run": cmd_run,
    "report": cmd_report,
    "demo-setup": cmd_demo_setup,
    "check-settings": cmd_check_settings,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``report-pipeline`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return COMMANDS[args.command](args, settings)
    except ReportPipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # A server that refuses or is unreachable is an operator's problem to read, not a traceback.
        if type(exc).__module__.split(".")[0] not in ("MySQLdb", "botocore", "boto3"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
