"""The registry of load modes: each name of ``vocabulary.LoadMode`` -> its strategy class.

Apart from ``modes`` so that a strategy living in a package of its own (``incremental.strategy``, which
builds on ``modes.Upsert``) is registered without ``modes`` importing it back.
"""

from __future__ import annotations

from report_pipeline.errors import TransferError
from report_pipeline.incremental.strategy import Incremental
from report_pipeline.modes import LoadStrategy, Swap, Upsert
from report_pipeline.vocabulary import LOAD_MODES, LoadMode

STRATEGIES: dict[LoadMode, type[LoadStrategy]] = {s.mode: s for s in (Upsert, Swap, Incremental)}


def strategy_for(mode: str) -> type[LoadStrategy]:
    """The strategy class of a load mode; TransferError for a name not in ``LOAD_MODES``."""
    try:
        return STRATEGIES[mode]  # type: ignore[index]
    except KeyError:
        raise TransferError(f"load_mode {mode!r} is not one of {LOAD_MODES}") from None
