"""The command-line grammar of ``report-pipeline``: every subcommand's flags, in one place.

Kept apart from the commands, so that reading it (``--help``) imports nothing that talks to a server.
The per-run flags (``--load-mode``, ``--allow-shrink``, ``--reset-watermark``, ``--lookback-days``) come
from their one declaration in ``report_pipeline.runoptions``, shared with the DAG's trigger form.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping

from report_pipeline import shards
from report_pipeline.runoptions import add_arguments
from report_pipeline.vocabulary import LOAD_MODES

DESCRIPTION = "report-pipeline: the operator's shell tool, reading the same connections as the DAG."
# What the read-only comparisons say of the look-back they override, instead of "for this run".
_COMPARISON_LOOKBACK = {"lookback_days": "override the company's look-back for the comparison"}


def parse_date(text: str | None) -> dt.datetime:
    """A ``--date`` as a UTC logical date (midnight of today, UTC, when not given)."""
    if not text:
        today = dt.datetime.now(dt.UTC).date()
        return dt.datetime.combine(today, dt.time(), dt.UTC)
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that read or write the admin rows."""
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
    p.add_argument("--lookback-days", type=int)  # the company's 'date Y-M-D' row, not a run's override
    p.add_argument("--dry-run", action="store_true")
    p.add_argument(
        "--adopt-schema",
        action="store_true",
        help="take over an existing target schema that holds other tables (after checking it is the company's)",
    )
    p = sub.add_parser("add-table", help="add a validated tables row (refused if the DAG could not run it)")
    p.add_argument("--name", required=True, help="table name (also the S3 folder and task id prefix)")
    p.add_argument("--query-select", required=True, help="the SELECT run on the source")
    p.add_argument("--query-insert", required=True, help="e.g. 'REPLACE INTO users(id, name) VALUES '")
    p.add_argument("--params-select", default="", help="legacy references, e.g. 'company[1],date'")
    p.add_argument("--load-mode", choices=LOAD_MODES, default="upsert")  # the row's mode, not a run's override
    p.add_argument("--chunk-column")
    p.add_argument("--chunk-rows", type=int)
    p.add_argument("--inactive", action="store_true", help="write it with status 0")
    p.add_argument("--dry-run", action="store_true", help="validate only")
    for verb in ("enable", "disable"):
        p = sub.add_parser(verb, help=f"{verb} a company (by alias) or a table (by name)")
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--company", help="company alias")
        which.add_argument("--table", help="table name")


def _add_table_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that move or compare one company's table."""
    p = sub.add_parser("run", help="one table's extract and load, through the same code as the tasks")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--date", help="logical date, YYYY-MM-DD (default: today, UTC)")
    add_arguments(p, "load_mode", "allow_shrink", "reset_watermark")
    p = sub.add_parser("verify", help="compare source and target (row count, server-side checksum); exit 1 if not")
    p.add_argument("--company", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--date", help="logical date the query's parameters are bound for (default: today, UTC)")
    add_arguments(p, "lookback_days", reworded=_COMPARISON_LOOKBACK)
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
    add_arguments(p, "lookback_days", reworded=_COMPARISON_LOOKBACK)
    p = sub.add_parser("report", help="rows extracted and loaded per company and table (latest, by day or by run)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--date", help="loads of this logical day, YYYY-MM-DD (scheduled, manual and CLI runs)")
    which.add_argument("--run-id", help="the loads of one DAG run (or CLI run)")


def build_parser(extra: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command-line grammar; ``extra`` adds argument-less commands by name (name -> help)."""
    parser = argparse.ArgumentParser(prog="report-pipeline", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_config_commands(sub)
    _add_table_commands(sub)
    shards.add_parser(sub)
    sub.add_parser("check-settings", help="fail on unknown or malformed REPORTS_* variables, naming them")
    for name, help_text in (extra or {}).items():
        sub.add_parser(name, help=help_text)
    return parser
