"""The one copy of the clients for the local servers of ``scripts/services.sh`` (MariaDB and S3).

The scripts (``python scripts/x.py`` puts scripts/ on sys.path) and tests/conftest.py (which puts
scripts/ there) share these helpers: the local ``reports`` user, the anonymous S3 keys, and small
statement runners. Ports come from ``REPORTS_MYSQL_PORT`` / ``REPORTS_S3_PORT`` (scripts/env.sh), with
the same defaults as there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

MYSQL_HOST = "127.0.0.1"
MYSQL_USER = MYSQL_PASSWORD = "reports"


def mysql_port() -> int:
    """The local MariaDB's port (REPORTS_MYSQL_PORT, default 3307)."""
    return int(os.environ.get("REPORTS_MYSQL_PORT") or 3307)


def s3_port() -> int:
    """The local S3 gateway's port (REPORTS_S3_PORT, default 8333)."""
    return int(os.environ.get("REPORTS_S3_PORT") or 8333)


def s3_endpoint() -> str:
    """The local S3 gateway's URL."""
    return f"http://{MYSQL_HOST}:{s3_port()}"


def mysql_url(db: str, port: int | None = None) -> str:
    """The local `reports` user as an Airflow connection URI (AIRFLOW_CONN_*)."""
    return f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{port or mysql_port()}/{db}?charset=utf8mb4"


def mysql_connect(db: str | None = None, **extra: Any) -> Any:
    """A mysqlclient connection as the local `reports` user, LOAD DATA LOCAL allowed; ``extra`` (e.g.
    ``autocommit=True``, ``port=...``, ``local_infile=0``) overrides or adds connect arguments."""
    import MySQLdb

    options: dict[str, Any] = {
        "host": MYSQL_HOST,
        "port": mysql_port(),
        "user": MYSQL_USER,
        "passwd": MYSQL_PASSWORD,
        "db": db or "",
        "charset": "utf8mb4",
        "local_infile": 1,
    }
    options.update(extra)
    return MySQLdb.connect(**options)


def s3_client(**extra: Any) -> Any:
    """A boto3 client for the local S3 server (its keys are not checked); ``extra`` (e.g. ``config=``,
    ``endpoint_url=`` of a proxy in front of it) overrides or adds client arguments."""
    import boto3

    options: dict[str, Any] = {
        "endpoint_url": s3_endpoint(),
        "aws_access_key_id": "any",
        "aws_secret_access_key": "any",
        "region_name": "us-east-1",
    }
    options.update(extra)
    return boto3.client("s3", **options)


class LocalConnections:
    """``connections.Connections`` on the local servers: one source schema, the target server, S3."""

    def __init__(self, source_db: str) -> None:
        self.source_db = source_db

    def source(self) -> Any:
        return mysql_connect(self.source_db)

    def target(self) -> Any:
        return mysql_connect()

    def s3(self) -> Any:
        return s3_client()

    def protected_schemas(self) -> dict[str, str]:
        return {}  # the tests' and the bench's schemas are scratch schemas of their own


def execute(conn: Any, *statements: str) -> None:
    """Run statements on ``conn`` and commit."""
    cursor = conn.cursor()
    for statement in statements:
        cursor.execute(statement)
    conn.commit()
    cursor.close()


def run_sql(statements: Iterable[str], db: str | None = None) -> None:
    """Run statements on a connection of their own and commit."""
    conn = mysql_connect(db)
    try:
        execute(conn, *statements)
    finally:
        conn.close()


def query_one(sql: str, db: str | None = None) -> tuple[Any, ...]:
    """The first row of ``sql``, on a connection of its own."""
    conn = mysql_connect(db)
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        return tuple(cursor.fetchone())
    finally:
        conn.close()


def empty_bucket(client: Any, name: str) -> None:
    """Delete every object of bucket ``name`` (in batches of 1,000; a missing bucket raises)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=name)
    keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", ())]
    for i in range(0, len(keys), 1000):
        client.delete_objects(Bucket=name, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
