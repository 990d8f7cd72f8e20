"""The four connections read straight from ``AIRFLOW_CONN_*`` environment variables, without Airflow.

Importing Airflow to reach its hooks costs the ``report-pipeline`` console script over a second per
command (the whole transfer of a small table takes less). When every connection the CLI needs is a
plain environment variable that the providers' hooks would read the same way, this module opens it
directly with mysqlclient and boto3. Anything else returns None and the caller uses the hooks, so
every option users configure still applies: a secrets backend (Airflow asks it before the
environment), IAM auth, SSL, a socket, any extra not listed below, or a variable that is missing.
Credentials go from the variable into the client library only; nothing here logs or returns them.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from report_pipeline.session import UTC_SESSION
from report_pipeline.settings import ADMIN_CONN_ID, S3_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID

# Extras the direct path handles exactly as MySqlHook / the AWS hook would; any other extra means hooks.
# (MySqlHook ignores a local_infile extra, taking it from its caller only; so does this module.)
MYSQL_EXTRAS = frozenset({"charset", "local_infile"})
AWS_EXTRAS = frozenset({"endpoint_url", "region_name", "config_kwargs"})


def _secrets_backend_configured(env: Mapping[str, str]) -> bool:
    if any(k.startswith("AIRFLOW__SECRETS__BACKEND") and v.strip() for k, v in env.items()):
        return True
    home = env.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    config = Path(env.get("AIRFLOW_CONFIG") or os.path.join(home, "airflow.cfg"))
    if not config.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config)
    except configparser.Error:
        return True  # cannot tell: let Airflow read its own file
    return bool(parser.get("secrets", "backend", fallback="").strip())


def parse_connection(raw: str) -> dict[str, Any]:
    """An ``AIRFLOW_CONN_*`` value (JSON or URI, as Airflow accepts it) as a dict.

    Keys: conn_type, host, port, login, password, schema, extra.
    """
    raw = raw.strip()
    if raw.startswith("{"):
        body = json.loads(raw)
        extra = body.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        return {
            "conn_type": str(body.get("conn_type") or "").replace("-", "_"),
            "host": body.get("host") or "",
            "port": body.get("port"),
            "login": body.get("login") or "",
            "password": body.get("password") or "",
            "schema": body.get("schema") or "",
            "extra": dict(extra),
        }
    url = urlsplit(raw)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    extras: dict[str, Any] = json.loads(query["__extra__"]) if "__extra__" in query else query
    return {
        "conn_type": url.scheme.replace("-", "_"),
        "host": unquote(url.hostname or ""),
        "port": url.port,
        "login": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "schema": unquote(url.path[1:]) if url.path else "",
        "extra": extras,
    }


def _simple(env: Mapping[str, str], conn_id: str, conn_type: str, extras: frozenset[str]) -> dict[str, Any] | None:
    raw = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    try:
        conn = parse_connection(raw)
    except (ValueError, TypeError):
        return None  # let Airflow report what is wrong with it
    if conn["conn_type"] != conn_type or set(conn["extra"]) - extras:
        return None
    return conn


class EnvConnections:
    """``tasks.Connections`` (plus the admin DB) over parsed ``AIRFLOW_CONN_*`` values."""

    def __init__(self, mysql: Mapping[str, dict[str, Any]], s3: dict[str, Any], admin_timeout_seconds: int) -> None:
        self._mysql = dict(mysql)
        self._s3 = s3
        self._s3_client: Any = None
        self.admin_timeout_seconds = admin_timeout_seconds

    def _connect(self, conn_id: str, **options: Any) -> Any:
        import MySQLdb

        conn = self._mysql[conn_id]
        config: dict[str, Any] = {
            "user": conn["login"],
            "passwd": conn["password"],
            "host": conn["host"] or "localhost",
            "db": conn["schema"],
            "port": int(conn["port"]) if conn["port"] else 3306,
            "init_command": UTC_SESSION,
            **options,
        }
        charset = conn["extra"].get("charset")
        if charset:
            config["charset"] = charset
            if str(charset).lower() in ("utf8", "utf-8"):
                config["use_unicode"] = True
        return MySQLdb.connect(**config)

    def admin(self) -> Any:
        """The admin DB, with the same short timeouts as the hook path."""
        t = self.admin_timeout_seconds
        return self._connect(ADMIN_CONN_ID, connect_timeout=t, read_timeout=t, write_timeout=t)

    def source(self) -> Any:
        """The source (production) DB."""
        return self._connect(SOURCE_CONN_ID)

    def target(self) -> Any:
        """The target (reporting) DB, with LOAD DATA LOCAL allowed on the client side."""
        return self._connect(TARGET_CONN_ID, local_infile=1)

    def s3(self) -> Any:
        """A boto3 S3 client with the connection's keys, region, endpoint and botocore config.

        One client per command: each new one loads botocore's S3 model again (~0.1 s), and clients
        are thread-safe.
        """
        if self._s3_client is not None:
            return self._s3_client
        import boto3
        from botocore.config import Config

        conn = self._s3
        config_kwargs = conn["extra"].get("config_kwargs") or {}
        if isinstance(config_kwargs, str):
            config_kwargs = json.loads(config_kwargs)
        session = boto3.session.Session(
            aws_access_key_id=conn["login"] or None,
            aws_secret_access_key=conn["password"] or None,
            region_name=conn["extra"].get("region_name") or None,
        )
        self._s3_client = session.client(
            "s3", endpoint_url=conn["extra"].get("endpoint_url") or None, config=Config(**config_kwargs)
        )
        return self._s3_client


def env_connections(env: Mapping[str, str], admin_timeout_seconds: int) -> EnvConnections | None:
    """Direct connections when all four are plain environment variables the hooks would read alike; else None."""
    if _secrets_backend_configured(env):
        return None
    mysql = {}
    for conn_id in (ADMIN_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID):
        conn = _simple(env, conn_id, "mysql", MYSQL_EXTRAS)
        if conn is None:
            return None
        mysql[conn_id] = conn
    s3 = _simple(env, S3_CONN_ID, "aws", AWS_EXTRAS)
    if s3 is None:
        return None
    return EnvConnections(mysql, s3, admin_timeout_seconds)
