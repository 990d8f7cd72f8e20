"""Issue 22.1: nothing leaves a connection before its LOCAL INFILE guard, on every connection we open.

The fake server of ``test_local_infile`` answers every statement, the very first one included, with a
LOCAL INFILE request for a secret (as ``/proc/self/environ`` would hold the worker's connection URIs).
For the target, the source, the admin DB and verify's pair, each request must be answered with the
empty packet (nothing), and the secret's bytes must never arrive. The target is tried in libmariadb's
"auto" mode and with plain ``local_infile=1``, which is what libmysqlclient (no auto mode) does: the
init_command of the old code sent the file there.
"""

from __future__ import annotations

from typing import Any

import MySQLdb
import pytest
from tests.security.test_local_infile import SECRET, FakeServer, secret  # noqa: F401 - fixture

from report_pipeline.airflow import connections as connections_module
from report_pipeline.airflow.connections import HookConnections
from report_pipeline.settings import Settings
from report_pipeline.target import infile

SETTINGS = Settings(net_timeout_seconds=10, target_lock_wait_seconds=5, admin_timeout_seconds=10)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, secret: str) -> Any:  # noqa: F811 - the fixture above
    """One fake server answering every statement with a file request; every contract id points at it."""
    server = FakeServer(secret)
    server.start()
    url = f"mysql://u:p@127.0.0.1:{server.port}/db"
    for name in ("ADMIN", "SOURCE", "TARGET"):
        monkeypatch.setenv(f"AIRFLOW_CONN_REPORTS_{name}_DB", url)
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    yield server
    server.close()


def _sent_nothing(server: FakeServer) -> None:
    assert server.requests >= 1, "the fake server asked for the file"
    assert SECRET not in server.received
    assert server.answers and all(a == b"" for a in server.answers), server.answers


@pytest.mark.parametrize("mode", [connections_module.LOCAL_INFILE_AFTER_LOAD_ONLY, 1], ids=["auto", "on"])
def test_the_target_sends_nothing_for_its_first_statement(fake, monkeypatch, mode):
    # mode 1: the client library answers file requests after any statement (libmysqlclient has no "auto").
    monkeypatch.setattr(connections_module, "LOCAL_INFILE_AFTER_LOAD_ONLY", mode)
    # Refused by the guard ("LOCAL INFILE request refused"), or by libmariadb's auto mode before it.
    with pytest.raises(MySQLdb.OperationalError, match=r"LOCAL INFILE request refused|infile forbidden"):
        HookConnections(SETTINGS).target()
    _sent_nothing(fake)
    # The very first statement was mysqlclient's own SET NAMES, already refused by the guard.
    assert fake.statements and not fake.statements[0].upper().startswith(b"SET TIME_ZONE")


@pytest.mark.parametrize("which", ["source", "admin"])
def test_source_and_admin_send_nothing(fake, which):
    with pytest.raises(MySQLdb.OperationalError):
        getattr(HookConnections(SETTINGS), which)()
    _sent_nothing(fake)


def test_verify_sends_nothing(fake):
    from tests.faults.test_faults import LOGICAL_DATE, company, spec

    from report_pipeline import tasks

    with pytest.raises(MySQLdb.OperationalError):
        tasks.verify_table(HookConnections(SETTINGS), company("b", "db"), spec(), LOGICAL_DATE)
    _sent_nothing(fake)


def test_a_client_library_that_cannot_confine_local_infile_is_refused_before_connecting(fake, monkeypatch):
    monkeypatch.setattr(infile, "_library", None)
    monkeypatch.setattr(infile, "_CLIENT_LIBRARY", infile.re.compile(r"/libnothing\.so$"))
    for which in ("target", "source", "admin"):
        with pytest.raises(infile.UnconfinableClientError, match="cannot confine LOAD DATA LOCAL per connection"):
            getattr(HookConnections(SETTINGS), which)()
    assert fake.client_flags == [] and not fake.received, "no connection was opened"


def test_another_mysql_client_is_refused(fake, monkeypatch):
    from report_pipeline.errors import ConfigError

    monkeypatch.setenv(
        "AIRFLOW_CONN_REPORTS_TARGET_DB", f"mysql://u:p@127.0.0.1:{fake.port}/db?client=mysql-connector-python"
    )
    with pytest.raises(ConfigError, match="only mysqlclient can confine LOAD DATA LOCAL"):
        HookConnections(SETTINGS).target()
    assert not fake.received
