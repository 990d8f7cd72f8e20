"""The freshness page's order, filter, pages and totals (``freshness.worst_first``, ``page_of``, ``Totals``),
on rows built in memory; the same over real ledgers is tests/integration/test_freshness_view.py."""

from __future__ import annotations

import datetime as dt

import pytest

from report_pipeline import freshness

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def _row(
    company: str, table: str, status: freshness.Status, hours: float | None, failed: bool = False
) -> freshness.TableFreshness:
    row = freshness.TableFreshness(company, table, table, status=status)
    row.age_seconds = None if hours is None else hours * 3600
    if failed:
        row.failure = freshness.Failure(f"company_{company}.{table}__s3_to_mysql", "r", None, 4, "http://log")
    return row


ROWS = [
    _row("a", "t1", "green", 2),
    _row("a", "t2", "amber", 40),
    _row("a", "t3", "red", None),
    _row("b", "t1", "green", 3, failed=True),
    _row("b", "t2", "red", 80),
    _row("b", "t3", "red", 200),
    _row("b", "*", "red", 200),
    _row("c", "t1", "green", 2),
]


def _keys(rows: list[freshness.TableFreshness]) -> list[tuple[str, str]]:
    return [(r.company, r.table) for r in rows]


def test_worst_first_is_failed_red_amber_green_oldest_first() -> None:
    assert _keys(freshness.worst_first(ROWS)) == [
        ("b", "t1"),  # failed, though green
        ("a", "t3"),  # red, never loaded
        ("b", "*"),  # red, 200 h: the company row before its table
        ("b", "t3"),
        ("b", "t2"),  # red, 80 h
        ("a", "t2"),  # amber
        ("a", "t1"),  # green, 2 h each: by company
        ("c", "t1"),
    ]


def test_pages_filters_and_totals() -> None:
    first = freshness.page_of(ROWS, per_page=3)
    assert (first.number, first.pages, first.matching, first.first) == (1, 3, 8, 1)
    last = freshness.page_of(ROWS, page=3, per_page=3)
    assert _keys(last.rows) == [("a", "t1"), ("c", "t1")] and last.first == 7
    assert freshness.page_of(ROWS, page=7, per_page=3).number == 3  # past the end: the last
    red = freshness.page_of(ROWS, status="red")
    assert _keys(red.rows) == [("a", "t3"), ("b", "*"), ("b", "t3"), ("b", "t2")]
    assert _keys(freshness.page_of(ROWS, status="failed").rows) == [("b", "t1")]
    # The totals count tables (not the company row), whatever the filter.
    assert red.totals == freshness.Totals(companies=3, tables=7, failed=1, red=3, amber=1, green=3)
    assert freshness.page_of(ROWS, per_page=10_000).per_page == freshness.MAX_PER_PAGE
    empty = freshness.page_of([], status="amber")
    assert (empty.rows, empty.number, empty.pages, empty.first) == ([], 1, 1, 0)
    with pytest.raises(ValueError, match="stale"):
        freshness.page_of(ROWS, status="stale")


def test_the_rendered_pager_keeps_the_filters_in_its_links() -> None:
    page = freshness.page_of(ROWS, status="red", page=2, per_page=2)
    html = freshness.render_page(
        page.rows, ["a", "b", "c"], selected="b", schedule="@daily", now=NOW, base_path="/p/", status="red", page=page
    )
    assert '<a rel="prev" href="/p/?company=b&amp;status=red&amp;per_page=2">' in html
    assert "next" not in html.split('class="pager"')[1].split("</p>")[0]  # the last page
    assert 'data-total="green" href="/p/?company=b&amp;status=green&amp;per_page=2"' in html
    none = freshness.page_of([r for r in ROWS if r.status != "amber"], status="amber")
    html = freshness.render_page([], [], selected=None, schedule=None, now=NOW, base_path="/p/", page=none)
    assert "no rows match" in html and 'rel="next"' not in html
