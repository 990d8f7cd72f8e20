"""MySQL (and MariaDB, Aurora MySQL) error numbers the pipeline tells apart: the one home of such numbers.

Source-side code (the governor, the horizon, the extract, the session bounds) reads them from here too,
so no module outside ``target/`` spells a MySQL error number (tests/unit/test_engine_sql.py).
"""

from __future__ import annotations

from typing import Any

NO_SUCH_SCHEMA = 1049  # ER_BAD_DB_ERROR
NO_SUCH_COLUMN = 1054  # ER_BAD_FIELD_ERROR
DUPLICATE_COLUMN = 1060  # ER_DUP_FIELDNAME
DUPLICATE_KEY_NAME = 1061  # ER_DUP_KEYNAME (an index of that name exists)
DUPLICATE_KEY = 1062  # ER_DUP_ENTRY
PARSE_ERROR = 1064  # ER_PARSE_ERROR
UNKNOWN_TABLE = 1109  # ER_UNKNOWN_TABLE (an information_schema view the server lacks)
NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE
LOCK_WAIT = 1205  # ER_LOCK_WAIT_TIMEOUT
# Access denied: a missing global privilege, a missing table privilege, a missing schema privilege.
ACCESS_DENIED = frozenset({1227, 1142, 1044})
# A statement's time bound tripped: MariaDB max_statement_time, MySQL max_execution_time.
QUERY_TIMEOUTS = frozenset({1969, 3024})
# The client lost the server (CR_SERVER_GONE_ERROR, CR_SERVER_LOST), including its read/write timeout.
SILENT_PEER = frozenset({2006, 2013})
# What a read of an optional bookkeeping table meets before the table (or schema) was created.
NOT_THERE = frozenset({NO_SUCH_TABLE, NO_SUCH_SCHEMA})


def code_of(error: BaseException) -> Any:
    """The server's error number of a driver error (its first argument), or None."""
    args = getattr(error, "args", None) or (None,)
    return args[0]
