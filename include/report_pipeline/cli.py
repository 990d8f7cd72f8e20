"""``report-pipeline``: the operator's shell tool, reading the same connections as the DAG.

The commands are plain Python: ``main`` is handed a function that opens the connections (the console
script in ``report_pipeline.airflow.console`` hands it the Airflow hooks), so this module never imports
Airflow and ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from report_pipeline import (
    admin,
    admin_commands,
    asof,
    checks,
    ledger,
    onboard,
    publication,
    reconciliation,
    shards,
    tasks,
)
from report_pipeline.config import Company, Plan, TableSpec, build_plan, build_table
from report_pipeline.connections import Connections, bucket_owner, company_bucket, source_session
from report_pipeline.environment import check_environment
from report_pipeline.errors import ReportPipelineError
from report_pipeline.manifest import Manifest
from report_pipeline.progress import ProgressLine
from report_pipeline.runs import bind_parameters, window_for, with_overrides
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.snapshot import expire_snapshot, plan_to_dict
from report_pipeline.vocabulary import LOAD_MODES, RECONCILE_LOG_TABLE, Chunk


class CliConnections(Connections, Protocol):
    """The connections the commands use: the tasks' three plus the admin DB."""

    def admin(self) -> Any:
        """A mysqlclient connection to the admin DB."""


ConnectionsFactory = Callable[[Settings], CliConnections]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    """Print rows as an aligned plain-text table: numbers right-aligned (with thousands separators on
    a terminal only, so piped output stays machine-readable), text left-aligned."""
    out = out or sys.stdout
    human = bool(getattr(out, "isatty", lambda: False)())

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool) and human:
            return f"{value:,}"
        return str(value)

    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float)) or r[i] in ("-", None) for r in rows)
        for i in range(len(headers))
    ]
    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(
            v.rjust(w) if numeric[i] and n else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=False))
        )
        print(line.rstrip(), file=out)
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


def cmd_validate(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = _fresh_plan(settings, connect)
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


def cmd_onboard(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
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


def cmd_run(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = _fresh_plan(settings, connect)
    company, spec = _spec_of(plan, args.company, args.table)
    with_overrides(spec, args.load_mode)  # refused before anything is extracted, not after
    company_plan = plan.company(args.company)
    logical = _parse_date(args.date)
    # Unique per invocation: the load's cleanup treats folders of its own run without a manifest as
    # dead attempts, so two runs of one date must never share a run id (see report_pipeline.attempts).
    run_id = f"cli__{logical.isoformat()}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    conns = connect(settings)
    started = time.monotonic()
    reset = args.reset_watermark
    progress = ProgressLine(sys.stdout, f"{company.alias}.{spec.name} extract")
    manifests = []
    chunks: list[Chunk | None] = (
        list(tasks.plan_table_chunks(conns, company, spec, logical, settings=settings, reset_watermark=reset))
        if spec.chunk_column
        else [None]
    )
    for chunk in chunks:
        manifests.append(
            tasks.extract_table(
                conns, settings, company, spec, logical, run_id, chunk=chunk, progress=progress, reset_watermark=reset
            )
        )
        progress.next_chunk()
    progress.finish("loading...")
    extracted = time.monotonic() - started
    result = tasks.load_table(
        conns,
        settings,
        company,
        spec,
        [m.ref for m in manifests],
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


def cmd_reconcile(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Compare source and target by key; name the differing rows; with --repair re-copy them (report_reconciles)."""
    plan = _fresh_plan(settings, connect)
    company, spec = _spec_of(plan, args.company, args.table)
    logical = _parse_date(args.date)
    run_id = f"cli_reconcile__{logical.isoformat()}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    result = reconciliation.reconcile_table(
        connect(settings),
        settings,
        company,
        spec,
        logical,
        run_id,
        repair=args.repair,
        lookback_days=args.lookback_days,
        company_tables=[t.target.table for t in plan.company(args.company).tables],
    )
    print(result.summary())
    if not result.drift.matches:
        print_table(*result.kinds())
    print(f"recorded in {company.schema}.{RECONCILE_LOG_TABLE} (id {result.record_id}) in {result.seconds:.2f} s")
    return 0 if result.exact else 1


def _extracted_rows(bucket: Any, keys: Sequence[str]) -> Any:
    """Rows the extract(s) of one load wrote, from their manifests ("-" when one is gone)."""
    try:
        return sum(Manifest.from_json(bucket.get(key)).rows for key in keys)
    except Exception:  # noqa: BLE001 - a pruned or unreadable manifest only blanks this cell
        return "-"


def _report_record(cursor: Any, schema: str, table: str, args: argparse.Namespace) -> ledger.LoadRecord | None:
    if args.run_id:
        return next((r for r in ledger.of_run(cursor, schema, args.run_id) if r.table_name == table), None)
    if args.date:
        day = _parse_date(args.date)
        return ledger.latest_between(cursor, schema, table, day, day + dt.timedelta(days=1))
    return ledger.latest(cursor, schema, table)


def cmd_report(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Per company and table: the load of one run (``--run-id``), of one day (``--date``, any run of
    that logical day: scheduled, manual or CLI), or else the latest load; with the rows its extract
    (every chunk) wrote and the rows it loaded."""
    plan = _fresh_plan(settings, connect)
    conns = connect(settings)
    rows: list[list[Any]] = []
    with opened(conns.target()) as target:
        cursor = target.cursor()
        for cp in plan.companies:
            c = cp.company
            bucket = company_bucket(conns, settings, c)
            has_ledger = ledger.exists(cursor, c.schema)
            as_of = asof.read(cursor, c.schema)
            for spec in cp.tables:
                loaded = _report_record(cursor, c.schema, spec.target.table, args) if has_ledger else None
                live = as_of.get(spec.target.table)
                if loaded is None:
                    rows.append([c.alias, spec.name, "-", "-", "-", "-", "-", _as_of_cell(live), "no load"])
                    continue
                rows.append(
                    [
                        c.alias,
                        spec.name,
                        loaded.logical_date,
                        _extracted_rows(bucket, loaded.manifest_keys),
                        loaded.rows_loaded,
                        loaded.load_mode,
                        loaded.finished_at,
                        _as_of_cell(live),
                        loaded.run_id,
                    ]
                )
            for broken in cp.broken:
                rows.append(
                    [c.alias, broken.name, "-", "-", "-", "config error", "-", "-", str(broken.problem.message)[:60]]
                )
            company_as_of = _as_of_cell(as_of.get(asof.COMPANY_ROW))
            rows.append([c.alias, "* (all tables)", "-", "-", "-", "-", "-", company_as_of, "-"])
    what = f"run {args.run_id}" if args.run_id else f"logical date {args.date}" if args.date else "latest loads"
    print(what)
    headers = ["company", "table", "logical date", "rows extracted", "rows loaded", "mode", "finished at"]
    print_table([*headers, "data as of", "run"], rows)
    return 0


def _as_of_cell(entry: asof.AsOf | None) -> str:
    """What the live rows reflect (``report_as_of``), UTC; "-" before the first load that recorded it."""
    if entry is None or entry.data_as_of is None:
        return "-"
    return f"{entry.data_as_of:%Y-%m-%d %H:%M:%S} UTC"


Command = Callable[[argparse.Namespace, Settings, ConnectionsFactory], int]


def cmd_check_settings(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Refuse unknown or malformed REPORTS_* variables (what a container checks before it starts)."""
    check_environment()
    names = sorted(name for name in os.environ if name.startswith("REPORTS_"))
    print(f"settings ok: {len(names)} REPORTS_* variable(s) set{': ' if names else ''}{', '.join(names)}")
    return 0


def build_parser(extra: Mapping[str, tuple[str, Command]] | None = None) -> argparse.ArgumentParser:
    """The command-line grammar; ``extra`` adds argument-less commands by name (help, handler)."""
    parser = argparse.ArgumentParser(prog="report-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-admin", help="create or upgrade the admin schema (idempotent)")
    p = sub.add_parser("plan", help="print companies x tables with resolved parameters and config errors")
    p.add_argument("--date", help="logical date to resolve windows for (default: today, UTC)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--offline", action="store_true", help="read the admin rows only, not the source")
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
    p = sub.add_parser("reconcile", help="compare source and target by key ranges, naming the rows that differ")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument(
        "--repair",
        action="store_true",
        help="re-copy the differing rows through S3 as a load does (and delete target-only keys where the table "
        "detects deletes); exit 0 once repaired, 1 while rows differ",
    )
    p.add_argument("--date", help="logical date the query's parameters are bound for (default: today, UTC)")
    p.add_argument("--lookback-days", type=int, help="override the company's look-back for the comparison")
    p = sub.add_parser("report", help="rows extracted and loaded per company and table (latest, by day or by run)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--date", help="loads of this logical day, YYYY-MM-DD (scheduled, manual and CLI runs)")
    which.add_argument("--run-id", help="the loads of one DAG run (or CLI run)")
    admin_commands.add_parsers(sub)
    shards.add_parser(sub)
    sub.add_parser("check-settings", help="fail on unknown or malformed REPORTS_* variables, naming them")
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
    "reconcile": cmd_reconcile,
    "report": cmd_report,
    "check-settings": cmd_check_settings,
    **admin_commands.COMMANDS,
    "write-dag-shards": shards.cmd_write_dag_shards,
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
