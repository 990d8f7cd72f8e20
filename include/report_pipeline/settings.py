"""Deployment settings, read from environment variables with documented defaults.

Everything here is the same on the DAG processor, every worker and the CLI, because all of them read
the same environment; nothing is read from the admin database.

Each setting is declared once, as a field of ``Settings`` made by ``setting()``: its variable, its
default, how its text is read and its README line. ``Settings.from_env``, ``SETTINGS_VARIABLES`` and
README's settings table (``report_pipeline.settingsdoc``, ``make settings-table``) all follow from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from report_pipeline.errors import ConfigError
from report_pipeline.notifiers import AlertTarget
from report_pipeline.setting_values import (
    account_id,
    compression,
    declared,
    flag,
    notifiers,
    number,
    path,
    read_settings,
    replica_mode,
    schedule,
    server_side_encryption,
    setting,
    snapshot_under_airflow_home,
    tls_mode,
    verbatim,
    whole,
)

ADMIN_CONN_ID = "reports_admin_db"
SOURCE_CONN_ID = "reports_source_db"
TARGET_CONN_ID = "reports_target_db"
S3_CONN_ID = "reports_s3"
SOURCE_REPLICA_CONN_ID = "reports_source_replica_db"


@dataclass(frozen=True)
class Settings:
    """Knobs of one deployment, each declared once: its variable, default, reading and README line.

    To add one: a field here made by ``setting()``, then ``make settings-table`` (README's table).
    """

    bucket_template: str = setting(
        "reports-{alias}",
        env="REPORTS_S3_BUCKET_TEMPLATE",
        parse=verbatim,
        doc="a company's bucket (`_` in the alias becomes `-`); created by the extract if missing",
    )
    schema_template: str = setting(
        "{alias}", env="REPORTS_TARGET_SCHEMA_TEMPLATE", parse=verbatim, doc="a company's target schema"
    )
    schedule: str | None = setting(
        "@daily",
        env="REPORTS_SCHEDULE",
        parse=schedule,
        empty_is_default=False,  # empty, like none and manual, means no schedule
        doc="the DAG's schedule (`none` for manual runs only)",
    )
    # 1: one DAG (populate_report_databases); N > 1: companies split over N DAGs (shards.py, README
    # "Scaling out"), each built by its own DAG file (`report-pipeline write-dag-shards`).
    dag_shards: int = setting(
        1,
        env="REPORTS_DAG_SHARDS",
        parse=whole(minimum=1),
        doc="`1`: one DAG `populate_report_databases`; `N` > 1: companies split over N DAGs "
        '`populate_report_databases_shard_01`.. (see "Scaling out"; run `report-pipeline write-dag-shards` '
        "after changing it)",
    )
    default_lookback_days: int = setting(
        1,
        env="REPORTS_DEFAULT_LOOKBACK_DAYS",
        parse=whole(),
        doc="look-back for companies without a `date Y-M-D` configuration",
    )
    # 8 MB parts keep the extract's and the load's working set under 64 MB even for incompressible
    # rows (README "What bounds memory"), and give parallel loads enough parts to share out.
    part_bytes: int = setting(
        8 * 2**20,
        env="REPORTS_PART_MB",
        parse=whole(minimum=1, scale=2**20),
        shown="`8`",
        doc="uncompressed size of one CSV part, in MB (bounds memory, see below)",
    )
    # Target sessions one swap loads its shadow over. The target's cores are not visible from here;
    # 2 is what a 2-core reporting server gains from (1.6x in the probe). Each load task holds
    # one reports_target pool slot but opens this many connections: size the pool and the target's
    # max_connections with that in mind.
    load_parallelism: int = setting(
        2,
        env="REPORTS_LOAD_PARALLELISM",
        parse=whole(minimum=1),
        doc="target sessions one `swap` load (or a first `upsert`/`incremental` load into an empty table) fills "
        "its shadow table over (`1`: serial); an `upsert` into rows always uses one",
    )
    swap_defer_indexes: bool = setting(
        False,
        env="REPORTS_SWAP_DEFER_INDEXES",
        parse=flag,
        doc="`on`: a swap drops the shadow's plain secondary indexes and adds them back in one ALTER after the rows",
    )
    compress: bool = setting(
        True, env="REPORTS_COMPRESS", parse=compression, shown="`gzip`", doc="`none` stores plain `.csv` parts"
    )
    sse: str | None = setting(
        None,
        env="REPORTS_S3_SSE",
        parse=server_side_encryption,
        doc="`AES256` or `aws:kms` on every object; `REPORTS_S3_SSE_KMS_KEY_ID` for KMS",
    )
    sse_kms_key_id: str | None = setting(
        None,
        env="REPORTS_S3_SSE_KMS_KEY_ID",
        shown="(none: the AWS managed key `aws/s3`)",
        doc="with `REPORTS_S3_SSE=aws:kms`: the KMS key every object is encrypted with",
    )
    snapshot_path: Path = setting(  # noqa: RUF009 - setting() is a field specifier, like dataclasses.field
        Path("/tmp/report_pipeline/admin_snapshot.json"),
        env="REPORTS_SNAPSHOT_PATH",
        parse=path,
        default_from=snapshot_under_airflow_home,
        shown="`$AIRFLOW_HOME/report_pipeline/admin_snapshot.json`",
        doc="the parse-time snapshot",
    )
    snapshot_ttl_seconds: int = setting(
        300,
        env="REPORTS_SNAPSHOT_TTL",
        parse=whole(),
        doc="seconds a snapshot is used without asking the admin DB",
    )
    admin_timeout_seconds: int = setting(
        5,
        env="REPORTS_ADMIN_TIMEOUT",
        parse=whole(minimum=1),
        doc="connect/read timeout (s) of the parse-time admin read",
    )
    source_pool: str = setting(
        "reports_source",
        env="REPORTS_SOURCE_POOL",
        parse=verbatim,
        doc="the Airflow pool bounding connections to the source (extracts, chunk plans, reconciles)",
    )
    target_pool: str = setting(
        "reports_target",
        env="REPORTS_TARGET_POOL",
        parse=verbatim,
        doc="the Airflow pool bounding connections to the target (loads, publishes)",
    )
    swap_max_shrink_percent: int = setting(
        50,
        env="REPORTS_SWAP_MAX_SHRINK_PERCENT",
        parse=whole(),
        doc="a `swap` that would shrink a table by more than this percentage of its rows is refused (per table: "
        "`tables.max_shrink_percent`; `100` turns it off)",
    )
    table_lock_timeout_seconds: int = setting(
        1800,
        env="REPORTS_TABLE_LOCK_TIMEOUT",
        parse=whole(minimum=1),
        doc="seconds a load waits for another load of the same target table (one writer per table) before failing",
    )
    attempt_max_age_hours: int = setting(
        24,
        env="REPORTS_ATTEMPT_MAX_AGE_HOURS",
        parse=whole(minimum=1),
        doc="age after which a load's cleanup removes another run's extract folder that was never loaded, or one "
        "without a manifest (an extract that died); younger ones may belong to a run still going",
    )
    # Alerts (report_pipeline.airflow.alerts): which notifiers a failed task or run calls.
    alert_notifiers: tuple[AlertTarget, ...] = setting(
        (),
        env="REPORTS_ALERT_NOTIFIERS",
        parse=notifiers,
        shown="(none: no alerts)",
        doc="notifiers for failed tasks and failed runs: `smtp:ADDR[,ADDR...]` and/or `slack:CONN_ID`, separated "
        'by spaces or `;` (see "Operating it")',
    )
    alert_smtp_conn_id: str = setting(
        "smtp_default",
        env="REPORTS_ALERT_SMTP_CONN_ID",
        doc="the Airflow SMTP connection the `smtp:` notifier sends through",
    )
    alert_from: str = setting("report-pipeline@localhost", env="REPORTS_ALERT_FROM", doc="the sender of alert mails")
    # Bounded waits (issue 11): every client, query, lock and task has one.
    net_timeout_seconds: int = setting(
        120,
        env="REPORTS_NET_TIMEOUT",
        parse=whole(minimum=1),
        doc="seconds any MySQL client (connect/read/write timeout) or S3 client (connect/read timeout) waits on a "
        "silent peer before failing; also the target server's `net_read_timeout`/`net_write_timeout`. A source "
        "query that computes longer than this before its first row needs a larger value",
    )
    query_timeout_seconds: int = setting(
        3600,
        env="REPORTS_QUERY_TIMEOUT",
        parse=whole(minimum=1),
        doc="seconds a source query may run, streaming included: session `max_execution_time` (MySQL/Aurora, ms) "
        "or `max_statement_time` (MariaDB); hints that lift it are refused by validation",
    )
    s3_max_attempts: int = setting(
        3,
        env="REPORTS_S3_MAX_ATTEMPTS",
        parse=whole(minimum=1),
        doc="attempts per S3 request (botocore standard retries, new connection each time)",
    )
    target_lock_wait_seconds: int = setting(
        60,
        env="REPORTS_TARGET_LOCK_WAIT",
        parse=whole(minimum=1),
        doc="the target sessions' `lock_wait_timeout` and `innodb_lock_wait_timeout` (s); below `REPORTS_NET_TIMEOUT`",
    )
    rename_lock_wait_seconds: int = setting(
        5,
        env="REPORTS_RENAME_LOCK_WAIT",
        parse=whole(minimum=1),
        doc="seconds a swap's RENAME waits for readers' locks per try (its `lock_wait_timeout`); below "
        "`REPORTS_NET_TIMEOUT`",
    )
    rename_attempts: int = setting(
        5,
        env="REPORTS_RENAME_ATTEMPTS",
        parse=whole(minimum=1),
        doc="tries of a swap's RENAME (pauses 1, 2, 4, 8 s between them) before the load fails; the loaded "
        "shadow is never reloaded for it",
    )
    task_timeout_seconds: int = setting(
        3 * 3600,
        env="REPORTS_TASK_TIMEOUT",
        parse=whole(minimum=1),
        doc="every task's `execution_timeout` (s). A backstop: Airflow enforces it with a signal, which cannot "
        "interrupt a read blocked inside the C MySQL client (it retries on EINTR); the client timeouts above are "
        "what end a stalled connection",
    )
    dagrun_timeout_seconds: int = setting(
        23 * 3600,
        env="REPORTS_DAGRUN_TIMEOUT",
        parse=whole(minimum=1),
        doc="the DAG's `dagrun_timeout` (s): a stuck run is failed before the next daily run",
    )
    target_require_tls: str = setting(
        "off",
        env="REPORTS_TARGET_REQUIRE_TLS",
        parse=tls_mode,
        doc="`verify`: refuse to connect to the target unless its connection verifies the server "
        "(`ssl_mode` `VERIFY_IDENTITY`)",
    )
    # The same for the source (reports_source_db and its replica): verified TLS or no connection.
    source_require_tls: str = setting(
        "off",
        env="REPORTS_SOURCE_REQUIRE_TLS",
        parse=tls_mode,
        doc="`verify`: the same for the source (`reports_source_db` and `reports_source_replica_db`)",
    )
    source_replica: str = setting(
        "auto",
        env="REPORTS_SOURCE_REPLICA",
        parse=replica_mode,
        doc="`auto`: extracts read `reports_source_replica_db` when it is defined, else `reports_source_db`; "
        "`off`: always the primary; `required`: fail when the replica connection is missing",
    )
    s3_expected_owner: str | None = setting(
        None,
        env="REPORTS_S3_EXPECTED_OWNER",
        parse=account_id,
        shown="(none: the S3 connection's own account, from STS)",
        doc="12-digit account id sent as `ExpectedBucketOwner` on every company-bucket call",
    )
    s3_expire_days: int = setting(
        0,
        env="REPORTS_S3_EXPIRE_DAYS",
        parse=whole(),
        shown="`0` (keep)",
        doc="a lifecycle rule expiring objects after this many days, merged into each company bucket's rules on "
        "its first use (onboarding or an extract)",
    )
    # Task retries (airflow/retry.py): the seed's 3 after 1, 2, 4 s exactly; longer for an Aurora failover.
    retries: int = setting(
        3,
        env="REPORTS_RETRIES",
        parse=whole(),
        doc="retries of every task after its first try (the seed's MaxAttempts)",
    )
    retry_delay_seconds: float = setting(
        1.0,
        env="REPORTS_RETRY_DELAY",
        parse=number(),
        shown="`1`",
        doc="seconds before the first retry (the seed's IntervalSeconds)",
    )
    retry_backoff: float = setting(
        2.0,
        env="REPORTS_RETRY_BACKOFF",
        parse=number(minimum=1.0),
        shown="`2`",
        doc="each further wait is this many times the previous one (the seed's BackoffRate; at least 1)",
    )
    retry_max_delay_seconds: float = setting(
        0.0, env="REPORTS_RETRY_MAX_DELAY", parse=number(), shown="`0` (no cap)", doc="longest wait between tries (s)"
    )
    retry_jitter: float = setting(
        0.0,
        env="REPORTS_RETRY_JITTER",
        parse=number(maximum=1.0, meaning=" (a fraction of each delay)"),
        shown="`0` (exact)",
        doc="0..1: each wait is stretched by up to this fraction, at random; never shortened. For an Aurora "
        'failover (30-60 s) see "Every task retries" above',
    )
    # The source governor (report_pipeline.governor): thresholds, 0 = off, and the total wait bound.
    source_max_threads_running: int = setting(
        0,
        env="REPORTS_SOURCE_MAX_THREADS_RUNNING",
        parse=whole(),
        shown="`0` (off)",
        doc="the source governor: an extract (or chunk plan) waits while the source's `Threads_running` is above "
        'this (see "The source governor")',
    )
    source_max_lag_seconds: int = setting(
        0,
        env="REPORTS_SOURCE_MAX_LAG_SECONDS",
        parse=whole(),
        shown="`0` (off)",
        doc="the source governor: an extract waits while the replica it reads lags more than this many seconds, "
        "or while its replication is stopped",
    )
    governor_max_wait_seconds: int = setting(
        3600,
        env="REPORTS_GOVERNOR_MAX_WAIT",
        parse=whole(),
        doc="seconds one extract waits in all for the governor before it fails with the figure named",
    )

    @property
    def source_stream_timeout_seconds(self) -> int:
        """``net_write_timeout``/``net_read_timeout`` of the source session.

        While S3 is slow the extract stops reading the stream (its upload queue is full) and the
        server waits to write; the wait may last as long as the uploads in flight take, each bounded by
        ``s3_max_attempts`` tries of ``net_timeout_seconds``, so the server's patience covers four of
        those (the in-flight parts plus the one being cut) instead of killing a healthy stream.
        """
        return max(60, 4 * self.s3_max_attempts * self.net_timeout_seconds)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``REPORTS_*`` environment variables (``os.environ`` by default)."""
        settings = cls(**read_settings(cls, os.environ if env is None else env))
        waits = (settings.target_lock_wait_seconds, settings.rename_lock_wait_seconds)
        if max(waits) >= settings.net_timeout_seconds:
            # A statement waiting on a lock is silent: the client would give up before the server does
            # and the error would say "lost connection" instead of naming the lock.
            raise ConfigError(
                f"REPORTS_TARGET_LOCK_WAIT={waits[0]} and REPORTS_RENAME_LOCK_WAIT={waits[1]} must be "
                f"below REPORTS_NET_TIMEOUT={settings.net_timeout_seconds}"
            )
        return settings


# Every REPORTS_* variable Settings.from_env reads, in declaration order.
SETTINGS_VARIABLES = tuple(declaration.env for _, declaration in declared(Settings))
