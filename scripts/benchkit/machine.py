"""The machine under the benchmark: how busy it is, a process's memory, the server's buffer pool, and
the environment a run records."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from benchkit.data import SRC_DB, TGT_DB
from serverkit import mysql_connect, query_one

REPO = Path(__file__).resolve().parents[2]


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux; 0 elsewhere)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def wait_for_quiet(cap_s: float) -> tuple[float, float]:
    """Wait (at most cap_s) for a second in which the machine is less than half busy, as other work on a
    shared box (tests, Airflow) would otherwise be billed to whichever contender runs. Returns the
    seconds waited and the busy fraction of the last one-second sample (Linux only; else no wait)."""
    started = time.perf_counter()
    busy = 0.0
    if not os.path.exists("/proc/stat"):
        return 0.0, busy
    while True:
        total0, idle0 = _cpu_times()
        time.sleep(1.0)
        total1, idle1 = _cpu_times()
        busy = 1.0 - (idle1 - idle0) / max(1, total1 - total0)
        if busy < 0.5 or time.perf_counter() - started >= cap_s:
            return time.perf_counter() - started, busy


def settle_source(table: str) -> None:
    """Write the source table's dirty pages to disk now (a fresh table is all dirty pages, and MariaDB 10.11
    does not flush when idle), so a later checkpoint does not bill that flushing to whichever contender runs."""
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f"FLUSH TABLES {SRC_DB}.{table} FOR EXPORT")
        cursor.execute("UNLOCK TABLES")
    finally:
        conn.close()


def settle() -> None:
    """Write out the dirty pages of every table of both bench schemas (FLUSH TABLES ... FOR EXPORT), so the
    next run is not billed for flushing what earlier steps wrote."""
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT CONCAT('`', TABLE_SCHEMA, '`.`', TABLE_NAME, '`') FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA IN (%s, %s) AND TABLE_TYPE = 'BASE TABLE' AND ENGINE = 'InnoDB'",
            (SRC_DB, TGT_DB),
        )
        tables = [str(r[0]) for r in cursor.fetchall()]
        if tables:
            cursor.execute(f"FLUSH TABLES {', '.join(tables)} FOR EXPORT")
            cursor.execute("UNLOCK TABLES")
    finally:
        conn.close()


def innodb_pages() -> tuple[int, int]:
    """Server-wide InnoDB pages read into and written from the buffer pool so far."""
    conn = mysql_connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_pages_read', 'Innodb_pages_written')")
        found = {str(k): int(v) for k, v in cursor.fetchall()}
    finally:
        conn.close()
    return found.get("Innodb_pages_read", 0), found.get("Innodb_pages_written", 0)


def environment() -> dict[str, Any]:
    """Where and on what the run happened: host, CPUs, load, Python, MariaDB and its buffer pool, git."""

    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    version = query_one("SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit")
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "mariadb": version[0],
        "innodb_buffer_pool_mb": int(version[1]) // 2**20,
        "innodb_flush_log_at_trx_commit": int(version[2]),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }
