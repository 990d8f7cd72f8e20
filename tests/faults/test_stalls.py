"""Issue 11, stalls: a server stops answering in the middle of a transfer without closing anything.

Next to the cut faults (``test_faults.py``): the faulty side goes through ``FaultProxy``, which this
time *stalls* -- the connections open at that moment stop forwarding in both directions but stay open,
as a half-open connection after an Aurora failover does. Without bounded waits the task would block
forever (pytest-timeout fails the test then); with them it fails within ``REPORTS_NET_TIMEOUT``, and
the retry (the seed Retrier's delays, as ``like_airflow`` does) recovers exactly.

The connections are the production ones (``HookConnections``: ReportsMySqlHook and S3Hook, with the
timeouts the settings give them), pointed at the proxies through ``AIRFLOW_CONN_*``; the settings make
the bounds short (3 s) so the suite stays fast. Each test records the time from the stall to the failed
attempt; ``test_zz_report`` prints them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.conftest import s3_client
from tests.faults import test_faults as cuts
from tests.faults.proxy import FaultProxy
from tests.faults.test_faults import (
    LOGICAL_DATE,
    Reader,
    assert_recovered,
    company,
    logged_failure,
    pipeline_threads,
    query,
    spec,
    stale_target,
)

from report_pipeline import tasks
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.airflow.retry import MAX_ATTEMPTS, SeedRetrier
from report_pipeline.manifest import Manifest, table_prefix
from report_pipeline.settings import Settings

# method="thread": a signal cannot interrupt a read blocked inside the C client (it retries on EINTR),
# so without the bounds the hang ends the whole pytest process with a stack dump: a red suite.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240, method="thread")]

NET_TIMEOUT = 3
SETTINGS = Settings(
    part_bytes=1024 * 1024,
    net_timeout_seconds=NET_TIMEOUT,
    target_lock_wait_seconds=2,
    rename_lock_wait_seconds=1,
    # One try per S3 request: botocore would otherwise recover inside the call on a new connection,
    # and the retry under test is the task's.
    s3_max_attempts=1,
)
MEASURED: dict[str, float] = {}
# The cut faults' world: one 200 000-row source table per module, a fresh target schema per test.
source_db = cuts.source_db
source_print = cuts.source_print
target_db = cuts.target_db
local_tmp = cuts.local_tmp


def _wire(
    monkeypatch: pytest.MonkeyPatch,
    source_db: str,
    *,
    source: int | None = None,
    target: int | None = None,
    s3: int | None = None,
) -> HookConnections:
    """Point the contract connection ids at the real servers, or at a proxy for one side."""
    mysql = int(os.environ["REPORTS_MYSQL_PORT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_SOURCE_DB",
        f"mysql://reports:reports@127.0.0.1:{source or mysql}/{source_db}?charset=utf8mb4",
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_TARGET_DB", f"mysql://reports:reports@127.0.0.1:{target or mysql}/?charset=utf8mb4"
    )
    endpoint = f"http://127.0.0.1:{s3 or int(os.environ['REPORTS_S3_PORT'])}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "any",
                "password": "any",
                "extra": {
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "config_kwargs": {"s3": {"addressing_style": "path"}},
                },
            }
        ),
    )
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    return HookConnections(SETTINGS)


def do_extract(conns: HookConnections, bucket: str, target: str, mode: str = "upsert") -> Manifest:
    # The spec the load runs too: a load refuses an extract made under another table spec.
    return tasks.extract_table(conns, SETTINGS, company(bucket, target), spec(mode), LOGICAL_DATE, "run-1")


def do_load(conns: HookConnections, bucket: str, target: str, manifest: Manifest, mode: str = "upsert") -> Any:
    return tasks.load_table(conns, SETTINGS, company(bucket, target), spec(mode), [manifest.ref], LOGICAL_DATE, "run-1")


def like_airflow_stalled(
    name: str, attempt: Callable[[], Any], proxy: FaultProxy, after_failure: Callable[[BaseException], None]
) -> tuple[Any, list[BaseException]]:
    """Retry as Airflow does; the first failure's time since the stall is recorded as ``name``."""
    failures: list[BaseException] = []
    for try_number in range(1, MAX_ATTEMPTS + 2):
        try:
            return attempt(), failures
        except Exception as exc:
            failed_at = time.monotonic()
            failures.append(exc)
            if try_number > MAX_ATTEMPTS:
                raise
            if len(failures) == 1:
                assert proxy.stalled_at is not None, f"the attempt failed before the stall: {exc!r}"
                MEASURED[name] = failed_at - proxy.stalled_at
            after_failure(exc)
            time.sleep(SeedRetrier().delay(try_number).total_seconds())
    raise AssertionError("unreachable")


def _timed_out(exc: BaseException) -> bool:
    """A timeout, and the failed task's error names the bound that tripped."""
    text = f"{type(exc).__name__} {exc}".lower()
    named = any(f"REPORTS_NET_TIMEOUT={NET_TIMEOUT} s" in note for note in getattr(exc, "__notes__", ()))
    return named and any(word in text for word in ("timeout", "timed out", "lost connection", "gone away"))


def _lock_wait_named(exc: BaseException) -> bool:
    notes = getattr(exc, "__notes__", ())
    return any(f"REPORTS_TARGET_LOCK_WAIT={SETTINGS.target_lock_wait_seconds} s" in note for note in notes)


def test_source_stalls_mid_extract(monkeypatch, source_db, source_print, target_db, bucket_name, caplog):
    caplog.set_level(logging.INFO)
    prefix = table_prefix("big", LOGICAL_DATE)

    def failed(exc: BaseException) -> None:
        assert _timed_out(exc), repr(exc)
        # Each attempt writes its own folder under the date's prefix (issue 10): parts, no manifest.
        listed = s3_client().list_objects_v2(Bucket=bucket_name, Prefix=prefix + "/").get("Contents", [])
        keys = [o["Key"] for o in listed]
        assert sum("/part-" in k for k in keys) > 3
        assert not [k for k in keys if k.endswith("/manifest.json")]
        assert pipeline_threads() == []
        assert logged_failure(caplog, "extract", type(exc).__name__)

    with FaultProxy(int(os.environ["REPORTS_MYSQL_PORT"])) as proxy:
        conns = _wire(monkeypatch, source_db, source=proxy.port)
        proxy.stall_after(8 * 1024 * 1024, "down")
        manifest, failures = like_airflow_stalled(
            "source mid-extract", lambda: do_extract(conns, bucket_name, target_db), proxy, failed
        )
    assert proxy.stats.stalls == 1 and len(failures) == 1, failures
    do_load(_wire(monkeypatch, source_db), bucket_name, target_db, manifest)
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


def test_s3_stalls_mid_upload(monkeypatch, source_db, source_print, target_db, bucket_name, caplog):
    caplog.set_level(logging.INFO)

    def failed(exc: BaseException) -> None:
        assert _timed_out(exc), repr(exc)
        assert pipeline_threads() == [], "the failed extract left upload threads running"
        assert logged_failure(caplog, "extract", type(exc).__name__)

    with FaultProxy(int(os.environ["REPORTS_S3_PORT"])) as proxy:
        conns = _wire(monkeypatch, source_db, s3=proxy.port)
        proxy.stall_after(3 * 1024 * 1024, "up")
        manifest, failures = like_airflow_stalled(
            "S3 mid-upload", lambda: do_extract(conns, bucket_name, target_db), proxy, failed
        )
    assert proxy.stats.stalls == 1 and len(failures) == 1, failures
    do_load(_wire(monkeypatch, source_db), bucket_name, target_db, manifest)
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


def _load_stall(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    source_db: str,
    source_print: Any,
    target_db: str,
    bucket_name: str,
    caplog: pytest.LogCaptureFixture,
    *,
    side: str,
    mode: str,
    arm: Callable[[FaultProxy, Manifest], None],
    local_tmp: Any,
) -> None:
    caplog.set_level(logging.INFO)
    manifest = do_extract(_wire(monkeypatch, source_db), bucket_name, target_db, mode)
    before = stale_target(target_db, with_gone_rows=mode == "swap")

    def failed(exc: BaseException) -> None:
        # The stalled attempt times out; a retry may still find the server rolling that attempt's
        # partial load back (it noticed the silent client only after its own net_read_timeout), and
        # then fails on its lock wait, bounded too. Either way nothing is recorded or left behind.
        assert _timed_out(exc) or _lock_wait_named(exc), repr(exc)
        assert query(target_db, "SELECT COUNT(*) FROM report_loads") == [(0,)]
        assert list(local_tmp.iterdir()) == [], "the failed load's part files were removed"
        assert logged_failure(caplog, "load", type(exc).__name__)

    port = int(os.environ["REPORTS_S3_PORT" if side == "s3" else "REPORTS_MYSQL_PORT"])
    with FaultProxy(port) as proxy, Reader(target_db) as reader:
        conns = _wire(monkeypatch, source_db, **{side: proxy.port})
        arm(proxy, manifest)
        result, failures = like_airflow_stalled(
            name, lambda: do_load(conns, bucket_name, target_db, manifest, mode), proxy, failed
        )
    assert proxy.stats.stalls == 1 and len(failures) >= 1, failures
    assert _timed_out(failures[0]), repr(failures[0])
    assert result.rows == manifest.rows
    assert reader.counts <= {before[0], manifest.rows}, f"a reader saw a partial table: {sorted(reader.counts)}"
    assert_recovered(source_db, target_db, bucket_name, manifest, source_print)


def test_s3_stalls_mid_download(monkeypatch, source_db, source_print, target_db, bucket_name, local_tmp, caplog):
    _load_stall(
        monkeypatch,
        "S3 mid-download",
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="s3",
        mode="upsert",
        arm=lambda proxy, m: proxy.stall_after(m.stored_bytes * 2 // 5, "down"),
        local_tmp=local_tmp,
    )


@pytest.mark.parametrize("mode", ["upsert", "swap"])
def test_target_stalls_mid_load(monkeypatch, source_db, source_print, target_db, bucket_name, local_tmp, caplog, mode):
    _load_stall(
        monkeypatch,
        f"target mid-load ({mode})",
        source_db,
        source_print,
        target_db,
        bucket_name,
        caplog,
        side="target",
        mode=mode,
        arm=lambda proxy, m: proxy.stall_after(m.csv_bytes * 2 // 5, "up"),
        local_tmp=local_tmp,
    )


def test_zz_report(capsys):
    """Prints the measured time from stall to failed attempt (the bound is REPORTS_NET_TIMEOUT)."""
    with capsys.disabled():
        print(f"\nstall -> failed attempt (REPORTS_NET_TIMEOUT={NET_TIMEOUT} s, one S3 attempt):")
        for name, seconds in MEASURED.items():
            print(f"  {name:28s} {seconds:6.2f} s")
