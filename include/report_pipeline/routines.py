"""Stored functions an admin query calls, and whether they can be shown to only read.

The source runs every extract in a READ ONLY transaction: a stored function that writes (an audit
insert, a counter) makes the server refuse the query on every run, while the query itself looks like
any SELECT. ``validate`` therefore warns about each stored function a query calls that it cannot prove
read-only: declared ``MODIFIES SQL DATA``, a body that holds a writing statement, or a body the
account may not read. A warning, not an error: the body may be harmless, and the server decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_SYSTEM = ("mysql", "sys", "information_schema", "performance_schema")
# Statements that write (or run other code that may): any of them in a body means "not proven read-only".
_WRITES = re.compile(
    r"\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|TRUNCATE|RENAME|CALL|GRANT|REVOKE|LOAD|HANDLER|LOCK|"
    r"PREPARE|EXECUTE|DO|FLUSH|KILL|COMMIT|ROLLBACK|START|BEGIN\s+WORK)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Routine:
    """A stored function visible to the source account."""

    schema: str
    name: str
    data_access: str
    body: str | None

    def write_reason(self) -> str | None:
        """Why this function may write, or None when its body shows it only reads."""
        if self.data_access.upper() == "MODIFIES SQL DATA":
            return "is declared MODIFIES SQL DATA"
        if self.body is None:
            return "has a body this account may not read, so it cannot be shown to only read"
        found = _WRITES.search(self.body)
        if found:
            return f"has a {found.group(1).upper()} statement in its body"
        return None


def stored_functions(cursor: Any) -> list[Routine]:
    """Every stored function of a non-system schema the connection's account can see."""
    placeholders = ", ".join(["%s"] * len(_SYSTEM))
    cursor.execute(
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, SQL_DATA_ACCESS, ROUTINE_DEFINITION FROM information_schema.ROUTINES "
        f"WHERE ROUTINE_TYPE = 'FUNCTION' AND ROUTINE_SCHEMA NOT IN ({placeholders})",
        _SYSTEM,
    )
    return [Routine(str(s), str(n), str(a or ""), None if b is None else str(b)) for s, n, a, b in cursor.fetchall()]


def called(query: str, routines: Sequence[Routine], current_schema: str | None) -> list[Routine]:
    """The functions ``query`` calls: ``schema.name(`` for any schema, bare ``name(`` in the current one."""
    found = []
    for routine in routines:
        name = re.escape(routine.name)
        qualified = rf"`?{re.escape(routine.schema)}`?\s*\.\s*`?{name}`?\s*\("
        bare = rf"(?<![\w$.`])`?{name}`?\s*\("
        same_schema = current_schema is not None and routine.schema.lower() == current_schema.lower()
        if re.search(qualified, query, re.IGNORECASE) or (same_schema and re.search(bare, query, re.IGNORECASE)):
            found.append(routine)
    return found


def write_warnings(query: str, routines: Sequence[Routine], current_schema: str | None) -> list[str]:
    """One warning per called function that may write, naming it and why."""
    warnings = []
    for routine in called(query, routines, current_schema):
        reason = routine.write_reason()
        if reason:
            warnings.append(
                f"the query calls stored function `{routine.schema}`.`{routine.name}`, which {reason}; the source "
                "runs extracts in a READ ONLY transaction, where a function that writes fails the query on every run"
            )
    return warnings
