"""The company's publish task: the swap tables of one run go live together (``report_pipeline.publication``).

It runs after every load of the company's joining tables has finished, whatever their outcome
(``trigger_rule="all_done"``), reads what each load left ready (its XCom: ``held`` and ``load_key``) and
publishes them in one RENAME, or none of them, failing with the tables that keep the company back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from report_pipeline import tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.airflow.params import run_options, skip_unless_selected
from report_pipeline.config import Company, TableSpec
from report_pipeline.errors import ConfigError, RefusedError
from report_pipeline.publication import DayTable, joins
from report_pipeline.runoptions import RunOptions
from report_pipeline.settings import TARGET_CONN_ID, Settings
from report_pipeline.taskids import table_task


def load_task_id(group: str, spec: TableSpec) -> str:
    """The full task id of a table's load task inside the company's group."""
    return f"{group}.{table_task(spec.name, 's3_to_mysql')}"


class ReportPublishOperator(BaseOperator):
    """Publishes a company's day: its swap tables' loaded shadows renamed in together, or none of them."""

    ui_color = "#e8fde9"
    template_fields: Sequence[str] = ("target_conn_id",)

    def __init__(
        self,
        *,
        company: Company,
        specs: Sequence[TableSpec],
        settings: Settings,
        group: str,
        company_tables: Sequence[str] = (),
        target_conn_id: str = TARGET_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.company = company
        self.specs = tuple(specs)
        self.settings = settings
        self.group = group
        self.company_tables = tuple(company_tables)
        self.target_conn_id = target_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        options = run_options(context)
        skip_unless_selected(options, self.company.alias, None)
        day = self.day(context["ti"], options)
        try:
            result = tasks.publish_day(
                HookConnections(self.settings, target_conn_id=self.target_conn_id),
                self.settings,
                self.company,
                day,
                partial=self.company.publish_partial,
                company_tables=self.company_tables,
            )
        except (ConfigError, RefusedError) as exc:
            raise AirflowFailException(str(exc)) from exc
        if result.behind:
            where = {d.table: d.where for d in day}
            raise AirflowFailException(
                f"company {self.company.alias!r} (companies row id={self.company.id}): published "
                f"{', '.join(result.published) or 'nothing'}; behind, still on their previous day: "
                + "; ".join(f"{where.get(t, t)}: {why}" for t, why in result.behind.items())
            )
        self.log.info("published %s together", ", ".join(result.published) or "nothing (no table was held)")
        return {"published": list(result.published)}

    def day(self, ti: Any, options: RunOptions) -> list[DayTable]:
        """The tables of this run's day: each joining table the run selected, with what its load left ready.

        A table whose load task returned nothing did not load in this run (it failed, its extract did, or
        it was skipped); one whose load did not hold (a run that overrode the load mode to upsert, or a
        retry of a load already recorded) went live on its own and is not part of the day.
        """
        found: list[DayTable] = []
        for spec in self.specs:
            if options.tables and spec.name not in options.tables:
                continue
            if options.load_mode is not None and not joins(options.load_mode):
                continue
            pushed = ti.xcom_pull(task_ids=load_task_id(self.group, spec))
            if isinstance(pushed, Mapping) and not pushed.get("held"):
                continue
            key = str(pushed["load_key"]) if isinstance(pushed, Mapping) else None
            guard = tasks.swap_guard(self.settings, spec, options.allow_shrink)
            found.append(DayTable(spec.target.table, f"table {spec.name!r} (tables row id={spec.id})", key, guard))
        return found
