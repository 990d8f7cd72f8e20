"""The seed's parameter conventions, parsed into data and never evaluated.

The seed stored ``params_select`` as references such as ``company[1]`` or ``date`` and ``params_insert``
as a Python expression that its Lambda ran through ``eval``. Here references are parsed by a small
grammar and bound as driver parameters; ``params_insert`` is ignored because LOAD DATA carries the
values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from report_pipeline.errors import ConfigError

# The companies row as the seed's Lambda saw it: SELECT * FROM companies.
COMPANY_FIELDS = ("id", "company_id", "status", "alias")
NAMED_PARAMETERS = frozenset({"company_id", "alias", "date_from", "date_to"})

# ASCII digits only (\d would also accept other scripts' digits), and few of them: int() refuses
# strings of more than 4,300 digits with a ValueError, which would escape as a crash, not a row error.
# fullmatch, because '$' also matches before a trailing newline.
_REFERENCE = re.compile(r"company\[(?P<index>[0-9]{1,9})\]|(?P<date>date)")


@dataclass(frozen=True)
class Reference:
    """One entry of a legacy ``params_select`` list."""

    kind: Literal["company", "date"]
    index: int = 0

    def describe(self) -> str:
        """The reference as written in the admin row, e.g. ``company[1]``."""
        return f"company[{self.index}]" if self.kind == "company" else "date"


def parse_params_select(text: str | None) -> tuple[Reference, ...]:
    """Parse a seed-era ``params_select`` such as ``company[1],date`` into references.

    An empty or NULL value means no positional parameters. Anything that is not a known reference
    (Python code, unknown names, out-of-range indexes) raises ConfigError naming the entry.
    """
    if text is None or not text.strip():
        return ()
    references = []
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        match = _REFERENCE.fullmatch(entry)
        if match is None:
            raise ConfigError(
                f"params_select entry {position} {entry[:80]!r} is not a known reference; "
                f"use company[0..{len(COMPANY_FIELDS) - 1}] or date"
            )
        if match.group("date"):
            references.append(Reference("date"))
            continue
        index = int(match.group("index"))
        if index >= len(COMPANY_FIELDS):
            raise ConfigError(
                f"params_select entry {position} {entry[:80]!r}: a companies row has {len(COMPANY_FIELDS)} "
                f"fields {COMPANY_FIELDS}, index {index} does not exist"
            )
        references.append(Reference("company", index))
    return tuple(references)
