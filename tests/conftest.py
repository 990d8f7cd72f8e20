"""Shared fixtures: the local wiring from scripts/env.sh, and clients for the real local servers.

Integration tests talk to the MariaDB and SeaweedFS servers that `make test` starts; when they are
not reachable the tests fail (never skip), so a green run always means the real servers were used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The server clients live in scripts/serverkit.py, shared with the scripts (one copy).
sys.path.insert(0, str(REPO / "scripts"))

from serverkit import LocalConnections, empty_bucket, execute, mysql_connect, mysql_url, s3_client  # noqa: E402

# Re-exported for the tests.
__all__ = ["LocalConnections", "execute", "mysql_connect", "mysql_url", "s3_client"]


def _load_env() -> None:
    """Fill os.environ from scripts/env.sh for anything the caller did not set (plain `pytest` runs)."""
    out = subprocess.run(
        ["bash", "-c", "source scripts/env.sh >/dev/null && env -0"], cwd=REPO, capture_output=True, check=True
    ).stdout
    for item in out.split(b"\0"):
        if b"=" in item:
            key, value = item.decode().split("=", 1)
            os.environ.setdefault(key, value)


_load_env()
os.environ.setdefault("REPORTS_SNAPSHOT_PATH", str(REPO / ".local" / "test-snapshot.json"))


def asked_for(config: pytest.Config, marker: str, directory: Path) -> bool:
    """Whether this pytest run asked for tests that need a stack of their own: by ``-m <marker>`` or by
    naming ``directory`` (or a path inside it). Those conftests deselect their tests otherwise."""
    if marker in (config.getoption("markexpr", "") or ""):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == directory or directory in path.parents:
            return True
    return False


@pytest.fixture
def mysql_root() -> Iterator[Any]:
    conn = mysql_connect()
    conn.autocommit(True)
    yield conn
    conn.close()


@pytest.fixture
def scratch_db(mysql_root: Any) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    execute(mysql_root, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield name
    execute(mysql_root, f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def s3() -> Any:
    return s3_client()


@pytest.fixture
def bucket_name(s3: Any) -> Iterator[str]:
    """A fresh bucket name (not created: the extract creates it, as the seed did)."""
    name = f"rp-test-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        empty_bucket(s3, name)
        s3.delete_bucket(Bucket=name)
    except Exception:  # noqa: BLE001 - the bucket may never have been created
        pass


REPLICATED_DB = "rp_replicated"


class Replica:
    """The real local replica (scripts/services.sh): it applies what the primary writes to the database
    ``rp_replicated`` and nothing else. Write there through ``primary()`` (its default database is
    rp_replicated: the primary's binlog filter reads DDL by the session's default database)."""

    port = property(lambda self: int(os.environ["REPORTS_REPLICA_PORT"]))
    db = REPLICATED_DB

    def url(self) -> str:
        """The replica as an Airflow connection URI (e.g. AIRFLOW_CONN_REPORTS_SOURCE_REPLICA_DB)."""
        return f"mysql://reports:reports@127.0.0.1:{self.port}/{self.db}?charset=utf8mb4"

    def connect(self, **extra: Any) -> Any:
        """A connection to the replica, default database rp_replicated."""
        return mysql_connect(self.db, **{"port": self.port, "local_infile": 0, **extra})

    def primary(self) -> Any:
        """A connection to the primary whose writes replicate (default database rp_replicated)."""
        return mysql_connect(self.db)

    def status(self) -> dict[str, Any]:
        """SHOW SLAVE STATUS as a dict (Seconds_Behind_Master, Slave_SQL_Running, ...)."""
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute("SHOW SLAVE STATUS")
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description or ()]
            return dict(zip(names, row, strict=True)) if row else {}
        finally:
            conn.close()

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Block until the replica has applied everything the primary has binlogged so far."""

        primary = self.primary()
        try:
            cursor = primary.cursor()
            cursor.execute("SELECT @@gtid_binlog_pos")
            target = cursor.fetchone()[0]
        finally:
            primary.close()
        conn = self.connect()
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (target, timeout))
            if cursor.fetchone()[0] != 0:
                raise AssertionError(f"the replica did not reach {target!r} within {timeout} s: {self.status()}")
        finally:
            conn.close()


@pytest.fixture
def replica() -> Iterator[Replica]:
    """The real replica, running and replicating (fails, never skips, when it is not)."""
    rep = Replica()
    status = rep.status()
    if status.get("Slave_IO_Running") != "Yes" or status.get("Slave_SQL_Running") != "Yes":
        raise AssertionError(f"the local replica is not replicating (make services): {status}")
    yield rep
