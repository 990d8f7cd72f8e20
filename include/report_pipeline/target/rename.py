"""Swapping loaded shadow tables in: one RENAME TABLE for any number of tables (MySQL, MariaDB, Aurora).

``RENAME TABLE a TO a_old, a_new TO a, b TO b_old, b_new TO b`` is atomic across all its tables on
MySQL 8 and MariaDB: a reader sees every table at the old data or every table at the new, never a mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from report_pipeline.errors import TargetBusyError
from report_pipeline.settings import Settings
from report_pipeline.target.mysql_errors import LOCK_WAIT
from report_pipeline.validation import quote_identifier

log = logging.getLogger("report_pipeline.target.mysql")


def _name(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def swap_in(
    cursor: Any, settings: Settings, schema: str, swaps: Sequence[tuple[str, str, str]], keep_retired: bool = False
) -> int:
    """Put each (live, shadow, retired) shadow in place of its live table in ONE RENAME; then drop the old.

    Returns how many times the RENAME waited out its lock wait. A BI session holding a transaction open
    on a live table makes RENAME wait for its metadata lock, and every new reader queues behind the
    waiting RENAME. So the RENAME waits only a short ``rename_lock_wait_seconds`` at a time and, when that
    runs out (1205), tries again after a growing pause (readers get through meanwhile), up to
    ``rename_attempts`` times: the loaded shadows are kept, not reloaded. Only then does it fail, naming
    the bound that tripped. ``keep_retired``: leave the old tables for the caller to look at and drop.
    """
    import MySQLdb

    if not swaps:
        return 0
    retired = [_name(schema, r) for _, _, r in swaps]
    cursor.execute("DROP TABLE IF EXISTS " + ", ".join(retired))
    cursor.execute(f"SET SESSION lock_wait_timeout = {int(settings.rename_lock_wait_seconds)}")
    rename = "RENAME TABLE " + ", ".join(
        f"{_name(schema, live)} TO {_name(schema, old)}, {_name(schema, shadow)} TO {_name(schema, live)}"
        for live, shadow, old in swaps
    )
    shown = ", ".join(f"{schema}.{live}" for live, _, _ in swaps)
    waits = 0
    try:
        for attempt in range(1, settings.rename_attempts + 1):
            try:
                cursor.execute(rename)
                break
            except MySQLdb.OperationalError as exc:
                if not exc.args or exc.args[0] != LOCK_WAIT:
                    raise
                waits += 1
                if attempt == settings.rename_attempts:
                    raise TargetBusyError(
                        f"RENAME of {shown} waited {attempt} x {settings.rename_lock_wait_seconds} s "
                        "(REPORTS_RENAME_ATTEMPTS x REPORTS_RENAME_LOCK_WAIT) for readers holding the table "
                        "open and gave up; the live table is unchanged"
                    ) from exc
                pause = min(2 ** (attempt - 1), 30)
                log.warning(
                    "%s: RENAME waited %d s on readers' locks (try %d of %d); trying again in %d s, "
                    "keeping the loaded shadow table",
                    shown,
                    settings.rename_lock_wait_seconds,
                    attempt,
                    settings.rename_attempts,
                    pause,
                )
                time.sleep(pause)
    finally:
        cursor.execute(f"SET SESSION lock_wait_timeout = {int(settings.target_lock_wait_seconds)}")
    if not keep_retired:
        cursor.execute("DROP TABLE IF EXISTS " + ", ".join(retired))
    return waits
