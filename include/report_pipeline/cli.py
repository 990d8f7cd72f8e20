"""``report-pipeline``: the operator's shell tool, reading the same connections as the DAG.

The commands are plain Python: ``main`` is handed a function that opens the connections (the console
script in ``report_pipeline.airflow.console`` hands it the Airflow hooks), so this module never imports
Airflow and ``--help`` stays instant.

Here: the table commands (``run``, ``verify``, ``reconcile``, ``report``) and ``main``. The grammar is in
``arguments``, the admin-row commands in ``admin_commands``, ``check-settings`` in ``environment``, the
output tables in ``plaintable``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from report_pipeline import admin_commands, asof, ledger, reconciliation, shards, tasks
from report_pipeline.admin_commands import fresh_plan
from report_pipeline.arguments import build_parser, parse_date
from report_pipeline.config import Company, Plan, TableSpec
from report_pipeline.connections import Connections, company_bucket
from report_pipeline.environment import cmd_check_settings
from report_pipeline.errors import ReportPipelineError
from report_pipeline.manifest import Manifest
from report_pipeline.plaintable import print_table
from report_pipeline.progress import ProgressLine
from report_pipeline.runoptions import RunOptions
from report_pipeline.runs import with_overrides
from report_pipeline.session import opened
from report_pipeline.settings import Settings
from report_pipeline.vocabulary import RECONCILE_LOG_TABLE, Chunk


class CliConnections(Connections, Protocol):
    """The connections the commands use: the tasks' three plus the admin DB."""

    def admin(self) -> Any:
        """A mysqlclient connection to the admin DB."""


ConnectionsFactory = Callable[[Settings], CliConnections]


def cmd_run(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    plan = fresh_plan(settings, connect)
    company, spec = _spec_of(plan, args.company, args.table)
    options = RunOptions.from_args(args)
    with_overrides(spec, options.load_mode)  # refused before anything is extracted, not after
    company_plan = plan.company(args.company)
    logical = parse_date(args.date)
    # Unique per invocation: the load's cleanup treats folders of its own run without a manifest as
    # dead attempts, so two runs of one date must never share a run id (see report_pipeline.attempts).
    run_id = f"cli__{logical.isoformat()}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    conns = connect(settings)
    started = time.monotonic()
    reset = options.reset_watermark
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
        load_mode=options.load_mode,
        allow_shrink=options.allow_shrink,
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
    company, spec = _spec_of(fresh_plan(settings, connect), args.company, args.table)
    lookback_days = RunOptions.from_args(args).lookback_days
    verdict = tasks.verify_table(connect(settings), company, spec, parse_date(args.date), lookback_days=lookback_days)
    print(f"{company.alias}.{spec.name} -> {company.schema}.{spec.target.table}: {verdict.describe()}")
    return 0 if verdict.matches else 1


def cmd_reconcile(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Compare source and target by key; name the differing rows; with --repair re-copy them (report_reconciles)."""
    plan = fresh_plan(settings, connect)
    company, spec = _spec_of(plan, args.company, args.table)
    logical = parse_date(args.date)
    run_id = f"cli_reconcile__{logical.isoformat()}__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    result = reconciliation.reconcile_table(
        connect(settings),
        settings,
        company,
        spec,
        logical,
        run_id,
        repair=args.repair,
        lookback_days=RunOptions.from_args(args).lookback_days,
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
        day = parse_date(args.date)
        return ledger.latest_between(cursor, schema, table, day, day + dt.timedelta(days=1))
    return ledger.latest(cursor, schema, table)


def cmd_report(args: argparse.Namespace, settings: Settings, connect: ConnectionsFactory) -> int:
    """Per company and table: the load of one run (``--run-id``), of one day (``--date``, any run of
    that logical day: scheduled, manual or CLI), or else the latest load; with the rows its extract
    (every chunk) wrote and the rows it loaded."""
    plan = fresh_plan(settings, connect)
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


COMMANDS: dict[str, Command] = {
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
    args = build_parser({name: help_text for name, (help_text, _) in (extra or {}).items()}).parse_args(argv)
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
