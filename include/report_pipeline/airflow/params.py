"""A manual run's params (the trigger form): which companies and tables it is limited to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException


def listed(value: Any) -> list[str]:
    """A params list as names; a plain string (``"acme,globex"`` from a hand-written conf) is split.

    Without this, ``alias in "acme,globex"`` would be a substring test and ``"cme"`` would match.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def skip_unless_selected(context: Mapping[str, Any], alias: str | None, table: str | None) -> None:
    """Skip the task when the run's params limit it to other companies or tables.

    ``alias`` None is a broken company row, which no companies filter can name; ``table`` None is a
    company-level task, which a tables filter does not leave out.
    """
    params = context.get("params") or {}
    companies, tables = listed(params.get("companies")), listed(params.get("tables"))
    if companies and alias not in companies:
        raise AirflowSkipException(f"this run is limited to companies {companies}")
    if tables and table is not None and table not in tables:
        raise AirflowSkipException(f"this run is limited to tables {tables}")
