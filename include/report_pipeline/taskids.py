"""Task ids: the one place they are built and read back (as cosmos keeps its node ids in ``core/graph/entities.py``).

Every company is a task group ``company_<alias>`` (a company whose row is unusable: ``company_<row id>``);
inside it each table's tasks are ``<table>__<step>``, an unusable company's one task is
``invalid_company``, and a company publishing its day together has ``publish_day``. The DAG factory
builds them; the alerts, the freshness page and the parse-time task filter read them back with
``parse_task_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GROUP_PREFIX = "company_"
STEP_SEPARATOR = "__"
INVALID_COMPANY = "invalid_company"
# A company's one task that makes its day's swap tables live together (companies.publish_together).
PUBLISH_TASK_ID = "publish_day"

# A table's tasks: the chunk plan (chunked tables), the extract, the load, or the task of an unusable row.
Step = Literal["plan_chunks", "mysql_to_s3", "s3_to_mysql", "reconcile", "invalid_config"]


def group_id(company: str) -> str:
    """The task group id of a company (its alias, or the row id of a company whose row is unusable)."""
    return f"{GROUP_PREFIX}{company}"


def table_task(table: str, step: Step) -> str:
    """A table's task id inside its company's group."""
    return f"{table}{STEP_SEPARATOR}{step}"


def task_id(alias: str, table: str, step: Step) -> str:
    """A table's full task id, group included, as Airflow and its UI show it."""
    return f"{group_id(alias)}.{table_task(table, step)}"


@dataclass(frozen=True)
class TaskRef:
    """What a task id names: its group, company, table and step ("" where the id has none)."""

    group: str
    company: str
    name: str  # the id inside the group
    table: str
    step: str


def parse_task_id(text: str) -> TaskRef:
    """Read a task id back: ``company_acme.orders__s3_to_mysql`` -> group, company, table and step.

    An id without a group (no dot) has group and company ""; a name without a step (``invalid_company``)
    is its own table and has step "".
    """
    group, dot, name = text.partition(".")
    if not dot:
        group, name = "", text
    table, _, step = name.partition(STEP_SEPARATOR)
    return TaskRef(group=group, company=group.removeprefix(GROUP_PREFIX), name=name, table=table, step=step)
