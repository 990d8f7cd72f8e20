"""Issue 7, faults: a server dies in the middle of a transfer, Airflow retries, and the result is exact.

The local MariaDB and SeaweedFS servers are shared with other engineers' tests, so they are never
stopped. The faulty side of each transfer connects through ``tests.faults.proxy.FaultProxy`` instead,
and the test cuts it: every open connection is closed and new ones are refused until ``restore()``.
A client cannot tell that from its server process dying, which is the fault the issue describes.
Cuts are armed to fire after a byte count (40 % of the data) or on a statement's text, so "in the
middle of" is deterministic, and each test checks the cut happened where it meant it to.

After a failed attempt the test retries the way Airflow does: it calls the same task function again
(``report_pipeline.tasks.extract_table`` / ``load_table``) after the seed Retrier's delay
(``SeedRetrier().delay(n)``: 1 s after the first failure). The server is back by then, so the first
retry must succeed. What a user would check afterwards: the target equals the source (count and a
NULL-aware CRC32 fingerprint over every column), ``report_loads`` has one row for the load, no
``_rp_new_*`` / ``_rp_old_*`` table and no unfinished multipart upload is left, the parts under the
prefix are exactly the manifest's, and the failed attempt's reason is in the log.

The S3 clients the tests build make one attempt per request (botocore's own retries off), so a cut
fails the task at once and the retry under test is the Airflow-level one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import MySQLdb
import pytest
from tests.conftest import execute, mysql_connect, s3_client
from tests.faults.proxy import FaultProxy

from report_pipeline import tasks
from report_pipeline.airflow.retry import MAX_ATTEMPTS, SeedRetrier
from report_pipeline.config import Company, TableSpec, build_table
from report_pipeline.load import LoadResult
from report_pipeline.manifest import Manifest, extract_prefix, new_extract_id, table_prefix
from report_pipeline.modes import shadow_prefixes
from report_pipeline.settings import Settings

# Imported at module level on purpose too: importing Airflow configures logging, which must happen
# before caplog installs its handler, or the engine's failure lines bypass caplog.
pytestmark = pytest.mark.integration

T = TypeVar("T")

ROWS = 200_000
PART_BYTES = 1024 * 1024
LOGICAL_DATE = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
COLUMNS = ("id", "name", "amount", "ratio", "created", "day", "flag", "payload", "note", "bits")
SOURCE_DDL = """CREATE TABLE big (
  id INT NOT NULL PRIMARY KEY,
  name VARCHAR(64) CHARACTER SET utf8mb4 NULL,
  amount DECIMAL(18,4) NULL,
  ratio DOUBLE NULL,
  created DATETIME(6) NULL,
  day DATE NULL,
  flag TINYINT NULL,
  payload VARBINARY(32) NULL,
  note TEXT CHARACTER SET utf8mb4 NULL,
  bits BIT(8) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
# Gen-style mixed values: text with quotes, commas, newlines and emoji, NULLs in every column,
# exact decimals, doubles, microsecond datetimes, binary with every awkward byte, BIT.
SOURCE_FILL = f"""INSERT INTO big
SELECT seq,
  IF(seq % 17 = 0, NULL, CONCAT('user ', seq, IF(seq % 5 = 0, ', "quoted"', ''), IF(seq % 7 = 0, '\n😀', ''))),
  IF(seq % 13 = 0, NULL, (seq * 7919 % 1000000) / 10000 - 50),
  IF(seq % 11 = 0, NULL, seq / 7e0),
  IF(seq % 19 = 0, NULL, TIMESTAMP('2026-01-01') + INTERVAL seq * 37 SECOND + INTERVAL seq % 999999 MICROSECOND),
  IF(seq % 23 = 0, NULL, DATE('2020-01-01') + INTERVAL seq % 2000 DAY),
  IF(seq % 29 = 0, NULL, seq % 256 - 128),
  IF(seq % 31 = 0, NULL, UNHEX(CONCAT(LPAD(HEX(seq), 8, '0'), '005C220D0A2C'))),
  IF(seq % 3 = 0, NULL, REPEAT(CONCAT('note ', seq % 97, ' \\\\ ,'), 1 + seq % 4)),
  IF(seq % 37 = 0, NULL, seq % 256)
FROM (SELECT CAST(seq AS SIGNED) AS seq FROM seq_1_to_{ROWS}) AS generated"""


# --- the world: one source table per module, a fresh bucket and target schema per test ------------


def fingerprint(schema: str, table: str = "big") -> tuple[int, int, int]:
    """(rows, BIT_XOR, SUM) of a CRC32 over every column, with NULL distinct from any value."""
    parts = ", ".join(f"CONCAT(ISNULL(`{c}`), ':', IFNULL(`{c}`, ''))" for c in COLUMNS)
    conn = mysql_connect(schema)
    cursor = conn.cursor()
    cursor.execute(
        f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('|', {parts}))), SUM(CRC32(CONCAT_WS('|', {parts}))) FROM `{table}`"
    )
    rows, xor, total = cursor.fetchone()
    conn.close()
    return int(rows), int(xor or 0), int(total or 0)


def query(schema: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = mysql_connect(schema)
    cursor = conn.cursor()
    cursor.execute(sql, args)
    rows = list(cursor.fetchall())
    conn.close()
    return rows


@pytest.fixture(scope="module")
def source_db() -> Iterator[str]:
    name = f"flt_src_{uuid.uuid4().hex[:8]}"
    root = mysql_connect()
    execute(root, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        conn = mysql_connect(name)
        try:
            execute(conn, SOURCE_DDL, SOURCE_FILL)
        finally:
            conn.close()  # an open transaction would hold the lock DROP DATABASE waits for
        yield name
    finally:
        execute(root, f"DROP DATABASE IF EXISTS `{name}`")
        root.close()


@pytest.fixture(scope="module")
def source_print(source_db: str) -> tuple[int, int, int]:
    printed = fingerprint(source_db)
    assert printed[0] == ROWS
    return printed


@pytest.fixture
def target_db(scratch_db: str, source_db: str) -> str:
    """The company's target schema, with the table created like the source's (as onboarding does)."""
    execute(mysql_connect(scratch_db), f"CREATE TABLE big LIKE `{source_db}`.big")
    return scratch_db


@pytest.fixture
def local_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A private temp dir for the load's part files, so leftovers are ours alone to count."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


class Connections:
    """The ``connections.Connections`` the tests run with: each side direct, or through a fault proxy."""

    def __init__(
        self, source_db: str, source_port: int | None = None, target_port: int | None = None, s3_port: int | None = None
    ) -> None:
        self.source_db = source_db
        self.source_port = source_port
        self.target_port = target_port
        self.s3_port = s3_port

    def _mysql(self, port: int | None, db: str, **extra: Any) -> Any:
        options = {"local_infile": 0, "init_command": "SET time_zone = '+00:00'", **extra}
        return mysql_connect(db, port=port or int(os.environ["REPORTS_MYSQL_PORT"]), **options)

    def source(self) -> Any:
        return self._mysql(self.source_port, self.source_db)

    def target(self) -> Any:
        return self._mysql(self.target_port, "", local_infile=1)

    def s3(self) -> Any:
        from botocore.config import Config

        port = self.s3_port or int(os.environ["REPORTS_S3_PORT"])
        return s3_client(
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def protected_schemas(self) -> dict[str, str]:
        return {}  # these tests' schemas are scratch schemas of their own


def company(bucket: str, schema: str) -> Company:
    return Company(
        id=1,
        company_id=1,
        status=1,
        alias="flt",
        bucket=bucket,
        schema=schema,
        lookback_days=1,
        lookback_source="default",
    )


def spec(load_mode: str = "upsert") -> TableSpec:
    columns = ", ".join(COLUMNS)
    return build_table(
        {
            "id": 1,
            "name": "big",
            "query_select": f"SELECT {columns} FROM big",
            "params_select": "",
            "query_insert": f"REPLACE INTO big ({columns}) VALUES",
            "load_mode": load_mode,
            "status": 1,
            # One company in these tests: the query reads only its rows, so it need not bind the company.
            "all_companies": 1,
        }
    )


SETTINGS = Settings(part_bytes=PART_BYTES)


def do_extract(conns: Connections, bucket: str, target: str, mode: str = "upsert") -> Manifest:
    # The spec the load runs too: a load refuses an extract made under another table spec.
    return tasks.extract_table(conns, SETTINGS, company(bucket, target), spec(mode), LOGICAL_DATE, "run-1")


def do_load(
    conns: Connections,
    bucket: str,
    target: str,
    manifest: Manifest,
    mode: str = "upsert",
    settings: Settings = SETTINGS,
) -> LoadResult:
    return tasks.load_table(conns, settings, company(bucket, target), spec(mode), [manifest.ref], LOGICAL_DATE, "run-1")


def like_airflow(
    attempt: Callable[[], T], proxy: FaultProxy, after_failure: Callable[[BaseException], None] | None = None
) -> tuple[T, list[BaseException]]:
    """Call ``attempt`` until it succeeds, at most 1 + 3 times, waiting the seed Retrier's delays.

    ``after_failure`` inspects what a failed attempt left behind; then the faulty server "comes
    back" (the proxy is restored) and the wait starts. Returns the result and the failures.
    """
    failures: list[BaseException] = []
    for try_number in range(1, MAX_ATTEMPTS + 2):
        try:
            return attempt(), failures
        except Exception as exc:
            failures.append(exc)
            if try_number > MAX_ATTEMPTS:
                raise
            if after_failure is not None:
                after_failure(exc)
            proxy.restore()
            time.sleep(SeedRetrier().delay(try_number).total_seconds())
    raise AssertionError("unreachable")


def assert_recovered(source_db: str, target: str, bucket: str, manifest: Manifest, source_print: Any) -> None:
    """Everything a user checks after a fault and its retries."""
    assert fingerprint(target) == source_print, "target differs from source"
    loads = query(target, "SELECT table_name, run_id, rows_loaded FROM report_loads")
    assert loads == [("big", "run-1", ROWS)], "exactly one report_loads row per successful load"
    leftovers = query(
        "information_schema",
        "SELECT TABLE_NAME FROM TABLES WHERE TABLE_SCHEMA = %s AND (TABLE_NAME LIKE '\\_rp\\_new\\_%%' "
        "OR TABLE_NAME LIKE '\\_rp\\_old\\_%%')",
        (target,),
    )
    assert leftovers == [], "no shadow or retired table is left behind"
    s3 = s3_client()
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "no unfinished multipart upload"
    prefix = table_prefix("big", LOGICAL_DATE)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    stored = sorted(o["Key"] for o in listed.get("Contents", ()))
    assert stored == sorted([p.key for p in manifest.parts] + [manifest.key, f"{prefix}/_SUCCESS"])
    assert manifest.rows == ROWS


def pipeline_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("rp-upload", "rp-compress"))]


def logged_failure(caplog: pytest.LogCaptureFixture, step: str, reason: str) -> bool:
    return any(
        r.levelno >= logging.ERROR and f"{step} of " in r.getMessage() and reason in r.getMessage()
        for r in caplog.records
    )


class Reader(threading.Thread):
    """Counts the live table's rows over and over, as a BI tool would, while a swap runs."""

    def __init__(self, schema: str) -> None:
        super().__init__(daemon=True)
        self.schema = schema
        self.counts: set[int] = set()
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = mysql_connect(self.schema)
        conn.autocommit(True)
        cursor = conn.cursor()
        while not self.stop.is_set():
            try:
                cursor.execute("SELECT COUNT(*) FROM big")
                self.counts.add(int(cursor.fetchone()[0]))
            except MySQLdb.Error as exc:
                self.errors.append(str(exc))
            time.sleep(0.02)
        conn.close()

    def __enter__(self) -> Reader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def stale_target(target: str, with_gone_rows: bool) -> tuple[int, int, int]:
    """Give the target old data: changed values for some source ids (and rows the source lacks)."""
    conn = mysql_connect(target)
    execute(conn, f"INSERT INTO big (id, name, amount) SELECT seq, 'old', 1 FROM seq_1_to_{ROWS}_step_100")
    if with_gone_rows:
        execute(conn, "INSERT INTO big (id, name) SELECT seq, 'gone' FROM seq_900000001_to_900000500")
    conn.close()
    return fingerprint(target)


def table_names(schema: str) -> set[str]:
    return {
        r[0] for r in query("information_schema", "SELECT TABLE_NAME FROM TABLES WHERE TABLE_SCHEMA = %s", (schema,))
    }


# --- the scenarios ---------------------------------------------------------------------------------


def test_source_dies_mid_extract_and_the_retry_rewrites_every_part(
    source_db, source_print, target_db, bucket_name, caplog
):
    caplog.set_level(logging.INFO)
    prefix = table_prefix("big", LOGICAL_DATE)
    s3 = s3_client()
    # A part an earlier, dead attempt of this run left in its own folder (it has no manifest): once
    # the load has succeeded it must go, as must the parts of the attempt the cut kills below.
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(
        Bucket=bucket_name,
        Key=f"{extract_prefix('big', LOGICAL_DATE, new_extract_id('run-1'))}/part-09999.csv.gz",
        Body=b"stale",
    )

    def failed(exc: BaseException) -> None:
        assert isinstance(exc, MySQLdb.OperationalError) and "Lost connection" in str(exc), exc
        stored = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name, Prefix=prefix + "/").get("Contents", ())]
        partial = [k for k in stored if "/part-" in k and not k.endswith("/part-09999.csv.gz")]
        assert len(partial) > 3, "the cut came mid-extract, after several parts were stored"
        assert not [k for k in stored if k.endswith("/manifest.json")]
        assert pipeline_threads() == [], "the failed extract left upload threads running"
        assert logged_failure(caplog, "extract", "Lost connection")

    with FaultProxy(int(os.environ["REPORTS_MYSQL_PORT"])) as proxy:
        conns = Connections(source_db, source_port=proxy.port)
        # The source sends about as many bytes as the CSV holds (~30 MB); die after 8 MB of them.
        proxy.cut_after(8 * 1024 * 1024, "down")
        manifest, failures = like_airflow(lambda: do_extract(conns, bucket_name, target_db), proxy, failed)
    assert proxy.stats.cuts == 1 and len(failures) == 1, failures
    assert len(manifest.parts) > 10
    result = do_load(Connections(source_db), bucket_name, target_db, manifest)
    assert result.rows == ROWS and not result.skipped
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


def test_s3_dies_mid_upload_and_the_extract_stops_reading_the_source(
    source_db, source_print, target_db, bucket_name, caplog
):
    caplog.set_level(logging.INFO)
    read_when_failed: list[int] = []

    def failed(exc: BaseException) -> None:
        assert type(exc).__module__.startswith(("botocore", "urllib3")), repr(exc)
        assert pipeline_threads() == [], "the failed extract left upload threads running"
        assert logged_failure(caplog, "extract", type(exc).__name__)
        read_when_failed.append(source.stats.down_bytes)

    # The source goes through a proxy that is never cut, only to count what the extract read from it.
    with (
        FaultProxy(int(os.environ["REPORTS_S3_PORT"])) as proxy,
        FaultProxy(int(os.environ["REPORTS_MYSQL_PORT"])) as source,
    ):
        conns = Connections(source_db, s3_port=proxy.port, source_port=source.port)
        proxy.cut_after(1024 * 1024, "up")
        manifest, failures = like_airflow(lambda: do_extract(conns, bucket_name, target_db), proxy, failed)
    assert proxy.stats.cuts == 1 and len(failures) == 1, failures
    whole = source.stats.down_bytes - read_when_failed[0]
    # Once S3 is gone the extract stops fetching and drops the session instead of reading (or
    # draining) the rest of the result; an extract that only noticed at the end read all of it.
    assert read_when_failed[0] < 0.9 * whole, (read_when_failed[0], whole)
    do_load(Connections(source_db), bucket_name, target_db, manifest)
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


def _load_scenario(
    source_db: str,
    source_print: Any,
    target_db: str,
    bucket_name: str,
    caplog: pytest.LogCaptureFixture,
    *,
    side: str,
    arm: Callable[[FaultProxy, Manifest], None],
    mode: str = "upsert",
    check: Callable[[BaseException, tuple[int, int, int]], None],
    settings: Settings = SETTINGS,
) -> None:
    """Extract cleanly, give the target old data, then load through a proxy that dies as armed."""
    caplog.set_level(logging.INFO)
    manifest = do_extract(Connections(source_db), bucket_name, target_db, mode)
    before = stale_target(target_db, with_gone_rows=mode == "swap")
    port = int(os.environ["REPORTS_S3_PORT" if side == "s3" else "REPORTS_MYSQL_PORT"])
    with FaultProxy(port) as proxy, Reader(target_db) as reader:
        conns = Connections(source_db, **{f"{side}_port": proxy.port})
        arm(proxy, manifest)
        result, failures = like_airflow(
            lambda: do_load(conns, bucket_name, target_db, manifest, mode, settings),
            proxy,
            lambda exc: check(exc, before),
        )
    assert proxy.stats.cuts == 1 and len(failures) == 1, failures
    assert result.rows == ROWS
    assert reader.errors == []
    assert reader.counts <= {before[0], ROWS}, f"a reader saw a partial table: {sorted(reader.counts)}"
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


@pytest.mark.parametrize("mode", ["upsert", "swap"])
def test_s3_dies_mid_download_and_the_target_is_untouched_until_the_retry(
    source_db, source_print, target_db, bucket_name, local_tmp, caplog, mode
):
    def check(exc: BaseException, before: tuple[int, int, int]) -> None:
        assert fingerprint(target_db) == before, "a failed load changes nothing"
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
        assert list(local_tmp.iterdir()) == [], "the failed load's part files were removed"
        assert logged_failure(caplog, "load", type(exc).__name__)

    _load_scenario(
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="s3",
        mode=mode,
        arm=lambda proxy, m: proxy.cut_after(m.stored_bytes * 2 // 5, "down"),
        check=check,
    )
    assert list(local_tmp.iterdir()) == []


def test_target_dies_mid_upsert_load_all_or_nothing(source_db, source_print, target_db, bucket_name, local_tmp, caplog):
    def check(exc: BaseException, before: tuple[int, int, int]) -> None:
        assert isinstance(exc, MySQLdb.OperationalError), repr(exc)
        assert fingerprint(target_db) == before, "parts loaded before the cut were rolled back"
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
        assert list(local_tmp.iterdir()) == [], "the failed load's part files were removed"
        assert logged_failure(caplog, "load", "OperationalError")

    _load_scenario(
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="target",
        arm=lambda proxy, m: proxy.cut_after(m.csv_bytes * 2 // 5, "up"),
        check=check,
    )


# Swap loads its shadow over REPORTS_LOAD_PARALLELISM sessions (default 2); 1 is the serial path.
@pytest.mark.parametrize("parallelism", [1, 2, 4], ids=["serial", "parallel-2", "parallel-4"])
def test_target_dies_mid_swap_shadow_load_and_readers_only_ever_see_a_whole_table(
    source_db, source_print, target_db, bucket_name, local_tmp, caplog, parallelism
):
    def check(exc: BaseException, before: tuple[int, int, int]) -> None:
        assert isinstance(exc, MySQLdb.OperationalError), repr(exc)
        assert fingerprint(target_db) == before, "the live table is untouched by a failed shadow load"
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
        assert list(local_tmp.iterdir()) == []
        assert logged_failure(caplog, "load", "OperationalError")

    _load_scenario(
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="target",
        mode="swap",
        arm=lambda proxy, m: proxy.cut_after(m.csv_bytes * 2 // 5, "up"),
        check=check,
        settings=Settings(part_bytes=PART_BYTES, load_parallelism=parallelism),
    )


@pytest.mark.parametrize("server_got_it", [False, True], ids=["before-rename", "rename-ack-lost"])
def test_target_dies_right_at_the_rename(
    source_db, source_print, target_db, bucket_name, local_tmp, caplog, server_got_it
):
    new_prefix, old_prefix = shadow_prefixes("big")

    def check(exc: BaseException, before: tuple[int, int, int]) -> None:
        assert isinstance(exc, MySQLdb.OperationalError), repr(exc)
        left = table_names(target_db)
        shadows = [t for t in left if t.startswith(new_prefix)]
        retired = [t for t in left if t.startswith(old_prefix)]
        if server_got_it:
            # The swap happened; only its acknowledgement (and the retired table's drop) was lost.
            assert fingerprint(target_db) == source_print and len(retired) == 1 and not shadows
        else:
            assert fingerprint(target_db) == before and len(shadows) == 1 and not retired
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
        assert logged_failure(caplog, "load", "OperationalError")

    _load_scenario(
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="target",
        mode="swap",
        arm=lambda proxy, m: proxy.cut_on(b"RENAME TABLE", forward=server_got_it),
        check=check,
    )


def test_s3_dies_after_the_commit_and_the_retry_neither_loads_twice_nor_forgets_the_marker(
    source_db, source_print, target_db, bucket_name, caplog
):
    def check(exc: BaseException, before: tuple[int, int, int]) -> None:
        # The rows and the report_loads row were committed; S3 died as the _SUCCESS marker was written.
        assert fingerprint(target_db) == source_print
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(1,)]
        assert logged_failure(caplog, "load", type(exc).__name__)

    _load_scenario(
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="s3",
        arm=lambda proxy, m: proxy.cut_on(b"/_SUCCESS HTTP/1.1"),
        check=check,
    )


def run_dag_test(dag: Any, empty_dir: Any) -> Any:
    """``dag.test()`` for a DAG built here rather than found in the dags folder.

    dag.test() only runs DAGs already serialized in the metadata DB, and finds them by walking the
    ``dags-folder`` bundle; this DAG is not in a file there, so it is written under that bundle first.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(empty_dir))
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test(logical_date=LOGICAL_DATE)


def test_dag_run_retries_the_extract_after_s3_dies_mid_upload(
    source_db, source_print, mysql_root, monkeypatch, tmp_path
):
    """dag.test() in Airflow 3.3 honours retries: the failed try goes UP_FOR_RETRY and runs again."""
    import json

    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    from report_pipeline.airflow.factory import build_dag
    from report_pipeline.config import AdminRows, build_plan

    alias = f"flt{uuid.uuid4().hex[:10]}"
    settings = Settings(part_bytes=PART_BYTES, schedule=None, bucket_template="rp-test-{alias}")
    columns = ", ".join(COLUMNS)
    rows = AdminRows(
        companies=[{"id": 1, "company_id": 1, "status": 1, "alias": alias}],
        tables=[
            {
                "id": 1,
                "name": "big",
                "query_select": f"SELECT {columns} FROM big",
                "params_select": "",
                "query_insert": f"REPLACE INTO big ({columns}) VALUES",
                "status": 1,
                "all_companies": 1,
            }
        ],
    )
    plan = build_plan(rows, settings)
    (company_plan,) = plan.companies
    bucket, target = company_plan.company.bucket, company_plan.company.schema
    dag = build_dag(plan, settings, dag_id=f"rp_faults_{alias}")
    execute(mysql_root, f"CREATE DATABASE `{target}`", f"CREATE TABLE `{target}`.big LIKE `{source_db}`.big")
    port = int(os.environ["REPORTS_MYSQL_PORT"])
    try:
        with FaultProxy(int(os.environ["REPORTS_S3_PORT"])) as proxy:
            monkeypatch.setenv(
                "AIRFLOW_CONN_REPORTS_SOURCE_DB",
                f"mysql://reports:reports@127.0.0.1:{port}/{source_db}?charset=utf8mb4",
            )
            s3_conn = {
                "conn_type": "aws",
                "login": "any",
                "password": "any",
                "extra": {
                    "endpoint_url": f"http://127.0.0.1:{proxy.port}",
                    "region_name": "us-east-1",
                    "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
                },
            }
            monkeypatch.setenv("AIRFLOW_CONN_REPORTS_S3", json.dumps(s3_conn))
            # S3 dies 1 MB into the first try's uploads and is back half a second later, before the
            # seed Retrier's 1 s wait is over.
            proxy.cut_after(1024 * 1024, "up", restore_after=0.5)
            run = run_dag_test(dag, tmp_path)
        assert proxy.stats.cuts == 1
        assert run.state == DagRunState.SUCCESS
        with create_session() as session:
            tries = {
                (h.task_id.split(".")[-1], h.try_number, h.state)
                for h in session.query(TaskInstanceHistory).filter(
                    TaskInstanceHistory.dag_id == dag.dag_id, TaskInstanceHistory.run_id == run.run_id
                )
            }
            final = {
                ti.task_id.split(".")[-1]: (ti.try_number, ti.state) for ti in run.get_task_instances(session=session)
            }
        # The history keeps each earlier try; the extract's first one failed and was retried.
        assert ("big__mysql_to_s3", 1, TaskInstanceState.FAILED) in tries, tries
        assert final == {
            "big__mysql_to_s3": (2, TaskInstanceState.SUCCESS),
            "big__s3_to_mysql": (1, TaskInstanceState.SUCCESS),
        }
        assert fingerprint(target) == source_print
        assert query(target, "SELECT table_name, run_id, rows_loaded FROM report_loads") == [("big", run.run_id, ROWS)]
        assert not s3_client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        from airflow.api.common.delete_dag import delete_dag

        with contextlib.suppress(Exception):  # the DAG may never have reached the metadata DB
            delete_dag(dag.dag_id, keep_records_in_log=False)
        execute(mysql_root, f"DROP DATABASE IF EXISTS `{target}`")
        s3 = s3_client()
        try:
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", ()):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
            s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - the bucket may never have been created
            pass
