"""The CLI's live progress line: rows, MB and rows/s of a running extract, on a terminal only.

Piped output (a log file, another tool) gets no progress line at all, only the final table, so
nothing there has to strip carriage returns.
"""

from __future__ import annotations

import time
from typing import TextIO


class ProgressLine:
    """A callable ``(rows, csv_bytes)`` that redraws one status line at most every ``interval`` seconds.

    The extract calls it once per fetched batch; the clock check keeps that to a comparison, so the
    line costs nothing measurable. ``base_rows``/``base_bytes`` carry the totals of earlier chunks.
    """

    def __init__(self, out: TextIO, label: str, interval: float = 0.25) -> None:
        self.out = out
        self.label = label
        self.interval = interval
        self.enabled = bool(getattr(out, "isatty", lambda: False)())
        self.started = time.monotonic()
        self.shown_at = 0.0
        self.base_rows = self.base_bytes = 0
        self.rows = self.bytes = 0
        self.width = 0

    def __call__(self, rows: int, csv_bytes: int) -> None:
        self.rows, self.bytes = self.base_rows + rows, self.base_bytes + csv_bytes
        now = time.monotonic()
        if self.enabled and now - self.shown_at >= self.interval:
            self.shown_at = now
            self._draw(now)

    def next_chunk(self) -> None:
        """Keep the totals so far: the next chunk's extract counts from zero again."""
        self.base_rows, self.base_bytes = self.rows, self.bytes

    def _draw(self, now: float) -> None:
        seconds = max(now - self.started, 1e-6)
        text = (
            f"{self.label}: {self.rows:,} rows  {self.bytes / 2**20:,.1f} MB  "
            f"{self.rows / seconds:,.0f} rows/s  {seconds:,.1f} s"
        )
        self.out.write("\r" + text.ljust(self.width))
        self.out.flush()
        self.width = len(text)

    def finish(self, note: str = "") -> None:
        """Draw the final figures (plus ``note``) and end the line, if a line was drawn at all."""
        if not self.enabled:
            return
        self._draw(time.monotonic())
        self.out.write(f"  {note}\n" if note else "\n")
        self.out.flush()
