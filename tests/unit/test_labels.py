"""A table is named one way in messages: ``config.table_label`` (defined in ``tablespec``)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from report_pipeline.config import table_label
from report_pipeline.load import LoadRequest
from report_pipeline.validation import InsertTarget

ROOT = Path(__file__).resolve().parents[2]


def test_the_label_names_company_table_and_admin_row_when_known():
    assert table_label("acme", "orders", 2) == "company 'acme' table 'orders' (tables row id=2)"
    assert table_label("acme", "orders") == "company 'acme' table 'orders'"
    assert table_label(None, "orders", 2) == "table 'orders' (tables row id=2)"


def test_a_load_outside_the_plan_names_its_table_the_same_way():
    request = LoadRequest(
        company="acme",
        schema="acme",
        target=InsertTarget("orders", ("id",), "replace"),
        load_mode="upsert",
        bucket=None,  # type: ignore[arg-type]
        manifest_keys=(),
        success_key="",
        logical_date=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
        run_id="r",
    )
    assert request.label == table_label("acme", "orders")


def test_no_other_module_spells_a_table_label():
    # "company {alias!r} table {name!r}" or "company {alias!r} {spec.where}" built by hand.
    by_hand = re.compile(r"company \{[^}]*\}:? ?(?:table \{|\{[^}]*\.where\})")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in (ROOT / "include").rglob("*.py")
        if path.name != "tablespec.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert not found, "table labels spelled outside config.table_label:\n" + "\n".join(found)
