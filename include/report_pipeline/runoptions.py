"""Per-run options, declared once: what a manual run may change, for the trigger form, the tasks and the CLI.

Each option is a field of ``RunOptions`` made by ``option()``: its default, the trigger form's title and
description, and its command-line flag with the flag's help. From those declarations
``report_pipeline.airflow.params.form_params`` builds the DAG's ``Param`` s, the operators read a run's
options with ``RunOptions.from_params`` (``airflow.params.run_options``), and ``add_arguments`` gives a
``report-pipeline`` subcommand the flags of the options it takes, read back by ``RunOptions.from_args``.

To add an option: a field here (``option(...)``), then read it where it acts (``RunOptions`` reaches the
tasks whole) and name it in the ``add_arguments`` call of each subcommand that should take it.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from report_pipeline.vocabulary import LOAD_MODES

if TYPE_CHECKING:
    from report_pipeline.config import Plan

T = TypeVar("T")
METADATA_KEY = "report_pipeline.run_option"
# names: a list of company aliases or table names; choice: one of ``choices`` or the table's own (None);
# flag: on or off; days: a whole number of days >= 0, or the company's own (None).
Kind = Literal["names", "choice", "flag", "days"]
# The form's value of a choice left at each table's own setting (the CLI leaves the flag out instead).
FORM_DEFAULT_CHOICE = "default"


@dataclass(frozen=True)
class RunOption:
    """One per-run option: how the trigger form shows it and which command-line flag sets it.

    ``name``: the DAG param and the ``RunOptions`` field. ``kind`` fixes its form type and reading (see
    ``Kind``). ``known``: for ``names``, the names a plan offers in the form's list. ``flag``/``help``: the
    command-line flag and its help (None: the option has no flag, e.g. the form's company list, which the
    CLI names with ``--company``).
    """

    name: str
    kind: Kind
    default: Any
    title: str
    description: str
    flag: str | None = None
    help: str | None = None
    choices: tuple[str, ...] = ()
    known: Callable[[Plan], Sequence[str]] | None = None


def option(
    default: T,
    *,
    kind: Kind,
    title: str,
    description: str,
    flag: str | None = None,
    help: str | None = None,
    choices: tuple[str, ...] = (),
    known: Callable[[Plan], Sequence[str]] | None = None,
) -> T:
    """A ``RunOptions`` field: the one declaration of a per-run option (see ``RunOption``)."""
    declared = RunOption("", kind, default, title, description, flag, help, choices, known)
    return dataclasses.field(default=default, metadata={METADATA_KEY: declared})  # type: ignore[no-any-return]


def listed(value: Any) -> tuple[str, ...]:
    """A params list as names; a plain string (``"acme,globex"`` from a hand-written conf) is split.

    Without this, ``alias in "acme,globex"`` would be a substring test and ``"cme"`` would match.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def _aliases(plan: Plan) -> list[str]:
    return sorted(c.company.alias for c in plan.companies)


def _table_names(plan: Plan) -> list[str]:
    return sorted({t.name for c in plan.companies for t in c.tables})


@dataclass(frozen=True)
class RunOptions:
    """What one run was asked to do differently from the admin rows (all defaults: nothing)."""

    companies: tuple[str, ...] = option(
        (), kind="names", title="Companies", description="Run only these companies (empty: all).", known=_aliases
    )
    tables: tuple[str, ...] = option(
        (), kind="names", title="Tables", description="Run only these tables (empty: all).", known=_table_names
    )
    load_mode: str | None = option(
        None,
        kind="choice",
        choices=LOAD_MODES,
        title="Load mode",
        description="Override the tables' load_mode for this run; only toward what a table's row permits "
        "(its own mode, or upsert).",
        flag="--load-mode",
        help="override the table's load_mode for this run; only toward what its row permits (its own mode, or upsert)",
    )
    allow_shrink: bool = option(
        False,
        kind="flag",
        title="Allow swaps that empty or shrink tables",
        description="Lift the swap guard for this run (tables.allow_empty_swap / max_shrink_percent).",
        flag="--allow-shrink",
        help="lift the swap guard for this run",
    )
    reset_watermark: bool = option(
        False,
        kind="flag",
        title="Reset incremental watermarks",
        description="Incremental tables: read every row and replace the stored watermark (a full reload).",
        flag="--reset-watermark",
        help="incremental tables: read every row and replace the stored watermark (a full reload)",
    )
    lookback_days: int | None = option(
        None,
        kind="days",
        title="Look-back days",
        description="Override each company's 'date Y-M-D' look-back for this run.",
        flag="--lookback-days",
        help="override the company's look-back for this run",
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> RunOptions:
        """A run's options from its params (the trigger form, or a hand-written conf; missing ones default)."""
        params = params or {}
        return cls(**{o.name: _read(o, params.get(o.name)) for o in RUN_OPTIONS})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """A CLI run's options from its parsed flags (options the subcommand has no flag for default)."""
        return cls(**{o.name: _read(o, getattr(args, o.name, None)) for o in RUN_OPTIONS if o.flag})

    def to_params(self) -> dict[str, Any]:
        """The params (a DAG run's conf) that ask for these options: ``from_params`` reads them back."""
        values: dict[str, Any] = {}
        for o in RUN_OPTIONS:
            value = getattr(self, o.name)
            if o.kind == "names":
                value = list(value)
            elif o.kind == "choice" and value is None:
                value = FORM_DEFAULT_CHOICE
            values[o.name] = value
        return values

    def left_out(self, alias: str | None, table: str | None) -> str | None:
        """Why this run leaves a task of ``alias`` and ``table`` out, or None when it runs.

        ``alias`` None is a broken company row, which no companies filter can name; ``table`` None is a
        company-level task, which a tables filter does not leave out.
        """
        if self.companies and alias not in self.companies:
            return f"this run is limited to companies {list(self.companies)}"
        if self.tables and table is not None and table not in self.tables:
            return f"this run is limited to tables {list(self.tables)}"
        return None


def _read(declared: RunOption, value: Any) -> Any:
    """One option's value as ``RunOptions`` holds it, from the form, a conf or a flag."""
    if declared.kind == "names":
        return listed(value)
    if declared.kind == "flag":
        return bool(value)
    if value in (None, "") or (declared.kind == "choice" and value == FORM_DEFAULT_CHOICE):
        return None
    return int(value) if declared.kind == "days" else str(value)


def _declared() -> tuple[RunOption, ...]:
    found = []
    for f in dataclasses.fields(RunOptions):
        declared: RunOption = f.metadata[METADATA_KEY]
        found.append(dataclasses.replace(declared, name=f.name))
    return tuple(found)


RUN_OPTIONS: tuple[RunOption, ...] = _declared()
BY_NAME: Mapping[str, RunOption] = {o.name: o for o in RUN_OPTIONS}


def add_arguments(parser: argparse.ArgumentParser, *names: str, reworded: Mapping[str, str] | None = None) -> None:
    """Give a subcommand the flags of the named options (``reworded``: another help text for this subcommand)."""
    for name in names:
        declared = BY_NAME[name]
        if declared.flag is None:
            raise ValueError(f"run option {name!r} has no command-line flag")
        text = (reworded or {}).get(name, declared.help)
        if declared.kind == "flag":
            parser.add_argument(declared.flag, action="store_true", help=text)
        elif declared.kind == "choice":
            parser.add_argument(declared.flag, choices=declared.choices, help=text)
        else:  # days; a list of names is the form's alone (the CLI names one company and table)
            parser.add_argument(declared.flag, type=int, help=text)
