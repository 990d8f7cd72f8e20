"""A run's params: the trigger form built from the per-run options' declarations, and read back by the tasks.

``report_pipeline.runoptions`` declares each option once; here it becomes an Airflow ``Param`` of the
DAG (``form_params``), and a task reads its run's options whole (``run_options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from report_pipeline.config import Plan
from report_pipeline.runoptions import FORM_DEFAULT_CHOICE, RUN_OPTIONS, RunOption, RunOptions


def _param(declared: RunOption, plan: Plan) -> Param:
    shown: dict[str, Any] = {"title": declared.title, "description": declared.description}
    if declared.kind == "names":
        known = list(declared.known(plan)) if declared.known else []
        items = {"type": "string", "enum": known} if known else {"type": "string"}
        return Param([], type="array", items=items, **shown)
    if declared.kind == "choice":
        return Param(FORM_DEFAULT_CHOICE, type="string", enum=[FORM_DEFAULT_CHOICE, *declared.choices], **shown)
    if declared.kind == "flag":
        return Param(False, type="boolean", **shown)
    return Param(None, type=["null", "integer"], minimum=0, **shown)


def form_params(plan: Plan) -> dict[str, Param]:
    """The DAG's params (the trigger form): one per run option, company and table lists from ``plan``."""
    return {declared.name: _param(declared, plan) for declared in RUN_OPTIONS}


def run_options(context: Mapping[str, Any]) -> RunOptions:
    """The options the task's run was triggered with (its params merged with the DAG's defaults)."""
    return RunOptions.from_params(context.get("params"))


def skip_unless_selected(options: RunOptions, alias: str | None, table: str | None) -> None:
    """Skip the task when the run's options limit it to other companies or tables (``RunOptions.left_out``)."""
    reason = options.left_out(alias, table)
    if reason is not None:
        raise AirflowSkipException(reason)
