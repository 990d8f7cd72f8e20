"""The freshness page's chart of a table's last loads (rows as bars, load seconds as a line, inline SVG)
and its age text; apart from ``freshness`` so each module stays small. ``freshness`` re-exports both."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from report_pipeline.ledger import LoadRecord


def human_age(seconds: float | None) -> str:
    """``3 min``, ``5.2 h``, ``4.0 d``; ``never`` for None."""
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 86400 * 2 else f"{seconds / 86400:.1f} d"


def chart_svg(loads: Sequence[LoadRecord], durations: Mapping[str, float], width: int = 220) -> str:
    """Bars of rows per load (oldest left) and a line of load seconds, as an inline SVG."""
    height, pad = 44, 2
    points = list(reversed(loads))
    if not points:
        return f'<svg class="chart" width="{width}" height="{height}"></svg>'
    step = (width - 2 * pad) / len(points)
    top_rows = max(r.rows_loaded for r in points) or 1
    secs = [durations.get(r.run_id) for r in points]
    top_secs = max((s for s in secs if s is not None), default=0.0) or 1.0
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="rows and seconds">']
    for i, r in enumerate(points):
        h = max(1.0, (height - 2 * pad) * r.rows_loaded / top_rows)
        x = pad + i * step
        title = html.escape(f"{r.logical_date:%Y-%m-%d %H:%M}: {r.rows_loaded} rows")
        if secs[i] is not None:
            title += f", {secs[i]:.1f} s"
        parts.append(
            f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
            f'fill="#7aa7d9"><title>{title}</title></rect>'
        )
    line = [
        f"{pad + (i + 0.5) * step:.1f},{height - pad - (height - 2 * pad) * s / top_secs:.1f}"
        for i, s in enumerate(secs)
        if s is not None
    ]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#d9822b" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)
