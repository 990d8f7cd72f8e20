"""Plain-text tables for the CLI's output: aligned columns a person reads and a script can still split."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    """Print rows as an aligned plain-text table: numbers right-aligned (with thousands separators on
    a terminal only, so piped output stays machine-readable), text left-aligned."""
    out = out or sys.stdout
    human = bool(getattr(out, "isatty", lambda: False)())

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, int) and not isinstance(value, bool) and human:
            return f"{value:,}"
        return str(value)

    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float)) or r[i] in ("-", None) for r in rows)
        for i in range(len(headers))
    ]
    cells = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(
            v.rjust(w) if numeric[i] and n else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=False))
        )
        print(line.rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
