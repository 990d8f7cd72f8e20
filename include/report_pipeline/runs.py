"""What one run copies: its window of days, the query's bound parameters, and run-time overrides."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from report_pipeline.config import Company, TableSpec
from report_pipeline.errors import ConfigError, RefusedError
from report_pipeline.vocabulary import DEFAULT_LOAD_MODE, LOAD_MODES


@dataclass(frozen=True)
class Window:
    """The days one run copies: ``date_from`` (inclusive) to ``date_to`` (the logical date)."""

    date_from: dt.date
    date_to: dt.date


def window_for(logical_date: dt.datetime | dt.date, lookback_days: int) -> Window:
    """The copy window of a run: the N days before its logical date, never ``now()``."""
    day = logical_date.date() if isinstance(logical_date, dt.datetime) else logical_date
    return Window(day - dt.timedelta(days=lookback_days), day)


def bind_parameters(spec: TableSpec, company: Company, window: Window) -> tuple[Any, ...] | dict[str, Any]:
    """The driver parameters for ``spec.query_select``: a tuple for ``%s``, a dict for ``%(name)s``."""
    if spec.named_parameters:
        values = {
            "company_id": company.company_id,
            "alias": company.alias,
            "date_from": window.date_from.isoformat(),
            "date_to": window.date_to.isoformat(),
        }
        return {name: values[name] for name in spec.named_parameters}
    row = company.legacy_row()
    return tuple(window.date_from.isoformat() if ref.kind == "date" else row[ref.index] for ref in spec.references)


def with_overrides(spec: TableSpec, load_mode: str | None) -> TableSpec:
    """The spec with a run-time load-mode override (from a manual run's params) applied.

    An override may only go toward what the table's row permits: its own mode, or ``upsert``, which
    never removes rows. Turning an accumulating upsert table into a swap of one window would replace
    the company's whole history with a few days of it, so that is refused.
    """
    if not load_mode or load_mode == "default" or load_mode == spec.load_mode:
        return spec
    if load_mode not in LOAD_MODES:
        raise ConfigError(f"load_mode override {load_mode!r} is not one of {LOAD_MODES}")
    if spec.load_mode == "incremental":
        # Its extract still reads only rows after the watermark, but a plain upsert would load them
        # without the snapshot ordering and without moving the watermark: an older extract could
        # overwrite newer rows. One ordering for every way the table is loaded, so no override.
        raise RefusedError(
            f"{spec.where}: this run asks for load_mode {load_mode!r}, but the table is loaded 'incremental', and "
            "every load of it must keep the incremental ordering and watermark; the target was not changed. Run "
            "without a load-mode override (a manual run may add --reset-watermark to re-read every row)"
        )
    if load_mode != DEFAULT_LOAD_MODE:
        raise RefusedError(
            f"{spec.where}: this run asks for load_mode {load_mode!r}, but the table's row says "
            f"{spec.load_mode!r}; a run may only override it with {DEFAULT_LOAD_MODE!r}. Change tables.load_mode "
            "if the table should be replaced by each run"
        )
    return replace(spec, load_mode=load_mode)  # type: ignore[arg-type]
