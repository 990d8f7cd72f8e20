"""Load modes: one Literal, the list derived from it, and a strategy registered for every name."""

from __future__ import annotations

from typing import get_args

import pytest

from report_pipeline.errors import TransferError
from report_pipeline.modes import shadow_names, shadow_prefixes
from report_pipeline.strategies import STRATEGIES, strategy_for
from report_pipeline.vocabulary import LOAD_MODES, LoadMode


def test_the_mode_list_is_the_literal_and_every_mode_has_a_strategy():
    assert LOAD_MODES == get_args(LoadMode)
    assert set(STRATEGIES) == set(LOAD_MODES)
    assert all(strategy_for(m).mode == m for m in LOAD_MODES)


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(TransferError, match="'merge' is not one of"):
        strategy_for("merge")


def test_shadow_names_are_reserved_and_distinct_per_table_and_per_load():
    new, old = shadow_names("orders", "a" * 64)
    assert new.startswith("_rp_new_orders_") and old.startswith("_rp_old_orders_")
    assert new.startswith(shadow_prefixes("orders")[0]) and old.startswith(shadow_prefixes("orders")[1])
    assert shadow_names("orders", "a" * 64) != shadow_names("orders2", "a" * 64)
    assert shadow_names("orders", "a" * 64) != shadow_names("orders", "b" * 64)
    # No table's prefixes are a prefix of another table's, so leftovers are dropped for one table only.
    assert not shadow_prefixes("orders2")[0].startswith(shadow_prefixes("orders")[0])
    assert all(len(n) <= 64 for n in shadow_names("x" * 64, "c" * 64))
