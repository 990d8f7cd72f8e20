"""Connections through the providers' hooks, so every option users configure on a connection
(SSL, IAM auth, assume-role, secrets backends, endpoint_url) applies to the pipeline too.

Credentials go from the Airflow connection straight into the hook and its client library: nothing
here logs, returns or formats a connection's URI, login or password (docs/security.md).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.mysql.hooks.mysql import MySqlHook

from report_pipeline.session import UTC_SESSION
from report_pipeline.settings import ADMIN_CONN_ID, S3_CONN_ID, SOURCE_CONN_ID, TARGET_CONN_ID


class ReportsMySqlHook(MySqlHook):
    """MySqlHook with client-side timeouts, which the provider's hook does not expose."""

    def __init__(self, *args: Any, timeouts: dict[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts or {}

    def _get_conn_config_mysql_client(self, conn: Any) -> dict[str, Any]:
        config: dict[str, Any] = super()._get_conn_config_mysql_client(conn)
        config.update(self.timeouts)
        return config


class HookConnections:
    """Opens the pipeline's four connections, by the contract's ids unless an operator names others."""

    def __init__(
        self,
        admin_timeout_seconds: int = 5,
        *,
        source_conn_id: str = SOURCE_CONN_ID,
        target_conn_id: str = TARGET_CONN_ID,
        s3_conn_id: str = S3_CONN_ID,
    ) -> None:
        self.admin_timeout_seconds = admin_timeout_seconds
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.s3_conn_id = s3_conn_id

    def admin(self) -> Any:
        """The admin DB, with short timeouts: it is read while the DAG file is parsed."""
        t = self.admin_timeout_seconds
        hook = ReportsMySqlHook(
            mysql_conn_id=ADMIN_CONN_ID,
            init_command=UTC_SESSION,
            timeouts={"connect_timeout": t, "read_timeout": t, "write_timeout": t},
        )
        return hook.get_conn()

    def source(self) -> Any:
        """The source (production) DB."""
        return MySqlHook(mysql_conn_id=self.source_conn_id, init_command=UTC_SESSION).get_conn()

    def target(self) -> Any:
        """The target (reporting) DB, with LOAD DATA LOCAL allowed on the client side."""
        return MySqlHook(mysql_conn_id=self.target_conn_id, local_infile=True, init_command=UTC_SESSION).get_conn()

    def protected_schemas(self) -> dict[str, str]:
        """The admin and source connections' schemas when they live on the target's server.

        A company alias equal to one of them must never make a load write there. Servers are compared
        by host and port as configured (``localhost`` taken as 127.0.0.1).
        """
        target = MySqlHook.get_connection(self.target_conn_id)
        found: dict[str, str] = {}
        for conn_id, what in ((ADMIN_CONN_ID, "the admin database"), (self.source_conn_id, "the source database")):
            try:
                other = MySqlHook.get_connection(conn_id)
            except Exception:  # noqa: BLE001 - a connection this deployment does not define protects nothing
                continue
            if other.schema and _server(other) == _server(target):
                found[other.schema.lower()] = f"{what} ({conn_id})"
        return found

    def s3(self) -> Any:
        """A boto3 S3 client for the reports_s3 connection."""
        # Imported here: the boto3 import chain costs ~0.2 s, and every DAG parse loads this module.
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.s3_conn_id).get_conn()


def _server(conn: Any) -> tuple[str, int]:
    host = (conn.host or "localhost").lower()
    return ("127.0.0.1" if host == "localhost" else host, int(conn.port or 3306))
