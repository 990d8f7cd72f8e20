"""The DAG on the CeleryExecutor (issue 13): ``make airflow-up EXECUTOR=celery`` starts Redis and two
Celery workers, rp-worker-1 and rp-worker-2, each with its own AIRFLOW_HOME, TMPDIR and admin snapshot,
so nothing passes between them through local disk. Everything is checked the way an operator would:
where and how often the scheduler ran each task (REST API: task instances, their tries and hostnames),
and the rows in the target compared with the source window (all columns, NULL-safe).

- An extract and its load on different workers: the run's loads wait behind an empty ``reports_target``
  pool while rp-worker-1 alone consumes the queue; then rp-worker-2 alone does (Celery's own remote
  control, as when draining a worker), so every extract ran on one worker and every load on the other.
- An admin edit reaches both workers (issue 21): a query edited in the admin DB, every snapshot past its
  TTL (dated back, instead of waiting REPORTS_SNAPSHOT_TTL), a run whose extract runs on one worker and
  whose load runs on the other: the target holds the rows of the new query, and both workers' snapshots
  hold it. A run triggered at logical date = now ends green with every task green (item 7).
- A worker killed mid-load: every task of a run (globex's orders, an upsert, and events, a swap) goes to
  one worker; both loads are caught mid-transfer: the upsert has written part of its rows in its open
  transaction and waits for a row the test's locker holds; the swap has loaded its shadow table and its
  RENAME waits for a reader's open transaction on the live table. That worker is killed with SIGKILL,
  its whole process tree, as a machine that dies; the scheduler notices the missing heartbeats after
  ``[scheduler] task_instance_heartbeat_timeout`` and both loads are retried on the other worker. The
  targets must then be exact, each loaded once, with no shadow table left.

Run with ``make test-celery`` (starts the stack with a 20 s heartbeat timeout, then stops it), or with
``make test-airflow EXECUTOR=celery`` against a running Celery stack. The kill leaves that stack with one
worker: ``make airflow-up EXECUTOR=celery`` starts the missing one again.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.airflow_real.conftest import (
    assert_target_exact,
    company_id,
    loads_of_run,
    reset_targets,
    shadow_tables,
    source_db,
    source_window,
)
from tests.airflow_real.test_first_trigger import trigger_now_and_check
from tests.airflow_real.test_real_airflow import API, DAG_ID, RUN_TIMEOUT, TABLES, Api, iso, parse_time, wait_for
from tests.conftest import mysql_connect

pytestmark = [pytest.mark.airflow_real, pytest.mark.airflow_celery]

REPO = Path(__file__).resolve().parents[2]
REAL_HOME = REPO / os.environ.get("AIRFLOW_REAL_HOME", ".local/airflow-real")
COMPANY = "globex"
QUEUE = "default"  # [operators] default_queue: what the workers consume
TRANSFER_DATE = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
KILL_DATE = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
EDIT_DATE = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
SWAP_TABLE = "events"
UPSERT_TABLE = "orders"


def stack() -> dict[str, str]:
    """What scripts/airflow_local.sh up started (executor, workers, heartbeat timeout)."""
    path = REAL_HOME / "stack.env"
    assert path.exists(), f"no {path}: start the stack with make airflow-up EXECUTOR=celery"
    return dict(line.split("=", 1) for line in path.read_text().split())


def worker_pids() -> dict[str, int]:
    """The running workers' main processes by hostname, from the stack's pid files; a Celery worker
    names itself "[celeryd: <hostname>@<machine>:MainProcess]"."""
    found = {}
    for pid_file in sorted(REAL_HOME.glob("celery-worker-*.pid")):
        pid = int(pid_file.read_text().strip())
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline.startswith("[celeryd: ") and "@" in cmdline:
            found[cmdline[len("[celeryd: ") :].split("@", 1)[0]] = pid
    return found


def worker_environ(pid: int) -> dict[str, str]:
    """The environment a worker runs with. Its main process renamed itself over the memory /proc shows as
    its environment, so it is read from the first process of its tree that still shows one."""
    for member in process_tree(pid):
        try:
            raw = Path(f"/proc/{member}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        found = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        if "AIRFLOW_HOME" in found:
            return found
    pytest.fail(f"no process of worker pid {pid} shows its environment")


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it (task processes included), from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parent[int(text.split(" ", 1)[0])] = int(text.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parent.items() if ppid in frontier]
        tree += children
        frontier = children
    return tree


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Workers:
    """Celery's remote control (through the stack's Redis): which worker consumes the task queue."""

    def __init__(self, redis_port: str) -> None:
        from celery import Celery

        self.app = Celery(broker=f"redis://127.0.0.1:{redis_port}/0")
        replies = self.app.control.ping(timeout=5)
        self.nodes = {node.split("@", 1)[0]: node for reply in replies for node in reply}

    def consume(self, hostname: str, on: bool) -> None:
        control = self.app.control.add_consumer if on else self.app.control.cancel_consumer
        replies = control(QUEUE, destination=[self.nodes[hostname]], reply=True, timeout=5)
        assert replies, f"{hostname} did not answer the remote control ({'add' if on else 'cancel'}_consumer)"

    def consuming(self) -> dict[str, list[str]]:
        replies = self.app.control.inspect(timeout=5).active_queues() or {}
        return {node.split("@", 1)[0]: sorted(q["name"] for q in queues) for node, queues in replies.items()}


@pytest.fixture(scope="module")
def api() -> Api:
    info = stack()
    assert info.get("EXECUTOR") == "celery", f"the stack runs {info}: start it with make airflow-up EXECUTOR=celery"
    wait_for(f"a healthy Airflow at {API}", lambda: _healthy(), timeout=60)
    return Api(API)


def _healthy() -> bool:
    import requests

    try:
        health = requests.get(f"{API}/api/v2/monitor/health", timeout=5).json()
    except (requests.RequestException, ValueError):
        return False
    return bool(health) and all((item or {}).get("status") == "healthy" for item in health.values())


@pytest.fixture(scope="module")
def workers(api: Api) -> Iterator[Workers]:
    control = Workers(stack()["REDIS_PORT"])
    names = sorted(control.nodes)
    assert len(names) >= 2 and set(worker_pids()) >= set(names[:2]), (
        f"need two live workers; ping answered {control.nodes}, pid files show {worker_pids()}"
    )
    yield control
    for name in control.nodes:  # leave every surviving worker consuming again
        if name in worker_pids():
            control.consume(name, True)


@pytest.fixture(scope="module")
def mysql() -> Iterator[Any]:
    conn = mysql_connect(init_command="SET time_zone = '+00:00'")
    conn.autocommit(True)
    yield conn
    conn.close()


def _set_pool(api: Api, pool: str, slots: int) -> None:
    api.request(
        "PATCH",
        f"/pools/{pool}",
        params={"update_mask": ["slots"]},
        json={"pool": pool, "slots": slots, "include_deferred": False},
    )


def _trigger(api: Api, logical: dt.datetime, conf: dict[str, Any], prefix: str) -> str:
    api.delete_runs(api.runs(logical_date_gte=iso(logical), logical_date_lte=iso(logical)))
    run_id = f"{prefix}__{uuid.uuid4().hex[:8]}"
    api.request(
        "POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": iso(logical), "conf": conf}
    )
    return run_id


def _tis(api: Api, run_id: str) -> dict[str, dict[str, Any]]:
    return {ti["task_id"]: ti for ti in api.task_instances(run_id)}


def test_extract_and_load_run_on_different_workers_and_copy_exactly(api: Api, workers: Workers, mysql: Any) -> None:
    first, second = sorted(workers.nodes)[:2]
    api.settle()
    reset_targets(mysql.cursor(), [COMPANY], TABLES)
    extracts = [f"company_{COMPANY}.{t}__mysql_to_s3" for t in TABLES]
    loads = [f"company_{COMPANY}.{t}__s3_to_mysql" for t in TABLES]
    try:
        _set_pool(api, "reports_target", 0)  # the loads wait, "scheduled", until the extracts are done
        workers.consume(second, False)
        wait_for(f"{second} to stop consuming", lambda: QUEUE not in workers.consuming().get(second, [QUEUE]), 30, 1)
        run_id = _trigger(api, TRANSFER_DATE, {"companies": [COMPANY]}, "celery_split")

        def extracted() -> bool:
            tis = _tis(api, run_id)
            assert not any(tis[t]["state"] in ("failed", "upstream_failed") for t in extracts), api.explain_run(run_id)
            return all(tis[t]["state"] == "success" for t in extracts)

        wait_for("the extracts to succeed", extracted, RUN_TIMEOUT)
        # Drain the first worker, let the second take over: the loads can only run there.
        workers.consume(first, False)
        workers.consume(second, True)
        wait_for(f"only {second} consuming", lambda: _only_consumer(workers, second), 30, 1)
        _set_pool(api, "reports_target", 4)
        api.wait_run(run_id)
    finally:
        _set_pool(api, "reports_target", 4)
        workers.consume(first, True)
        workers.consume(second, True)

    tis = _tis(api, run_id)
    placement = {t: (tis[t]["hostname"], tis[t]["try_number"], tis[t]["state"]) for t in extracts + loads}
    print("\ntask placement (hostname, try, state):\n" + "\n".join(f"  {t}: {p}" for t, p in placement.items()))
    for extract, load in zip(extracts, loads, strict=True):
        assert placement[extract] == (first, 1, "success"), placement
        assert placement[load] == (second, 1, "success"), placement
    cursor = mysql.cursor()
    for table in TABLES:
        assert_target_exact(cursor, COMPANY, table, TRANSFER_DATE)
    assert shadow_tables(cursor, COMPANY) == []
    assert {t: len(rows) for t, rows in loads_of_run(cursor, COMPANY, run_id).items()} == dict.fromkeys(TABLES, 1)
    # Nothing local is shared: each worker process has its own AIRFLOW_HOME, TMPDIR and snapshot path, and
    # parsed the DAG from a snapshot of its own (written there while it ran these tasks).
    pids = worker_pids()
    places = {name: worker_environ(pids[name]) for name in (first, second)}
    for key in ("AIRFLOW_HOME", "TMPDIR", "REPORTS_SNAPSHOT_PATH"):
        paths = [Path(places[name][key]) for name in (first, second)]
        assert paths[0] != paths[1] and paths[0] not in paths[1].parents and paths[1] not in paths[0].parents, (
            key,
            paths,
        )
    for name in (first, second):
        snapshot = Path(places[name]["REPORTS_SNAPSHOT_PATH"])
        assert snapshot.is_relative_to(places[name]["AIRFLOW_HOME"]) and snapshot.is_file(), (name, snapshot)


def _only_consumer(workers: Workers, hostname: str) -> bool:
    consuming = workers.consuming()
    return QUEUE in consuming.get(hostname, []) and all(
        QUEUE not in queues for name, queues in consuming.items() if name != hostname
    )


def _blocked_rename(cursor: Any) -> bool:
    """The load's RENAME TABLE of the live table waits for the metadata lock the test's reader holds."""
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND STATE LIKE %s",
        (f"RENAME TABLE `{COMPANY}`.`{SWAP_TABLE}`%", "%metadata lock%"),
    )
    return int(cursor.fetchone()[0]) > 0


def _blocked_upsert(cursor: Any) -> int:
    """Rows the upsert load of orders already wrote in its open transaction while it waits for the row
    the test's locker holds (0 while it is not waiting there)."""
    cursor.execute(
        "SELECT trx_rows_modified FROM information_schema.INNODB_TRX "
        "WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE %s",
        (f"LOAD DATA LOCAL INFILE % INTO TABLE `{COMPANY}`.`{UPSERT_TABLE}`%",),
    )
    return max((int(r[0]) for r in cursor.fetchall()), default=0)


def _kill_tree(hostname: str) -> list[int]:
    """SIGKILL a worker and every process below it at once, as when its machine dies; returns the pids."""
    pids = worker_pids()
    assert hostname in pids, f"no live worker named {hostname}: {pids}"
    tree = process_tree(pids[hostname])
    assert len(tree) > 1, f"{hostname} (pid {pids[hostname]}) has no child processes: is it running the loads?"
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree


def test_an_admin_edit_reaches_both_workers_and_the_rows_follow_the_new_query(
    api: Api, workers: Workers, mysql: Any
) -> None:
    first, second = sorted(workers.nodes)[:2]
    table = "users"
    api.settle()
    cursor = mysql.cursor()
    reset_targets(cursor, [COMPANY], [table])
    cursor.execute(f"SELECT query_select FROM `{_admin_db()}`.`tables` WHERE name = %s", (table,))
    (original,) = cursor.fetchone()
    edited = original.replace("SELECT id, username FROM", "SELECT id, UPPER(username) AS username FROM")
    assert edited != original, original
    extract, load = f"company_{COMPANY}.{table}__mysql_to_s3", f"company_{COMPANY}.{table}__s3_to_mysql"
    try:
        cursor.execute(f"UPDATE `{_admin_db()}`.`tables` SET query_select = %s WHERE name = %s", (edited, table))
        _expire_every_snapshot()
        _set_pool(api, "reports_target", 0)  # the load waits until the extract ran on the first worker
        workers.consume(second, False)
        wait_for(f"{second} to stop consuming", lambda: QUEUE not in workers.consuming().get(second, [QUEUE]), 30, 1)
        run_id = _trigger(api, EDIT_DATE, {"companies": [COMPANY], "tables": [table]}, "celery_edit")

        def extracted() -> bool:
            state = _tis(api, run_id)[extract]["state"]
            assert state not in ("failed", "upstream_failed"), api.explain_run(run_id)
            return state == "success"

        wait_for("the extract to succeed", extracted, RUN_TIMEOUT)
        workers.consume(first, False)
        workers.consume(second, True)
        wait_for(f"only {second} consuming", lambda: _only_consumer(workers, second), 30, 1)
        _set_pool(api, "reports_target", 4)
        api.wait_run(run_id)
        tis = _tis(api, run_id)
        assert (tis[extract]["hostname"], tis[load]["hostname"]) == (first, second), tis
        # The rows of the new query, not the old one's.
        cursor.execute(f"SELECT id, username FROM `{COMPANY}`.`{table}` ORDER BY id")
        loaded = list(cursor.fetchall())
        cursor.execute(
            f"SELECT id, UPPER(username) FROM `{source_db()}`.`{table}` WHERE company = %s ORDER BY id",
            (company_id(COMPANY),),
        )
        assert loaded == list(cursor.fetchall()) and loaded
        # Each worker parsed under the TTL: its own snapshot now holds the edited query.
        pids = worker_pids()
        for name in (first, second):
            snapshot = Path(worker_environ(pids[name])["REPORTS_SNAPSHOT_PATH"])
            assert edited in snapshot.read_text(), (name, snapshot)
    finally:
        _set_pool(api, "reports_target", 4)
        workers.consume(first, True)
        workers.consume(second, True)
        cursor.execute(f"UPDATE `{_admin_db()}`.`tables` SET query_select = %s WHERE name = %s", (original, table))
        _expire_every_snapshot()


def test_a_run_triggered_now_ends_green_on_celery(api: Api, workers: Workers, mysql: Any) -> None:
    trigger_now_and_check(api, mysql)


# Last in the file: the kill leaves the stack with one worker, and the tests above need both.
def test_a_worker_killed_mid_load_is_retried_on_the_other_worker(api: Api, workers: Workers, mysql: Any) -> None:
    """Both loads of a run die with their worker mid-transfer: the upsert halfway through its rows (in its
    open transaction, waiting for a row a locker holds), the swap with its shadow table loaded and its
    RENAME waiting for a reader. The scheduler retries both on the other worker; the targets end exact."""
    heartbeat_timeout = float(stack().get("TI_HEARTBEAT_TIMEOUT", "300"))
    victim, survivor = sorted(workers.nodes)[:2]
    tables = [UPSERT_TABLE, SWAP_TABLE]
    loads = [f"company_{COMPANY}.{t}__s3_to_mysql" for t in tables]
    extracts = [f"company_{COMPANY}.{t}__mysql_to_s3" for t in tables]
    api.settle()
    cursor = mysql.cursor()
    reset_targets(cursor, [COMPANY], tables)
    # The middle row of the orders window: the upsert loads some rows before it reaches that one.
    where, params = source_window(COMPANY, UPSERT_TABLE, KILL_DATE)
    cursor.execute(f"SELECT id FROM `{source_db()}`.`{UPSERT_TABLE}` WHERE {where} ORDER BY id", params)
    ids = [r[0] for r in cursor.fetchall()]
    assert len(ids) >= 3, ids
    held = ids[len(ids) // 2]
    # One committed row of the window, as the source has it: a table with rows takes the one-transaction
    # upsert this test kills halfway (an empty one would load through a shadow: issue 24's first loads).
    cursor.execute(
        f"INSERT INTO `{COMPANY}`.`{UPSERT_TABLE}` SELECT id, user_id, amount, status, created_at "
        f"FROM `{source_db()}`.`{UPSERT_TABLE}` WHERE id = %s",
        (ids[0],),
    )

    locker, reader = mysql_connect(), mysql_connect()
    try:
        workers.consume(survivor, False)  # the run's tasks all go to the victim
        wait_for(f"only {victim} consuming", lambda: _only_consumer(workers, victim), 30, 1)
        locker.autocommit(False)
        locker.cursor().execute(
            f"INSERT INTO `{COMPANY}`.`{UPSERT_TABLE}` SELECT id, user_id, amount, status, created_at "
            f"FROM `{source_db()}`.`{UPSERT_TABLE}` WHERE id = %s",
            (held,),
        )
        reader.autocommit(False)
        reader.cursor().execute(f"SELECT COUNT(*) FROM `{COMPANY}`.`{SWAP_TABLE}`")
        run_id = _trigger(api, KILL_DATE, {"companies": [COMPANY], "tables": tables}, "celery_kill")

        def both_blocked() -> tuple[int, list[str]] | None:
            tis = _tis(api, run_id)
            bad = [t for t in extracts + loads if tis[t]["state"] in ("failed", "up_for_retry", "upstream_failed")]
            assert not bad and tis[loads[0]]["state"] != "success", api.explain_run(run_id)
            if not all(tis[t]["state"] == "running" and tis[t]["hostname"] for t in loads):
                return None
            written = _blocked_upsert(cursor)
            shadows = shadow_tables(cursor, COMPANY)
            return (written, shadows) if written and _blocked_rename(cursor) else None

        written, shadows = wait_for("both loads to wait mid-transfer", both_blocked, RUN_TIMEOUT, 0.5)
        tis = _tis(api, run_id)
        assert {tis[t]["hostname"] for t in extracts + loads} == {victim}, {t: tis[t]["hostname"] for t in tis}
        assert any(s.startswith(f"_rp_new_{SWAP_TABLE}_") for s in shadows), shadows  # loaded, not swapped in
        workers.consume(survivor, True)  # the retries can only go there: the victim is about to die
        tree = _kill_tree(victim)
        killed_at = dt.datetime.now(dt.UTC)
        wait_for(f"{victim}'s processes to be gone", lambda: not any(alive(p) for p in tree), 30, 0.2)
    finally:
        for conn in (locker, reader):
            conn.rollback()
            conn.close()
        workers.consume(survivor, True)

    run = api.wait_run(run_id, timeout=heartbeat_timeout + RUN_TIMEOUT)
    assert run["state"] == "success"
    tis = _tis(api, run_id)
    lines = [f"extract {t}: {tis[t]['hostname']} (try {tis[t]['try_number']})" for t in extracts]
    lines.append(f"killed {victim} at {iso(killed_at)}: orders load had written {written} rows, shadow {shadows}")
    for task in loads:
        tries = api.tries(run_id, task)
        retried = tries[-1]
        retry_started = parse_time(retried["start_date"])
        assert retry_started is not None
        waited = (retry_started - killed_at).total_seconds()
        lines += [
            f"{task} try {t['try_number']}: {t['hostname']} {t['state']} {t['start_date']} -> {t['end_date']}"
            for t in tries
        ]
        lines.append(f"{task}: retry started {waited:.1f} s after the kill")
        # What the scheduler did: try 1 on the killed worker, not successful; try 2 on the survivor, successful.
        assert [t["try_number"] for t in tries] == [1, 2], tries
        assert tries[0]["hostname"] == victim and tries[0]["state"] != "success", tries
        assert retried["hostname"] == survivor and retried["state"] == "success", tries
        assert tis[task]["try_number"] == 2 and tis[task]["hostname"] == survivor
        assert retry_started > killed_at
    lines.append(f"(task_instance_heartbeat_timeout {heartbeat_timeout:.0f} s)")
    print("\n" + "\n".join(lines))
    # The targets: exactly the source windows, each loaded once, no shadow or retired table left behind.
    for table in tables:
        assert_target_exact(cursor, COMPANY, table, KILL_DATE)
    assert shadow_tables(cursor, COMPANY) == []
    ledger = loads_of_run(cursor, COMPANY, run_id)
    assert {t: [m for _, _, m in rows] for t, rows in ledger.items()} == {
        UPSERT_TABLE: ["upsert"],
        SWAP_TABLE: ["swap"],
    }


def _admin_db() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ["AIRFLOW_CONN_REPORTS_ADMIN_DB"]).path.lstrip("/") or "reports_admin"


def _expire_every_snapshot() -> list[Path]:
    """Date back the DAG processor's and every worker's snapshot past any TTL: what waiting
    REPORTS_SNAPSHOT_TTL seconds after an admin edit would do."""
    found = [REAL_HOME / "report_pipeline" / "admin_snapshot.json", *REAL_HOME.glob("workers/*/report_pipeline/*.json")]
    for path in found:
        if path.exists():
            os.utime(path, (0, 0))
    return found
