"""README's settings table, rendered from the settings' declarations (``settings.Settings``).

The table sits in README.md between two marker comments. ``make settings-table`` rewrites it
(``python -m report_pipeline.settingsdoc --write``); ``make lint`` fails while it differs from what the
declarations say (``--check``), so a setting added, renamed or re-documented in ``settings.py`` cannot be
left out of the README.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from report_pipeline.setting_values import declared
from report_pipeline.settings import Settings

BEGIN = "<!-- settings-table: generated from include/report_pipeline/settings.py by `make settings-table` -->"
END = "<!-- /settings-table -->"


def shown_default(value: Any) -> str:
    """A default as README shows it: ``on``/``off`` for flags, ``(none)`` for no value, else the value as code."""
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "`on`" if value else "`off`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def settings_table() -> str:
    """The Markdown table of every setting: variable, default, meaning, in declaration order."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for f, declaration in declared(Settings):
        default = declaration.shown if declaration.shown is not None else shown_default(f.default)
        lines.append(f"| `{declaration.env}` | {default} | {declaration.doc} |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the generated table."""
    head, begin, rest = readme.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README lacks the markers {BEGIN!r} ... {END!r} around its settings table")
    return f"{head}{BEGIN}\n{settings_table()}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """``--check``: exit 1 when README's table is not the generated one; ``--write``: rewrite it."""
    parser = argparse.ArgumentParser(prog="python -m report_pipeline.settingsdoc", description=__doc__)
    parser.add_argument("readme", nargs="?", default="README.md", type=Path)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="fail when README's settings table is out of date")
    action.add_argument("--write", action="store_true", help="rewrite README's settings table")
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = with_table(current)
    if args.write:
        if wanted != current:
            args.readme.write_text(wanted, encoding="utf-8")
            print(f"{args.readme}: settings table rewritten")
        return 0
    if wanted != current:
        print(
            f"{args.readme}: the settings table differs from include/report_pipeline/settings.py; "
            "run `make settings-table`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
