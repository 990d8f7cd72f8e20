"""Raw admin-row values read into typed ones, each refusal naming the column (used by ``config`` and
``tablespec``, which alone see raw rows)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from report_pipeline.errors import ConfigError

# About 100 years: more cannot be meant, and a window must stay inside the calendar (year >= 1).
MAX_LOOKBACK_DAYS = 36_600

# ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits, which int() rejects
# or misreads, and at most 18 of them, so a huge value is an error rather than an enormous number.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")

Row = Mapping[str, Any]


def as_int(value: Any, what: str) -> int:
    """A whole number (an int, or ASCII digits in text); ConfigError naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if _WHOLE_NUMBER.fullmatch(text.strip()):
            return int(text.strip())
        shown = repr(text) if len(text) <= 80 else repr(text[:80]) + f"... ({len(text)} characters)"
        raise ConfigError(f"{what} must be a whole number, got {shown}")
    raise ConfigError(f"{what} must be a whole number, got {value!r}")


def as_text(value: Any) -> str | None:
    """Text (bytes decoded as UTF-8), or None for NULL."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def as_flag(value: Any, what: str) -> bool:
    """A 0/1 column (NULL and empty are 0); ConfigError naming ``what`` otherwise."""
    if value in (None, "", 0, b"0", "0", b"\x00"):
        return False
    if value in (1, b"1", "1", b"\x01", True):
        return True
    raise ConfigError(f"{what} must be 0 or 1, got {value!r}")


def as_days(value: Any, what: str) -> int:
    """A number of days between 0 and MAX_LOOKBACK_DAYS (NULL is 0)."""
    days = 0 if value is None else as_int(value, what)
    if not 0 <= days <= MAX_LOOKBACK_DAYS:
        raise ConfigError(f"{what} must be between 0 and {MAX_LOOKBACK_DAYS}, got {days}")
    return days
