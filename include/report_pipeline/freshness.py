"""How fresh each company's report tables are: the data of the "Report freshness" page.

Per company x table: the last successful load (from the ledger ``report_loads``, read only through
``report_pipeline.ledger``), its rows, its age against the DAG's schedule (green / amber / red), the
last failure Airflow recorded after it, and the rows and durations of the last loads for a small
chart. The Airflow plugin (``plugins/report_freshness.py``) supplies the connections and Airflow's
task durations and failures; this module has no Airflow import and renders plain HTML with an
inline SVG chart.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from report_pipeline import asof, ledger
from report_pipeline.config import Plan
from report_pipeline.taskids import parse_task_id

Status = Literal["green", "amber", "red"]
PRESETS = {"@hourly": 3600, "@daily": 86400, "@weekly": 7 * 86400, "@monthly": 31 * 86400, "@yearly": 366 * 86400}
# Fresh while the last load is at most one interval (plus a quarter for the run itself) old; amber
# after one missed run; red after more.
GREEN_INTERVALS = 1.25
AMBER_INTERVALS = 2.5


@dataclass(frozen=True)
class Failure:
    """A failed task of a table, as Airflow recorded it."""

    task_id: str
    run_id: str
    when: dt.datetime | None
    try_number: int
    log_url: str


@dataclass
class TableFreshness:
    """One row of the page."""

    company: str
    table: str
    target: str
    loads: list[ledger.LoadRecord] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # run_id -> load seconds
    failure: Failure | None = None
    age_seconds: float | None = None
    status: Status = "red"
    # From report_as_of: what the live rows reflect; the age is the data's age when it is known.
    as_of: asof.AsOf | None = None

    @property
    def last(self) -> ledger.LoadRecord | None:
        """The newest successful load, if any."""
        return self.loads[0] if self.loads else None


def interval_seconds(schedule: str | None) -> int:
    """The schedule's interval in seconds (presets, or a cron expression's gap; a day when manual)."""
    if not schedule:
        return 86400
    if schedule in PRESETS:
        return PRESETS[schedule]
    try:
        from croniter import croniter  # type: ignore[import-untyped]

        it = croniter(schedule, dt.datetime(2026, 1, 1))
        first = it.get_next(dt.datetime)
        return max(60, int((it.get_next(dt.datetime) - first).total_seconds()))
    except Exception:  # noqa: BLE001 - an unusual schedule string still gets a page, judged by the day
        return 86400


def status_of(age_seconds: float | None, interval: int) -> Status:
    """Green / amber / red from the age of the last load against the schedule's interval."""
    if age_seconds is None:
        return "red"
    if age_seconds <= GREEN_INTERVALS * interval:
        return "green"
    return "amber" if age_seconds <= AMBER_INTERVALS * interval else "red"


def collect(
    plan: Plan, cursor: Any, *, schedule: str | None, now: dt.datetime, company: str | None = None, history: int = 12
) -> list[TableFreshness]:
    """One TableFreshness per active company x table of ``plan`` (one company if ``company``)."""
    interval = interval_seconds(schedule)
    rows: list[TableFreshness] = []
    shown = [cp for cp in plan.companies if not company or cp.company.alias == company]
    # The shown companies' ledgers in two queries per ledger.SCHEMAS_PER_QUERY companies, not two per company.
    ledgers = ledger.recent_many(cursor, [cp.company.schema for cp in shown], history)
    as_ofs = asof.read_many(cursor, [cp.company.schema for cp in shown])
    for cp in shown:
        loads = ledgers.get(cp.company.schema, {})
        as_of = as_ofs.get(cp.company.schema, {})
        for spec in cp.tables:
            row = TableFreshness(cp.company.alias, spec.name, spec.target.table, loads.get(spec.target.table, []))
            row.as_of = as_of.get(spec.target.table)
            _judge(row, now, interval)
            rows.append(row)
        company_row = TableFreshness(cp.company.alias, asof.COMPANY_ROW, asof.COMPANY_ROW)
        company_row.as_of = as_of.get(asof.COMPANY_ROW)
        _judge(company_row, now, interval)
        rows.append(company_row)
    return rows


def _judge(row: TableFreshness, now: dt.datetime, interval: int) -> None:
    """The row's age (the data's, from its as-of; else, for loads before the as-of existed, the last load's)
    and its status."""
    if row.as_of is not None and row.as_of.data_as_of is not None:
        moment: dt.datetime | None = row.as_of.data_as_of
    else:
        moment = row.last.finished_at if row.last is not None else None
    if moment is not None:
        row.age_seconds = max(0.0, (ledger.utc_naive(now) - moment).total_seconds())
    row.status = status_of(row.age_seconds, interval)


def human_age(seconds: float | None) -> str:
    """``3 min``, ``5.2 h``, ``4.0 d``; ``never`` for None."""
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 86400 * 2 else f"{seconds / 86400:.1f} d"


def chart_svg(loads: Sequence[ledger.LoadRecord], durations: Mapping[str, float], width: int = 220) -> str:
    """Bars of rows per load (oldest left) and a line of load seconds, as an inline SVG."""
    height, pad = 44, 2
    points = list(reversed(loads))
    if not points:
        return f'<svg class="chart" width="{width}" height="{height}"></svg>'
    step = (width - 2 * pad) / len(points)
    top_rows = max(r.rows_loaded for r in points) or 1
    secs = [durations.get(r.run_id) for r in points]
    top_secs = max((s for s in secs if s is not None), default=0.0) or 1.0
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="rows and seconds">']
    for i, r in enumerate(points):
        h = max(1.0, (height - 2 * pad) * r.rows_loaded / top_rows)
        x = pad + i * step
        title = html.escape(f"{r.logical_date:%Y-%m-%d %H:%M}: {r.rows_loaded} rows")
        if secs[i] is not None:
            title += f", {secs[i]:.1f} s"
        parts.append(
            f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
            f'fill="#7aa7d9"><title>{title}</title></rect>'
        )
    line = [
        f"{pad + (i + 0.5) * step:.1f},{height - pad - (height - 2 * pad) * s / top_secs:.1f}"
        for i, s in enumerate(secs)
        if s is not None
    ]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#d9822b" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#1f2933;background:#fff}
h1{font-size:20px;margin:0 0 4px} p.note{color:#52606d;margin:0 0 12px;font-size:13px}
form{margin:0 0 12px} select,button{font-size:14px;padding:3px 6px}
table{border-collapse:collapse;font-size:13px} th,td{padding:5px 10px;border-bottom:1px solid #e4e7eb;text-align:left;
vertical-align:middle} th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;min-width:56px;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600;
text-align:center}
.green{background:#2f9e44}.amber{background:#f08c00}.red{background:#e03131}
.err{color:#c92a2a;max-width:360px} .legend{font-size:12px;color:#52606d}
.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def render_page(
    rows: Sequence[TableFreshness],
    companies: Sequence[str],
    *,
    selected: str | None,
    schedule: str | None,
    now: dt.datetime,
    base_path: str,
) -> str:
    """The whole page: a company filter, then one table row per company x table."""
    options = ['<option value="">all companies</option>'] + [
        f'<option value="{html.escape(c)}"{" selected" if c == selected else ""}>{html.escape(c)}</option>'
        for c in companies
    ]
    body = []
    for r in rows:
        last = r.last
        failure = ""
        if r.failure is not None:
            when = f"{r.failure.when:%Y-%m-%d %H:%M} UTC" if r.failure.when else ""
            failure = (
                f'<span class="err">{html.escape(parse_task_id(r.failure.task_id).name)} failed {when} '
                f'(try {r.failure.try_number})</span> <a href="{html.escape(r.failure.log_url, quote=True)}" '
                'target="_top">log</a>'
            )
        data_as_of = r.as_of.data_as_of if r.as_of is not None else None
        cells = [
            html.escape(r.company),
            "<b>all tables</b>" if r.table == asof.COMPANY_ROW else html.escape(r.table),
            f"{last.finished_at:%Y-%m-%d %H:%M} UTC" if last and last.finished_at else "never",
            f"{last.logical_date:%Y-%m-%d %H:%M}" if last else "-",
            f"{last.rows_loaded:,}" if last else "-",
            f'<span class="badge {r.status}" data-status="{r.status}">{human_age(r.age_seconds)}</span>',
            failure or "-",
            chart_svg(r.loads, r.durations),
            f"{data_as_of:%Y-%m-%d %H:%M:%S} UTC" if data_as_of else "-",
        ]
        klass = ["", "", "", "", ' class="num"', "", "", "", ""]
        body.append(
            f'<tr data-company="{html.escape(r.company)}" data-table="{html.escape(r.table)}">'
            + "".join(f"<td{k}>{c}</td>" for k, c in zip(klass, cells, strict=True))
            + "</tr>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Report freshness</title>
<style>{_STYLE}</style></head><body>
<h1>Report freshness</h1>
<p class="note">Per company and table: the source time the live rows reflect (report_as_of; "all tables": the
company's oldest), the last successful load (report_loads), the data's age against
the schedule {html.escape(str(schedule or "manual"))} (green up to {GREEN_INTERVALS}&times;, amber up to
{AMBER_INTERVALS}&times; the interval, red beyond or never), the last failure Airflow recorded since, and the last
loads: <span class="legend"><i style="background:#7aa7d9"></i>rows <i style="background:#d9822b"></i>seconds</span>.
As of {now:%Y-%m-%d %H:%M} UTC.</p>
<form method="get" action="{html.escape(base_path, quote=True)}"><label>Company <select name="company"
onchange="this.form.submit()">{"".join(options)}</select></label> <button type="submit">Filter</button></form>
<table><thead><tr><th>company</th><th>table</th><th>last load</th><th>logical date</th><th>rows</th><th>age</th>
<th>last error</th><th>last loads</th><th>data as of</th></tr></thead><tbody>
{"".join(body) or '<tr><td colspan="9">no active company tables</td></tr>'}
</tbody></table></body></html>"""


def log_url(base_url: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The UI link to one task try's log (the same shape as Airflow's ``ti.log_url``)."""
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}/tasks/{task_id}{mapped}?try_number={try_number}"
