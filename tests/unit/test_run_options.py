"""Per-run options declared once (``report_pipeline.runoptions``): the trigger form, the tasks and the CLI
read the same declarations, and each still shows and takes exactly what it did before."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from report_pipeline.arguments import build_parser
from report_pipeline.config import AdminRows, build_plan
from report_pipeline.runoptions import RUN_OPTIONS, RunOptions, add_arguments, listed
from report_pipeline.settings import Settings

QUERY = "SELECT id, name FROM users WHERE company_id = %(company_id)s"

# The trigger form as the DAG built it before the options were declared once (airflow/factory._params),
# for a plan with companies acme and globex and tables orders and users.
FORM_BEFORE: dict[str, tuple[Any, dict[str, Any], str]] = {
    "companies": (
        [],
        {"type": "array", "items": {"type": "string", "enum": ["acme", "globex"]}, "title": "Companies"},
        "Run only these companies (empty: all).",
    ),
    "tables": (
        [],
        {"type": "array", "items": {"type": "string", "enum": ["orders", "users"]}, "title": "Tables"},
        "Run only these tables (empty: all).",
    ),
    "load_mode": (
        "default",
        {"type": "string", "enum": ["default", "upsert", "swap", "incremental"], "title": "Load mode"},
        "Override the tables' load_mode for this run; only toward what a table's row permits "
        "(its own mode, or upsert).",
    ),
    "allow_shrink": (
        False,
        {"type": "boolean", "title": "Allow swaps that empty or shrink tables"},
        "Lift the swap guard for this run (tables.allow_empty_swap / max_shrink_percent).",
    ),
    "reset_watermark": (
        False,
        {"type": "boolean", "title": "Reset incremental watermarks"},
        "Incremental tables: read every row and replace the stored watermark (a full reload).",
    ),
    "lookback_days": (
        None,
        {"type": ["null", "integer"], "minimum": 0, "title": "Look-back days"},
        "Override each company's 'date Y-M-D' look-back for this run.",
    ),
}


def _plan(aliases: tuple[str, ...] = ("globex", "acme"), tables: tuple[str, ...] = ("users", "orders")) -> Any:
    companies = [{"id": i, "company_id": 100 + i, "status": 1, "alias": a} for i, a in enumerate(aliases, 1)]
    rows = [
        {"id": i, "name": t, "status": 1, "query_select": QUERY, "query_insert": f"REPLACE INTO {t}(id, name) VALUES "}
        for i, t in enumerate(tables, 1)
    ]
    plan = build_plan(AdminRows(companies=companies, tables=rows), Settings())
    assert not plan.problems, plan.problems
    return plan


def test_the_trigger_form_is_the_one_the_dag_had() -> None:
    from report_pipeline.airflow.params import form_params

    form = form_params(_plan())
    assert list(form) == list(FORM_BEFORE)
    for name, (default, schema, description) in FORM_BEFORE.items():
        assert form[name].value == default, name
        assert form[name].description == description, name
        assert {k: v for k, v in form[name].schema.items() if k != "description"} == schema, name


def test_an_empty_plan_offers_free_text_lists() -> None:
    from report_pipeline.airflow.params import form_params

    form = form_params(_plan((), ()))
    assert form["companies"].schema["items"] == {"type": "string"}
    assert form["tables"].schema["items"] == {"type": "string"}


def _flags(parser: argparse.ArgumentParser, command: str) -> dict[str, Any]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for action in sub.choices[command]._actions:
        if action.option_strings and action.dest != "help":
            found[action.option_strings[0]] = (action.dest, action.type, action.choices, action.nargs, action.required)
    return found


def test_the_cli_flags_are_the_ones_it_had() -> None:
    parser = build_parser()
    assert _flags(parser, "run") == {
        "--company": ("company", None, None, None, True),
        "--table": ("table", None, None, None, True),
        "--date": ("date", None, None, None, False),
        "--load-mode": ("load_mode", None, ("upsert", "swap", "incremental"), None, False),
        "--allow-shrink": ("allow_shrink", None, None, 0, False),
        "--reset-watermark": ("reset_watermark", None, None, 0, False),
    }
    for command in ("verify", "reconcile"):
        flags = _flags(parser, command)
        assert flags["--lookback-days"] == ("lookback_days", int, None, None, False)
        assert "--load-mode" not in flags and "--reset-watermark" not in flags
    verify_help = next(
        a.help
        for a in next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        .choices["verify"]
        ._actions
        if a.dest == "lookback_days"
    )
    assert verify_help == "override the company's look-back for the comparison"


def test_defaults_are_the_same_from_the_form_a_conf_and_the_cli() -> None:
    assert RunOptions.from_params(None) == RunOptions.from_params({}) == RunOptions()
    form_defaults = {o.name: value for o, value in zip(RUN_OPTIONS, RunOptions().to_params().values(), strict=True)}
    assert form_defaults == {name: default for name, (default, _, _) in FORM_BEFORE.items()}
    assert RunOptions.from_params(form_defaults) == RunOptions()
    args = build_parser().parse_args(["run", "--company", "acme", "--table", "users"])
    assert RunOptions.from_args(args) == RunOptions()


SOME = RunOptions(
    companies=("acme", "globex"),
    tables=("users",),
    load_mode="upsert",
    allow_shrink=True,
    reset_watermark=True,
    lookback_days=3,
)


def test_params_round_trip() -> None:
    assert RunOptions.from_params(SOME.to_params()) == SOME
    assert RunOptions.from_params(RunOptions().to_params()) == RunOptions()


def test_cli_round_trip_for_every_option_with_a_flag() -> None:
    parser = argparse.ArgumentParser()
    with_flags = [o for o in RUN_OPTIONS if o.flag]
    add_arguments(parser, *(o.name for o in with_flags))
    argv = ["--load-mode", "upsert", "--allow-shrink", "--reset-watermark", "--lookback-days", "3"]
    options = RunOptions.from_args(parser.parse_args(argv))
    assert options == RunOptions(load_mode="upsert", allow_shrink=True, reset_watermark=True, lookback_days=3)
    assert {o.flag for o in with_flags} == {a for a in argv if a.startswith("--")}


def test_an_option_without_a_flag_cannot_be_given_one() -> None:
    with pytest.raises(ValueError, match="companies"):
        add_arguments(argparse.ArgumentParser(), "companies")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"load_mode": "default"}, RunOptions()),
        ({"load_mode": ""}, RunOptions()),
        ({"load_mode": "swap"}, RunOptions(load_mode="swap")),
        ({"lookback_days": ""}, RunOptions()),
        ({"lookback_days": "0"}, RunOptions(lookback_days=0)),
        ({"companies": "globex, acme,"}, RunOptions(companies=("globex", "acme"))),  # a hand-written conf string
        ({"tables": None, "allow_shrink": 1}, RunOptions(allow_shrink=True)),
        ({"unknown": "ignored"}, RunOptions()),
    ],
)
def test_params_are_read_as_the_tasks_always_read_them(params: dict[str, Any], expected: RunOptions) -> None:
    assert RunOptions.from_params(params) == expected


def test_a_run_limited_by_name_leaves_out_exactly_the_others() -> None:
    limited = RunOptions.from_params({"companies": "globex, acme", "tables": ["orders"]})
    assert limited.left_out("acme", "orders") is None
    assert limited.left_out("acme", None) is None  # a company-level task is not a table
    assert limited.left_out("xacme", "orders") == "this run is limited to companies ['globex', 'acme']"
    assert limited.left_out(None, None) is not None  # a broken company row is never selected by name
    assert limited.left_out("acme", "users") == "this run is limited to tables ['orders']"
    assert RunOptions().left_out(None, "users") is None
    assert listed("cme") == ("cme",) and "cme" not in listed("acme,globex")
