"""How fresh each company's report tables are: the data of the "Report freshness" page.

Per company x table: the last successful load (from the ledger ``report_loads``, read only through
``report_pipeline.ledger``), its rows, its age against the DAG's schedule (green / amber / red), the
last failure Airflow recorded after it, and the rows and durations of the last loads for a small
chart. The Airflow plugin (``plugins/report_freshness.py``) supplies the connections and Airflow's
task durations and failures; this module has no Airflow import and renders plain HTML with an
inline SVG chart.

At fleet size (1,000 companies x 20 tables) the page reads each table's newest load only (``survey``),
orders every row worst first and counts them (``worst_first``, ``Totals``), and reads the chart's
history for the one page of rows it shows (``page_of``, ``add_history``).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from report_pipeline import asof, ledger
from report_pipeline.config import CompanyPlan, Plan
from report_pipeline.loadchart import chart_svg, human_age
from report_pipeline.taskids import parse_task_id

Status = Literal["green", "amber", "red"]
# The page's status filter: a colour, or "failed" (a failure Airflow recorded after the last load).
FILTERS = ("failed", "red", "amber", "green")
PER_PAGE = 50
MAX_PER_PAGE = 500
HISTORY = 12  # loads in each row's chart
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
    schema: str = ""  # the company's target schema (where add_history reads)

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
    plan: Plan,
    cursor: Any,
    *,
    schedule: str | None,
    now: dt.datetime,
    company: str | None = None,
    history: int = HISTORY,
) -> list[TableFreshness]:
    """One TableFreshness per active company x table of ``plan`` (one company if ``company``), each with its
    last ``history`` loads, and one company row per company (the JSON's data)."""
    shown = [cp for cp in plan.companies if not company or cp.company.alias == company]
    schemas = [cp.company.schema for cp in shown]
    # The shown companies' ledgers in a query per ledger.SCHEMAS_PER_QUERY companies, not two per company.
    ledgers = ledger.recent_many(cursor, schemas, history)
    return _rows(shown, ledgers, asof.read_many(cursor, schemas), interval_seconds(schedule), now)


def survey(
    plan: Plan, cursor: Any, *, schedule: str | None, now: dt.datetime, company: str | None = None
) -> list[TableFreshness]:
    """``collect`` without the history: each row holds its newest load only (``ledger.latest_many``) and its
    as-of's ``data_as_of`` only (``asof.read_many(full=False)``), enough to judge, order, count and show every
    row of a fleet; ``add_history`` then reads the charts of the rows shown."""
    shown = [cp for cp in plan.companies if not company or cp.company.alias == company]
    schemas = [cp.company.schema for cp in shown]
    newest = {
        schema: {table: [load] for table, load in tables.items()}
        for schema, tables in ledger.latest_many(cursor, schemas).items()
    }
    return _rows(shown, newest, asof.read_many(cursor, schemas, full=False), interval_seconds(schedule), now)


def _rows(
    shown: Sequence[CompanyPlan],
    ledgers: Mapping[str, Mapping[str, list[ledger.LoadRecord]]],
    as_ofs: Mapping[str, Mapping[str, asof.AsOf]],
    interval: int,
    now: dt.datetime,
) -> list[TableFreshness]:
    rows: list[TableFreshness] = []
    for cp in shown:
        schema = cp.company.schema
        loads = ledgers.get(schema, {})
        as_of = as_ofs.get(schema, {})
        for spec in cp.tables:
            row = TableFreshness(cp.company.alias, spec.name, spec.target.table, loads.get(spec.target.table, []))
            row.schema = schema
            row.as_of = as_of.get(spec.target.table)
            _judge(row, now, interval)
            rows.append(row)
        company_row = TableFreshness(cp.company.alias, asof.COMPANY_ROW, asof.COMPANY_ROW, schema=schema)
        company_row.as_of = as_of.get(asof.COMPANY_ROW)
        _judge(company_row, now, interval)
        rows.append(company_row)
    return rows


def add_history(rows: Sequence[TableFreshness], cursor: Any, history: int = HISTORY) -> None:
    """Replace the loads of ``rows`` (from ``survey``) by their last ``history`` loads, in one query per
    ``ledger.SCHEMAS_PER_QUERY`` rows; rows never loaded (and company rows) read nothing."""
    loaded = [r for r in rows if r.loads and r.table != asof.COMPANY_ROW]
    found = ledger.history_many(cursor, [(r.schema, r.target) for r in loaded], history)
    for row in loaded:
        row.loads = found.get((row.schema, row.target)) or row.loads


# Worst first: a failure since the last load, then red, amber, green; within each, the oldest data first.
_RANK = {"red": 1, "amber": 2, "green": 3}


def worst_first(rows: Sequence[TableFreshness]) -> list[TableFreshness]:
    """``rows`` ordered for someone fixing things: failed, then red, amber, green; never loaded and older
    first; then by company and table (a company's "all tables" row before its tables)."""

    def key(row: TableFreshness) -> tuple[int, float, str, str]:
        rank = 0 if row.failure is not None else _RANK[row.status]
        age = float("inf") if row.age_seconds is None else row.age_seconds
        return rank, -age, row.company, row.table

    return sorted(rows, key=key)


def matches(row: TableFreshness, status: str | None) -> bool:
    """Whether ``row`` passes the page's status filter (None or "": every row)."""
    if not status:
        return True
    return row.failure is not None if status == "failed" else row.status == status


@dataclass(frozen=True)
class Totals:
    """The counts above the table, over every table row the page covers (company rows are summaries of
    their tables, so not counted twice), whatever the status filter and page."""

    companies: int
    tables: int
    failed: int
    red: int
    amber: int
    green: int

    @classmethod
    def of(cls, rows: Sequence[TableFreshness]) -> Totals:
        """Count ``rows`` (every row of the page's companies)."""
        tables = [r for r in rows if r.table != asof.COMPANY_ROW]
        by_status = {name: sum(1 for r in tables if r.status == name) for name in _RANK}
        return cls(
            companies=len({r.company for r in rows}),
            tables=len(tables),
            failed=sum(1 for r in tables if r.failure is not None),
            red=by_status["red"],
            amber=by_status["amber"],
            green=by_status["green"],
        )


@dataclass(frozen=True)
class Page:
    """One page of rows: ``rows`` are rows ``first``..``first + len(rows) - 1`` (1-based) of ``matching``
    rows that pass the filter, page ``number`` of ``pages``."""

    rows: list[TableFreshness]
    number: int
    pages: int
    per_page: int
    matching: int
    totals: Totals

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row among the matching rows (0 when none match)."""
        return (self.number - 1) * self.per_page + 1 if self.rows else 0


def page_of(
    rows: Sequence[TableFreshness], *, status: str | None = None, page: int = 1, per_page: int = PER_PAGE
) -> Page:
    """Page ``page`` (1-based; past the end: the last) of ``rows`` worst first, filtered by ``status``,
    with the totals of all ``rows``."""
    if status and status not in FILTERS:
        raise ValueError(f"unknown status filter {status!r}: one of {', '.join(FILTERS)}")
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    chosen = [r for r in worst_first(rows) if matches(r, status)]
    pages = max(1, -(-len(chosen) // per_page))
    number = min(max(1, page), pages)
    start = (number - 1) * per_page
    return Page(chosen[start : start + per_page], number, pages, per_page, len(chosen), Totals.of(rows))


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
p.totals{font-size:14px;margin:0 0 10px} p.totals a{color:#1f2933;text-decoration:none;margin-right:10px}
p.totals .badge{min-width:40px} p.pager{font-size:13px;color:#52606d;margin:8px 0} p.pager a{margin:0 8px}
"""


def render_page(
    rows: Sequence[TableFreshness],
    companies: Sequence[str],
    *,
    selected: str | None,
    schedule: str | None,
    now: dt.datetime,
    base_path: str,
    status: str | None = None,
    page: Page | None = None,
) -> str:
    """The whole page: the totals, a company and a status filter, one table row per company x table of
    ``rows`` (``page.rows`` when paged), and a pager when ``page`` is given."""
    options = ['<option value="">all companies</option>'] + [
        f'<option value="{html.escape(c)}"{" selected" if c == selected else ""}>{html.escape(c)}</option>'
        for c in companies
    ]
    statuses = ['<option value="">every status</option>'] + [
        f'<option value="{name}"{" selected" if name == status else ""}>{name}</option>' for name in FILTERS
    ]
    totals = page.totals if page is not None else Totals.of(rows)
    per_page = page.per_page if page is not None else PER_PAGE
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
    hidden = f'<input type="hidden" name="per_page" value="{per_page}">' if per_page != PER_PAGE else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Report freshness</title>
<style>{_STYLE}</style></head><body>
<h1>Report freshness</h1>
<p class="note">Per company and table: the source time the live rows reflect (report_as_of; "all tables": the
company's oldest), the last successful load (report_loads), the data's age against
the schedule {html.escape(str(schedule or "manual"))} (green up to {GREEN_INTERVALS}&times;, amber up to
{AMBER_INTERVALS}&times; the interval, red beyond or never), the last failure Airflow recorded since, and the last
loads: <span class="legend"><i style="background:#7aa7d9"></i>rows <i style="background:#d9822b"></i>seconds</span>.
Worst first: failed, red, amber, green, the oldest data first. As of {now:%Y-%m-%d %H:%M} UTC.</p>
{_totals_html(totals, base_path, selected, per_page)}
<form method="get" action="{html.escape(base_path, quote=True)}"><label>Company <select name="company"
onchange="this.form.submit()">{"".join(options)}</select></label> <label>Status <select name="status"
onchange="this.form.submit()">{"".join(statuses)}</select></label>{hidden} <button type="submit">Filter</button></form>
{_pager_html(page, base_path, selected, status)}
<table><thead><tr><th>company</th><th>table</th><th>last load</th><th>logical date</th><th>rows</th><th>age</th>
<th>last error</th><th>last loads</th><th>data as of</th></tr></thead><tbody>
{"".join(body) or '<tr><td colspan="9">no active company tables</td></tr>'}
</tbody></table>
{_pager_html(page, base_path, selected, status)}</body></html>"""


def _link(base_path: str, company: str | None, status: str | None, page: int, per_page: int) -> str:
    query = {"company": company or "", "status": status or "", "page": page if page > 1 else "", "per_page": per_page}
    if per_page == PER_PAGE:
        query["per_page"] = ""
    text = urlencode({k: v for k, v in query.items() if v != ""})
    return html.escape(base_path + (f"?{text}" if text else ""), quote=True)


def _totals_html(totals: Totals, base_path: str, company: str | None, per_page: int) -> str:
    counts = " ".join(
        f'<a class="total" data-total="{name}" href="{_link(base_path, company, name, 1, per_page)}">'
        f'<span class="badge {"red" if name == "failed" else name}">{getattr(totals, name):,}</span> {name}</a>'
        for name in FILTERS
    )
    return (
        f'<p class="totals" data-tables="{totals.tables}" data-companies="{totals.companies}">'
        f"{totals.tables:,} tables of {totals.companies:,} companies: {counts}</p>"
    )


def _pager_html(page: Page | None, base_path: str, company: str | None, status: str | None) -> str:
    if page is None:
        return ""
    if not page.rows:
        return '<p class="pager" data-page="1" data-pages="1">no rows match</p>'
    last = page.first + len(page.rows) - 1
    parts = [f"rows {page.first:,}&ndash;{last:,} of {page.matching:,}, page {page.number} of {page.pages}"]
    if page.number > 1:
        previous = _link(base_path, company, status, page.number - 1, page.per_page)
        parts.insert(0, f'<a rel="prev" href="{previous}">&larr; previous</a>')
    if page.number < page.pages:
        following = _link(base_path, company, status, page.number + 1, page.per_page)
        parts.append(f'<a rel="next" href="{following}">next &rarr;</a>')
    return f'<p class="pager" data-page="{page.number}" data-pages="{page.pages}">{" ".join(parts)}</p>'


def log_url(base_url: str, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The UI link to one task try's log (the same shape as Airflow's ``ti.log_url``)."""
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}/tasks/{task_id}{mapped}?try_number={try_number}"
