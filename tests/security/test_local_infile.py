"""Issue 11.2: LOAD DATA LOCAL sends only the file the load itself wrote, and no multi-statements.

A small fake MySQL server (protocol v10 handshake, OK packets) answers a query with a LOCAL INFILE
request (0xFB) for a file outside the load: a secret in a temp file, as ``/proc/self/environ`` would
hold the worker's ``AIRFLOW_CONN_*`` URIs. Whatever the client sends back is recorded; the secret's
bytes must never be in it. The same server against a plain ``local_infile=1`` connection shows the
test can fail: the library sends the file. A legitimate LOAD DATA still works on the real MariaDB.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from typing import Any

import MySQLdb
import pytest
from tests.conftest import mysql_connect

from report_pipeline.settings import Settings
from report_pipeline.target.mysql import MySqlTarget

SECRET = b"AIRFLOW_CONN_REPORTS_TARGET_DB=mysql://admin:hunter2@prod/"


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _ok(seq: int) -> bytes:
    # OK: header, affected rows 0, insert id 0, status AUTOCOMMIT, 0 warnings.
    return _packet(seq, b"\x00\x00\x00\x02\x00\x00\x00")


def _handshake() -> bytes:
    caps = 0xF7FF | (0x81BF << 16)  # protocol 41, secure connection, plugin auth, local files, ...
    return _packet(
        0,
        b"\x0a"
        + b"5.7.99-fake\0"
        + struct.pack("<I", 7)
        + b"abcdefgh\0"
        + struct.pack("<H", caps & 0xFFFF)
        + bytes([45])
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + b"\0" * 10
        + b"ijklmnopqrst\0"
        + b"mysql_native_password\0",
    )


class FakeServer(threading.Thread):
    """Accepts connections; answers each query with a LOCAL INFILE request for ``path`` when the
    query contains ``trigger`` (every query if empty), OK otherwise. Records every byte it receives."""

    def __init__(self, path: str, trigger: bytes = b"") -> None:
        super().__init__(daemon=True)
        self.path, self.trigger = path.encode(), trigger
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.client_flags: list[int] = []
        self.requests = 0
        self.answers: list[bytes] = []  # what the client sent back for each file request
        self.statements: list[bytes] = []

    def _read(self, sock: socket.socket) -> tuple[int, bytes]:
        header = b""
        while len(header) < 4:
            chunk = sock.recv(4 - len(header))
            if not chunk:
                raise ConnectionError
            header += chunk
        length, seq = int.from_bytes(header[:3], "little"), header[3]
        body = b""
        while len(body) < length:
            chunk = sock.recv(length - len(body))
            if not chunk:
                raise ConnectionError
            body += chunk
        self.received += header + body
        return seq, body

    def run(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            sock.sendall(_handshake())
            seq, response = self._read(sock)
            self.client_flags.append(struct.unpack("<I", response[:4])[0])
            sock.sendall(_ok(seq + 1))
            while True:
                seq, command = self._read(sock)
                if command[:1] == b"\x01":  # COM_QUIT
                    return
                if command[:1] == b"\x03":
                    self.statements.append(command[1:])
                if command[:1] == b"\x03" and self.trigger in command:
                    self.requests += 1
                    sock.sendall(_packet(seq + 1, b"\xfb" + self.path))
                    # The client answers with file packets, ended by an empty one (or only that).
                    answer = b""
                    while True:
                        seq, data = self._read(sock)
                        if not data:
                            break
                        answer += data
                    self.answers.append(answer)
                sock.sendall(_ok(seq + 1))
        except (ConnectionError, OSError):
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def secret(tmp_path: Any) -> str:
    path = tmp_path / "environ"
    path.write_bytes(SECRET)
    return str(path)


def _connect(port: int, **extra: Any) -> Any:
    return MySQLdb.connect(
        host="127.0.0.1", port=port, user="u", passwd="p", connect_timeout=5, read_timeout=5, **extra
    )


def test_an_unguarded_connection_sends_the_file_so_this_test_can_fail(secret):
    server = FakeServer(secret)
    server.start()
    try:
        conn = _connect(server.port, local_infile=1)
        conn.cursor().execute("SELECT 1")
        conn.close()
    finally:
        server.close()
    assert server.requests >= 1
    assert SECRET in server.received, "mysqlclient with local_infile=1 sends any file the server names"


@pytest.fixture
def fake_target(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Start a fake server for a secret and point ``reports_target_db`` at it; yields a starter."""
    servers: list[FakeServer] = []

    def start(path: str, trigger: bytes = b"") -> FakeServer:
        server = FakeServer(path, trigger)
        server.start()
        servers.append(server)
        monkeypatch.setenv("AIRFLOW_CONN_REPORTS_TARGET_DB", f"mysql://u:p@127.0.0.1:{server.port}/")
        return server

    yield start
    for server in servers:
        server.close()


def _hook_target() -> Any:
    from report_pipeline.airflow.connections import HookConnections

    return HookConnections(Settings(net_timeout_seconds=10, target_lock_wait_seconds=5)).target()


def test_the_first_query_cannot_pull_a_file_through_the_target(secret, fake_target):
    server = fake_target(secret)
    # The pipeline's target connection answers a file request only right after a LOAD statement:
    # the init command (SET time_zone) gets an empty packet and the connection fails.
    with pytest.raises(MySQLdb.OperationalError):
        MySqlTarget(_hook_target())
    assert server.requests >= 1
    assert SECRET not in server.received


def test_a_load_statement_cannot_be_answered_with_another_file(secret, fake_target, tmp_path):
    part = tmp_path / "load" / "part.csv"
    part.parent.mkdir()
    part.write_bytes(b"1,a\n")
    server = fake_target(secret, trigger=b"LOAD DATA")
    conn = _hook_target()
    target = MySqlTarget(conn)
    with pytest.raises(MySQLdb.OperationalError, match="LOCAL INFILE request refused: the server asked for"):
        target.bulk_load(str(part), "db", "t", ["id", "name"], ["text", "text"], "insert")
    conn.close()
    assert server.requests == 1 and target.infile.refused == [secret]
    assert SECRET not in server.received and b"1,a" not in server.received


def test_without_the_guard_a_load_statement_leaks_the_file_so_the_guard_is_needed(secret, fake_target):
    server = fake_target(secret, trigger=b"LOAD DATA")
    # A plain mysqlclient connection in libmariadb's auto mode (the pipeline's own are guarded from
    # their handshake on, see test_infile_first_statement).
    conn = _connect(server.port, local_infile=2)
    conn.cursor().execute("LOAD DATA LOCAL INFILE '/tmp/part.csv' INTO TABLE t")
    conn.close()
    assert SECRET in server.received, "libmariadb's auto mode alone sends whatever file the server names"


def test_connections_are_opened_without_multi_statements(secret):
    from MySQLdb.constants import CLIENT

    from report_pipeline.airflow.connections import ReportsMySqlHook

    server = FakeServer(secret, trigger=b"never")
    server.start()
    os.environ["AIRFLOW_CONN_RP_FAKE"] = f"mysql://u:p@127.0.0.1:{server.port}/"
    try:
        hook = ReportsMySqlHook(mysql_conn_id="rp_fake", timeouts={"connect_timeout": 5, "read_timeout": 5})
        hook.get_conn().close()
        _connect(server.port).close()  # plain mysqlclient, for contrast
    finally:
        del os.environ["AIRFLOW_CONN_RP_FAKE"]
        server.close()
    ours, plain = server.client_flags
    assert plain & CLIENT.MULTI_STATEMENTS, "mysqlclient asks for multi-statements unless told not to"
    assert not ours & CLIENT.MULTI_STATEMENTS
    assert not ours & CLIENT.LOCAL_FILES, "only the target offers LOAD DATA LOCAL"


def test_a_legitimate_load_still_works_on_the_real_server(scratch_db, tmp_path):
    conn = mysql_connect(scratch_db)
    conn.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))")
    part = tmp_path / "part.csv"
    part.write_bytes(b'1,"a"\n2,"b"\n')
    target = MySqlTarget(mysql_connect(scratch_db))
    target.begin()
    assert target.bulk_load(str(part), scratch_db, "t", ["id", "name"], ["text", "text"], "insert") == 2
    target.commit()
    cursor = conn.cursor()
    cursor.execute("SELECT id, name FROM t ORDER BY id")
    assert cursor.fetchall() == ((1, "a"), (2, "b"))
    conn.close()


def test_require_verified_tls_refuses_before_connecting(secret, fake_target):
    from report_pipeline.airflow.connections import HookConnections
    from report_pipeline.errors import ConfigError

    server = fake_target(secret)
    settings = Settings(target_require_tls="verify", net_timeout_seconds=10, target_lock_wait_seconds=5)
    with pytest.raises(ConfigError, match="REPORTS_TARGET_REQUIRE_TLS=verify: connection 'reports_target_db'"):
        HookConnections(settings).target()
    assert server.client_flags == [] and not server.received, "no connection was opened"


def test_a_symlink_in_place_of_the_part_is_not_followed(secret, fake_target, tmp_path):
    link = tmp_path / "part.csv"
    link.symlink_to(secret)
    server = fake_target(str(link), trigger=b"LOAD DATA")
    conn = _hook_target()
    target = MySqlTarget(conn)
    with pytest.raises(MySQLdb.OperationalError, match="LOCAL INFILE request refused: cannot open"):
        target.bulk_load(str(link), "db", "t", ["id"], ["text"], "insert")
    conn.close()
    assert SECRET not in server.received


def test_require_verified_tls_to_the_source_refuses_before_connecting(secret, monkeypatch):
    # Issue 22.5: the source too (a spoofed source feeds rows into every company's reports).
    from report_pipeline.airflow.connections import HookConnections
    from report_pipeline.errors import ConfigError

    server = FakeServer(secret)
    server.start()
    monkeypatch.setenv("AIRFLOW_CONN_REPORTS_SOURCE_DB", f"mysql://u:p@127.0.0.1:{server.port}/db?ssl_mode=REQUIRED")
    monkeypatch.delenv("AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB", raising=False)
    settings = Settings(source_require_tls="verify", net_timeout_seconds=10)
    try:
        with pytest.raises(ConfigError, match="REPORTS_SOURCE_REQUIRE_TLS=verify: connection 'reports_source_db'"):
            HookConnections(settings).source()
    finally:
        server.close()
    assert server.client_flags == [] and not server.received, "no connection was opened"
    assert Settings.from_env({"REPORTS_SOURCE_REQUIRE_TLS": "verify"}).source_require_tls == "verify"
