"""The bookkeeping rules that read only values (records.py): which as-of a load keeps, and the company's row."""

from __future__ import annotations

import datetime as dt

from report_pipeline.records import COMPANY_ROW, AsOf, as_of_moves, company_as_of, utc_naive

T1 = dt.datetime(2026, 11, 26, 6)
T2 = dt.datetime(2026, 11, 27, 6)


def as_of(table: str, moment: dt.datetime | None) -> AsOf:
    return AsOf(table, moment, moment, moment, "run", "key")


def test_an_upsert_only_moves_the_as_of_forward_and_a_swap_sets_it_whatever_it_was():
    assert as_of_moves(None, as_of("t", T1), replace=False)
    assert as_of_moves(T1, as_of("t", T2), replace=False)
    assert not as_of_moves(T2, as_of("t", T1), replace=False)
    assert as_of_moves(T2, as_of("t", T1), replace=True)


def test_the_company_row_is_the_oldest_of_its_tables_and_empty_while_one_never_loaded():
    rows = [as_of("orders", T2), as_of("users", T1), as_of("old_table", dt.datetime(2020, 1, 1))]
    oldest = company_as_of(rows, ["orders", "USERS"])
    assert (oldest.table_name, oldest.data_as_of) == (COMPANY_ROW, T1)
    assert company_as_of(rows, None).data_as_of == dt.datetime(2020, 1, 1)
    assert company_as_of(rows, ["orders", "users", "events"]).data_as_of is None
    assert company_as_of([as_of("orders", None)], None).data_as_of is None


def test_bookkeeping_times_are_utc_without_a_zone():
    moment = dt.datetime(2026, 11, 26, 8, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert utc_naive(moment) == dt.datetime(2026, 11, 26, 6)
    assert utc_naive(T1) is T1
