"""The load's guards against plausible-looking wrong data: a swap that empties or shrinks a table too
much, and an upsert into a table without a key (where a re-run would duplicate rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SwapGuard:
    """How much a swap may take away: emptying a non-empty table, and shrinking it by a percentage."""

    allow_empty: bool = False
    max_shrink_percent: int = 50

    def problem(self, live_rows: int, new_rows: int) -> str | None:
        """Why replacing ``live_rows`` rows by ``new_rows`` is refused, or None."""
        if live_rows == 0 or new_rows >= live_rows:
            return None
        if new_rows == 0:
            if self.allow_empty:
                return None
            return (
                f"the new data is empty and would replace {live_rows} rows (a source in maintenance or a "
                "wrong filter looks the same); if the table really is empty now, set tables.allow_empty_swap "
                "= 1 or trigger a run with allow_shrink"
            )
        lost = 100 * (live_rows - new_rows) / live_rows
        if lost > self.max_shrink_percent:
            return (
                f"the new data has {new_rows} rows and would replace {live_rows}, {lost:.0f}% fewer (at most "
                f"{self.max_shrink_percent}% allowed); if that is right, raise tables.max_shrink_percent "
                "(or REPORTS_SWAP_MAX_SHRINK_PERCENT) or trigger a run with allow_shrink"
            )
        return None


def key_problem(unique_keys: Sequence[Sequence[str]], columns: Sequence[str]) -> str | None:
    """Why an upsert into a table with these keys, loading these columns, would not be idempotent."""
    loaded = {c.lower() for c in columns}
    if any(key and {c.lower() for c in key} <= loaded for key in unique_keys):
        return None
    return (
        "has no PRIMARY or UNIQUE key made only of loaded columns, so REPLACE cannot find the rows of an "
        "earlier extract and a re-run of the same date would insert them again; add a PRIMARY KEY on the "
        "rows' identity (as the source has), or use load_mode 'swap'"
    )


def narrowest_key(unique_keys: Sequence[Sequence[str]], columns: Sequence[str]) -> tuple[str, ...] | None:
    """The PRIMARY or UNIQUE key with the fewest columns, all of them in ``columns`` (spelled as there), or None.

    What identifies a row across source and target: delete detection and reconcile compare by it.
    """
    by_name = {c.lower(): c for c in columns}
    usable = sorted((k for k in unique_keys if k and {c.lower() for c in k} <= by_name.keys()), key=len)
    return tuple(by_name[c.lower()] for c in usable[0]) if usable else None
