"""Connections through the providers' hooks, so every option users configure on a connection
(SSL, IAM auth, assume-role, secrets backends, endpoint_url) applies to the pipeline too.

Credentials go from the Airflow connection straight into the hook and its client library: nothing
here logs, returns or formats a connection's URI, login or password (docs/security.md).

Every client gets bounded waits (``REPORTS_NET_TIMEOUT``): connect, read and write timeouts on the
MySQL clients, connect/read timeouts and a bounded number of attempts on the S3 client. No connection
may send several statements in one query (mysqlclient allows it by default), and only the target may
answer LOAD DATA LOCAL requests, only right after a LOAD statement (libmariadb's "auto" mode), and
only with the file that statement loads (``report_pipeline.target.infile``). Every MySQL connection
gets that guard before it sends its first statement: the UTC session is set afterwards, never as the
connection's ``init_command`` (which the client library sends while connecting).
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from report_pipeline.airflow import require_providers
from report_pipeline.errors import ConfigError
from report_pipeline.session import UTC_SESSION
from report_pipeline.settings import (
    ADMIN_CONN_ID,
    S3_CONN_ID,
    SOURCE_CONN_ID,
    SOURCE_REPLICA_CONN_ID,
    TARGET_CONN_ID,
    Settings,
)
from report_pipeline.target.infile import connect_guarded, require_confinable_client

require_providers()  # before the first provider import: a missing one is named with what to install

from airflow.providers.mysql.hooks.mysql import MySqlHook  # noqa: E402

log = logging.getLogger(__name__)

# The account each S3 connection (id and endpoint) authenticates as (None: the server has no STS), asked
# once per process.
_caller_accounts: dict[str, str | None] = {}

# MYSQL_OPT_LOCAL_INFILE values: 0 off; 2 (libmariadb's LOCAL_INFILE_MODE_AUTO) accepts a file request
# only as the answer to a query that starts with LOAD. libmariadb's own default is that auto mode, so
# connections that never load are set to 0 explicitly.
LOCAL_INFILE_OFF = 0
LOCAL_INFILE_AFTER_LOAD_ONLY = 2
_VERIFIED_SSL_MODES = ("VERIFY_IDENTITY",)


class ReportsMySqlHook(MySqlHook):
    """MySqlHook with client-side timeouts, no multi-statements and a chosen LOAD DATA LOCAL mode."""

    def __init__(
        self,
        *args: Any,
        timeouts: dict[str, int] | None = None,
        local_infile_mode: int = LOCAL_INFILE_OFF,
        require_tls: str = "off",
        tls_setting: str = "REPORTS_TARGET_REQUIRE_TLS",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts or {}
        self.local_infile_mode = local_infile_mode
        self.require_tls = require_tls
        self.tls_setting = tls_setting

    def _get_conn_config_mysql_client(self, conn: Any) -> dict[str, Any]:
        from MySQLdb.constants import CLIENT

        config: dict[str, Any] = super()._get_conn_config_mysql_client(conn)
        config.update(self.timeouts)
        config["local_infile"] = self.local_infile_mode
        # One statement per query: a value that slipped into SQL text could not append another.
        config["multi_statements"] = False
        config["client_flag"] = int(config.get("client_flag", 0)) & ~CLIENT.MULTI_STATEMENTS
        if self.require_tls == "verify":
            check_verified_tls(self.get_conn_id(), config, self.tls_setting)
        return config

    def get_conn_id(self) -> str:
        """The connection id this hook opens."""
        return str(getattr(self, self.conn_name_attr))

    def get_conn(self) -> Any:
        """A mysqlclient connection, LOCAL INFILE guard installed before its first statement, then UTC.

        Only mysqlclient can be guarded: a connection whose extra picks another client is refused, as is
        a client library without per-connection local-infile callbacks (before anything is sent).
        """
        conn = self.connection or self.get_connection(self.get_conn_id())
        client = conn.extra_dejson.get("client", "mysqlclient")
        if client != "mysqlclient":
            raise ConfigError(
                f"connection {self.get_conn_id()!r} asks for the MySQL client {client!r}: only mysqlclient can "
                'confine LOAD DATA LOCAL per connection; remove "client" from the connection\'s extra'
            )
        require_confinable_client()
        config = self._get_conn_config_mysql_client(conn)
        config.pop("init_command", None)
        mysql = connect_guarded(**config)
        try:
            cursor = mysql.cursor()
            cursor.execute(UTC_SESSION)
            cursor.close()
        except BaseException:
            mysql.close()
            raise
        return mysql


def check_verified_tls(conn_id: str, config: dict[str, Any], setting: str = "REPORTS_TARGET_REQUIRE_TLS") -> None:
    """Refuse to connect unless the client verifies the server's certificate and host name.

    Without that, anyone on the path (or an edited connection's host) can pose as the target (and be
    handed the rows) or as the source (and feed rows into every company's reports).
    """
    # mysqlclient verifies the certificate chain and host name only with ssl_mode VERIFY_IDENTITY
    # (libmariadb: MYSQL_OPT_SSL_VERIFY_SERVER_CERT); its ssl dict has no host name switch.
    verified = str(config.get("ssl_mode") or "").upper() in _VERIFIED_SSL_MODES
    if not verified:
        raise ConfigError(
            f"{setting}=verify: connection {conn_id!r} does not verify the server's identity; "
            'set its extra to {"ssl_mode": "VERIFY_IDENTITY", "ssl": {"ca": "/path/to/ca.pem"}} '
            "Not connecting."
        )


def s3_client_config(settings: Settings, user_config: Any = None) -> Any:
    """botocore Config with the deployment's bounds; values the connection's extra sets explicitly win."""
    from botocore.config import Config

    bounded = Config(
        connect_timeout=settings.net_timeout_seconds,
        read_timeout=settings.net_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
        tcp_keepalive=True,
    )
    return bounded.merge(user_config) if user_config is not None else bounded


def _caller_from_frames(target_function_name: str) -> str:
    """The class of the nearest ``target_function_name`` method on the stack, as the provider names it."""
    frame = sys._getframe(1)
    while frame is not None:
        caller = frame.f_locals.get("self") if frame.f_code.co_name == target_function_name else None
        if caller is not None:
            return type(caller).__name__
        frame = frame.f_back  # type: ignore[assignment]
    return "Unknown"


@functools.cache
def _aws_hook_classes() -> tuple[Any, Any]:
    """(S3 hook, STS hook): the provider's hooks with a cheap user-agent "Caller" and a connection given.

    Workaround, measured on apache-airflow-providers-amazon 9.39.0: every client the provider's hooks
    build names its caller in the user agent by ``inspect.stack()``, which reads the source of every
    frame on the stack (0.1-0.35 s in a task process, each time: the S3 client and the STS account
    lookup, half the load task's own work on a 20k-row table). Walking the frames for the same name
    costs microseconds. And each hook looks its connection up again through the secrets backends
    (``conn_config``): given the connection a task already looked up, it wraps that one instead.
    Built on first use: the import chain of boto3 costs ~0.2 s, and every DAG parse loads this module.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    class GivenConnection:
        def __init__(self, *args: Any, connection: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.given_connection = connection

        @functools.cached_property
        def conn_config(self) -> Any:
            if self.given_connection is None:
                return super().conn_config  # type: ignore[misc]
            return AwsConnectionWrapper(
                conn=self.given_connection,
                region_name=self._region_name,  # type: ignore[attr-defined]
                botocore_config=self._config,  # type: ignore[attr-defined]
                verify=self._verify,  # type: ignore[attr-defined]
            )

        def _get_caller(self, target_function_name: str = "execute") -> str:
            return _caller_from_frames(target_function_name)

    class ReportsS3Hook(GivenConnection, S3Hook):
        pass

    class ReportsAwsHook(GivenConnection, AwsBaseHook):
        pass

    return ReportsS3Hook, ReportsAwsHook


class HookConnections:
    """Opens the pipeline's connections, each with its bounded waits, by the contract's ids unless an
    operator names others.

    One task uses one instance: each Airflow connection is looked up once (the hooks get the looked-up
    one) and the S3 client is built once, however many sessions the task opens.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        admin_timeout_seconds: int | None = None,
        *,
        source_conn_id: str = SOURCE_CONN_ID,
        target_conn_id: str = TARGET_CONN_ID,
        s3_conn_id: str = S3_CONN_ID,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.admin_timeout_seconds = admin_timeout_seconds or self.settings.admin_timeout_seconds
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.s3_conn_id = s3_conn_id
        self._s3_client: Any = None
        self._connections: dict[str, Any] = {}

    def connection(self, conn_id: str) -> Any:
        """The Airflow connection ``conn_id``, looked up once per instance (AirflowNotFoundException
        when it is not defined). Each look-up in a task goes through the secrets backends and adds the
        password to the log masker again."""
        found = self._connections.get(conn_id)
        if found is None:
            found = self._connections[conn_id] = MySqlHook.get_connection(conn_id)
        return found

    def _timeouts(self, seconds: int) -> dict[str, int]:
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}

    def admin(self) -> Any:
        """The admin DB, with short timeouts: it is read while the DAG file is parsed."""
        hook = ReportsMySqlHook(
            mysql_conn_id=ADMIN_CONN_ID,
            connection=self.connection(ADMIN_CONN_ID),
            timeouts=self._timeouts(self.admin_timeout_seconds),
        )
        return hook.get_conn()

    def extract_conn_id(self) -> str:
        """The source connection extracts read from: the replica when configured and chosen.

        An operator that names its own source connection reads from exactly that one.
        """
        mode = self.settings.source_replica
        if mode == "off" or self.source_conn_id != SOURCE_CONN_ID:
            return self.source_conn_id
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            self.connection(SOURCE_REPLICA_CONN_ID)
        except AirflowNotFoundException:
            if mode == "required":
                raise ConfigError(
                    f"REPORTS_SOURCE_REPLICA=required but connection {SOURCE_REPLICA_CONN_ID!r} is not defined"
                ) from None
            return self.source_conn_id
        return SOURCE_REPLICA_CONN_ID

    def source(self) -> Any:
        """The source (production) DB, or its replica (``reports_source_replica_db``) when defined."""
        conn_id = self.extract_conn_id()
        log.info("reading the source through connection %s", conn_id)
        return ReportsMySqlHook(
            mysql_conn_id=conn_id,
            connection=self.connection(conn_id),
            timeouts=self._timeouts(self.settings.net_timeout_seconds),
            require_tls=self.settings.source_require_tls,
            tls_setting="REPORTS_SOURCE_REQUIRE_TLS",
        ).get_conn()

    def target(self) -> Any:
        """The target (reporting) DB: LOAD DATA LOCAL only right after a LOAD statement, TLS as required."""
        return ReportsMySqlHook(
            mysql_conn_id=self.target_conn_id,
            connection=self.connection(self.target_conn_id),
            timeouts=self._timeouts(self.settings.net_timeout_seconds),
            local_infile_mode=LOCAL_INFILE_AFTER_LOAD_ONLY,
            require_tls=self.settings.target_require_tls,
        ).get_conn()

    def protected_schemas(self) -> dict[str, str]:
        """The admin and source connections' schemas when they live on the target's server.

        A company alias equal to one of them must never make a load write there. Servers are compared
        by host and port as configured (``localhost`` taken as 127.0.0.1).
        """
        target = self.connection(self.target_conn_id)
        found: dict[str, str] = {}
        for conn_id, what in ((ADMIN_CONN_ID, "the admin database"), (self.source_conn_id, "the source database")):
            try:
                other = self.connection(conn_id)
            except Exception:  # noqa: BLE001 - a connection this deployment does not define protects nothing
                continue
            if other.schema and _server(other) == _server(target):
                found[other.schema.lower()] = f"{what} ({conn_id})"
        return found

    def s3_caller_account(self) -> str | None:
        """The AWS account the S3 connection authenticates as (None on a server without STS)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            connection = self.connection(self.s3_conn_id)
        except AirflowNotFoundException:
            connection = None  # the provider's hook warns and goes on with the default credentials
        return caller_account(self.s3_conn_id, self.settings, connection)

    def s3(self) -> Any:
        """A boto3 S3 client for the reports_s3 connection, with bounded timeouts and attempts.

        One client per provider: each S3Hook.get_conn() builds a new botocore session and loads the S3
        service model and endpoint rules again (~0.15 s a client), while a boto3 client is thread-safe
        and a task's extract and load (or ``run``'s) can share one.
        """
        if self._s3_client is None:
            # Imported here: the boto3 import chain costs ~0.2 s, and every DAG parse loads this module.
            from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

            connection = self.connection(self.s3_conn_id)
            config = s3_client_config(self.settings, AwsConnectionWrapper(connection).botocore_config)
            s3_hook = _aws_hook_classes()[0]
            self._s3_client = s3_hook(aws_conn_id=self.s3_conn_id, config=config, connection=connection).get_conn()
        return self._s3_client


def caller_account(s3_conn_id: str, settings: Settings, connection: Any = None) -> str | None:
    """The AWS account the S3 connection authenticates as (STS GetCallerIdentity), once per process.

    On AWS (no ``endpoint_url``) without REPORTS_S3_EXPECTED_OWNER a failed call refuses (ConfigError):
    without the account no bucket could be told ours. An S3-compatible server (``endpoint_url`` set)
    without STS has no accounts to tell apart: None, logged once, and buckets are used without an
    implicit expected owner. ``connection``: the Airflow connection ``s3_conn_id``, when already looked up.
    """
    sts_hook = _aws_hook_classes()[1]
    hook = sts_hook(aws_conn_id=s3_conn_id, client_type="sts", config=s3_client_config(settings), connection=connection)
    endpoint = hook.conn_config.get_service_endpoint_url("sts")
    key = f"{s3_conn_id} {endpoint}"
    if key in _caller_accounts:
        return _caller_accounts[key]
    try:
        account: str | None = str(hook.get_conn().get_caller_identity()["Account"])
    except Exception as exc:
        if not endpoint and not settings.s3_expected_owner:
            raise ConfigError(
                f"cannot tell which AWS account connection {s3_conn_id!r} authenticates as (STS "
                f"GetCallerIdentity failed: {type(exc).__name__}: {exc}), so no company bucket can be checked "
                "as ours; allow sts:GetCallerIdentity or set REPORTS_S3_EXPECTED_OWNER. Nothing was written."
            ) from exc
        log.warning(
            "the S3 server of connection %s (%s) does not answer STS GetCallerIdentity (%s): company buckets "
            "are used without an expected owner; set REPORTS_S3_EXPECTED_OWNER if the server has accounts",
            s3_conn_id,
            endpoint,
            type(exc).__name__,
        )
        account = None
    _caller_accounts[key] = account
    return account


def _server(conn: Any) -> tuple[str, int]:
    host = (conn.host or "localhost").lower()
    return ("127.0.0.1" if host == "localhost" else host, int(conn.port or 3306))
