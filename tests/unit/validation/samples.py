"""Text shared by the validation tests: the seed's own query, and SQL-ish hostile text for Hypothesis."""

from __future__ import annotations

from hypothesis import strategies as st

SEED_SELECT = "SELECT id, username FROM users WHERE company = %s"

SQL_PIECES = [
    *"SELCTFROMWHEINTUPDAsel '\"`;%()-#/*!@:=.,\\\n\t0123456789_",
    *["SELECT ", "FROM t ", "WHERE ", "%s", "%(d)s", "%%", "/*!", "--", "UNION ", "INTO ", "SLEEP(", "FOR UPDATE"],
]
SQLISH = st.lists(st.sampled_from(SQL_PIECES), max_size=25).map("".join)
