"""Deployment settings, read from environment variables with documented defaults.

Everything here is the same on the DAG processor, every worker and the CLI, because all of them read
the same environment; nothing is read from the admin database.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

ADMIN_CONN_ID = "reports_admin_db"
SOURCE_CONN_ID = "reports_source_db"
TARGET_CONN_ID = "reports_target_db"
S3_CONN_ID = "reports_s3"
SOURCE_REPLICA_CONN_ID = "reports_source_replica_db"
TLS_MODES = ("off", "verify")

# Every REPORTS_* variable Settings.from_env reads (README "Settings" lists them all).
SETTINGS_VARIABLES = (
    "REPORTS_S3_BUCKET_TEMPLATE",
    "REPORTS_TARGET_SCHEMA_TEMPLATE",
    "REPORTS_SCHEDULE",
    "REPORTS_DAG_SHARDS",
    "REPORTS_DEFAULT_LOOKBACK_DAYS",
    "REPORTS_PART_MB",
    "REPORTS_LOAD_PARALLELISM",
    "REPORTS_SWAP_DEFER_INDEXES",
    "REPORTS_COMPRESS",
    "REPORTS_S3_SSE",
    "REPORTS_S3_SSE_KMS_KEY_ID",
    "REPORTS_SNAPSHOT_PATH",
    "REPORTS_SNAPSHOT_TTL",
    "REPORTS_ADMIN_TIMEOUT",
    "REPORTS_SOURCE_POOL",
    "REPORTS_TARGET_POOL",
    "REPORTS_SWAP_MAX_SHRINK_PERCENT",
    "REPORTS_TABLE_LOCK_TIMEOUT",
    "REPORTS_ATTEMPT_MAX_AGE_HOURS",
    "REPORTS_ALERT_NOTIFIERS",
    "REPORTS_ALERT_SMTP_CONN_ID",
    "REPORTS_ALERT_FROM",
    "REPORTS_NET_TIMEOUT",
    "REPORTS_QUERY_TIMEOUT",
    "REPORTS_S3_MAX_ATTEMPTS",
    "REPORTS_TARGET_LOCK_WAIT",
    "REPORTS_RENAME_LOCK_WAIT",
    "REPORTS_RENAME_ATTEMPTS",
    "REPORTS_TASK_TIMEOUT",
    "REPORTS_DAGRUN_TIMEOUT",
    "REPORTS_TARGET_REQUIRE_TLS",
    "REPORTS_SOURCE_REQUIRE_TLS",
    "REPORTS_SOURCE_REPLICA",
    "REPORTS_S3_EXPECTED_OWNER",
    "REPORTS_S3_EXPIRE_DAYS",
    "REPORTS_RETRIES",
    "REPORTS_RETRY_DELAY",
    "REPORTS_RETRY_BACKOFF",
    "REPORTS_RETRY_MAX_DELAY",
    "REPORTS_RETRY_JITTER",
    "REPORTS_SOURCE_MAX_THREADS_RUNNING",
    "REPORTS_SOURCE_MAX_LAG_SECONDS",
    "REPORTS_GOVERNOR_MAX_WAIT",
)
# REPORTS_* variables of the tooling around the package rather than of the package itself: the
# compose stack's .env (docker-compose.yaml) and the local servers (scripts/env.sh, services.sh).
# They are known, so that environment.check_environment() accepts them wherever the same .env is shared.
TOOLING_VARIABLES = (
    "REPORTS_DEMO_SETUP",
    "REPORTS_SOURCE_POOL_SLOTS",
    "REPORTS_TARGET_POOL_SLOTS",
    "REPORTS_MYSQL_PASSWORD",
    "REPORTS_MYSQL_HOST_PORT",
    "REPORTS_MYSQL_PORT",
    "REPORTS_REPLICA_PORT",
    "REPORTS_MYSQL_SOCKET",
    "REPORTS_MYSQL_FILES_DIR",
    "REPORTS_MYSQL_START_TIMEOUT",
    "REPORTS_MYSQL_STOP_TIMEOUT",
    "REPORTS_S3_PORT",
    "REPORTS_S3_ENDPOINT_URL",
    "REPORTS_S3_START_TIMEOUT",
    "REPORTS_S3_STOP_TIMEOUT",
    "REPORTS_SEAWEED_MASTER_PORT",
    "REPORTS_SEAWEED_FILER_PORT",
    "REPORTS_SEAWEED_VOLUME_PORT",
    "REPORTS_SEAWEED_ELECTION_TIMEOUT",
    "REPORTS_VENV",
    "REPORTS_REDIS_PORT",
    "REPORTS_WORKER_HOSTNAME",
)
KNOWN_VARIABLES = frozenset(SETTINGS_VARIABLES + TOOLING_VARIABLES)
# gzip and none are documented; the rest were always accepted, so they stay valid.
_COMPRESS_VALUES = {
    "gzip": True,
    "1": True,
    "true": True,
    "on": True,
    "none": False,
    "0": False,
    "false": False,
    "off": False,
}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value < float("inf"):  # NaN fails too
        raise ConfigError(f"{name}={raw} must be a finite number of at least {minimum:g}")
    return value


def _compress(env: Mapping[str, str]) -> bool:
    raw = env.get("REPORTS_COMPRESS", "").strip().lower() or "gzip"
    if raw not in _COMPRESS_VALUES:
        raise ConfigError(f"REPORTS_COMPRESS={raw!r} must be 'gzip' or 'none'")
    return _COMPRESS_VALUES[raw]


ALERT_KINDS = ("smtp", "slack")


@dataclass(frozen=True)
class AlertTarget:
    """One notifier of ``REPORTS_ALERT_NOTIFIERS``: ``smtp`` to addresses, or ``slack`` via a webhook connection."""

    kind: str
    targets: tuple[str, ...]


def parse_notifiers(text: str, strict: bool = True) -> tuple[AlertTarget, ...]:
    """Parse ``REPORTS_ALERT_NOTIFIERS``: entries ``KIND:VALUE[,VALUE...]`` separated by ``;`` or spaces.

    ``smtp:ops@example.com,dba@example.com`` mails those addresses (through the SMTP connection
    ``REPORTS_ALERT_SMTP_CONN_ID``); ``slack:CONN_ID`` posts through that Slack incoming-webhook connection.
    A bad entry raises ConfigError, or with ``strict=False`` is logged and left out: a typo in the alert
    setting must not stop the DAG from parsing, i.e. every load.
    """
    found: list[AlertTarget] = []
    for entry in text.replace(";", " ").split():
        kind, sep, value = entry.partition(":")
        kind = kind.strip().lower()
        targets = tuple(v.strip() for v in value.split(",") if v.strip())
        problem = None
        if not sep or kind not in ALERT_KINDS or not targets:
            problem = (
                f"REPORTS_ALERT_NOTIFIERS entry {entry!r} must be KIND:VALUE[,VALUE...] with KIND one of "
                f"{', '.join(ALERT_KINDS)} (e.g. 'smtp:ops@example.com slack:reports_slack')"
            )
        elif kind == "smtp" and not all("@" in t for t in targets):
            problem = f"REPORTS_ALERT_NOTIFIERS entry {entry!r}: smtp takes e-mail addresses"
        if problem is None:
            found.append(AlertTarget(kind, targets))
        elif strict:
            raise ConfigError(problem)
        else:
            log.error("%s; this notifier is left out", problem)
    return tuple(found)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be on or off (1/0, true/false)")


@dataclass(frozen=True)
class Settings:
    """Knobs of one deployment; see README "Settings" for each variable."""

    bucket_template: str = "reports-{alias}"
    schema_template: str = "{alias}"
    schedule: str | None = "@daily"
    # 1: one DAG (populate_report_databases); N > 1: companies split over N DAGs (shards.py, README
    # "Scaling out"), each built by its own DAG file (`report-pipeline write-dag-shards`).
    dag_shards: int = 1
    default_lookback_days: int = 1
    # 8 MB parts keep the extract's and the load's working set under 64 MB even for incompressible
    # rows (README "What bounds memory"), and give parallel loads enough parts to share out.
    part_bytes: int = 8 * 1024 * 1024
    compress: bool = True
    # Target sessions one swap loads its shadow over. The target's cores are not visible from here;
    # 2 is what a 2-core reporting server gains from (1.6x in the probe). Each load task holds
    # one reports_target pool slot but opens this many connections: size the pool and the target's
    # max_connections with that in mind.
    load_parallelism: int = 2
    swap_defer_indexes: bool = False
    snapshot_path: Path = Path("/tmp/report_pipeline/admin_snapshot.json")
    snapshot_ttl_seconds: int = 300
    admin_timeout_seconds: int = 5
    sse: str | None = None
    sse_kms_key_id: str | None = None
    source_pool: str = "reports_source"
    target_pool: str = "reports_target"
    # A swap may shrink a table by at most this percentage of its rows unless the run or row allows it.
    swap_max_shrink_percent: int = 50
    # How long a load waits for another load of the same target table to finish (one writer per table).
    table_lock_timeout_seconds: int = 1800
    attempt_max_age_hours: int = 24
    # Alerts (report_pipeline.airflow.alerts): which notifiers a failed task or run calls.
    alert_notifiers: tuple[AlertTarget, ...] = ()
    alert_smtp_conn_id: str = "smtp_default"
    alert_from: str = "report-pipeline@localhost"
    # Bounded waits (issue 11): every client, query, lock and task has one.
    net_timeout_seconds: int = 120
    query_timeout_seconds: int = 3600
    s3_max_attempts: int = 3
    target_lock_wait_seconds: int = 60
    rename_lock_wait_seconds: int = 5
    rename_attempts: int = 5
    task_timeout_seconds: int = 3 * 3600
    dagrun_timeout_seconds: int = 23 * 3600
    target_require_tls: str = "off"
    # The same for the source (reports_source_db and its replica): verified TLS or no connection.
    source_require_tls: str = "off"
    source_replica: str = "auto"
    s3_expected_owner: str | None = None
    s3_expire_days: int = 0
    # Task retries (airflow/retry.py): the seed's 3 after 1, 2, 4 s exactly; longer for an Aurora failover.
    retries: int = 3
    retry_delay_seconds: float = 1.0
    retry_backoff: float = 2.0
    retry_max_delay_seconds: float = 0.0  # 0: no cap
    retry_jitter: float = 0.0  # each delay is stretched by up to this fraction, at random
    # The source governor (report_pipeline.governor): thresholds, 0 = off, and the total wait bound.
    source_max_threads_running: int = 0
    source_max_lag_seconds: int = 0
    governor_max_wait_seconds: int = 3600

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
        env = os.environ if env is None else env
        airflow_home = env.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        schedule = env.get("REPORTS_SCHEDULE", "@daily").strip()
        sse = env.get("REPORTS_S3_SSE", "").strip() or None
        if sse not in (None, "AES256", "aws:kms"):
            raise ConfigError(f"REPORTS_S3_SSE={sse!r} must be empty, 'AES256' or 'aws:kms'")
        return cls(
            bucket_template=env.get("REPORTS_S3_BUCKET_TEMPLATE", "") or cls.bucket_template,
            schema_template=env.get("REPORTS_TARGET_SCHEMA_TEMPLATE", "") or cls.schema_template,
            schedule=None if schedule.lower() in ("", "none", "manual") else schedule,
            dag_shards=_int(env, "REPORTS_DAG_SHARDS", cls.dag_shards, minimum=1),
            default_lookback_days=_int(env, "REPORTS_DEFAULT_LOOKBACK_DAYS", cls.default_lookback_days),
            part_bytes=_int(env, "REPORTS_PART_MB", cls.part_bytes // 2**20, minimum=1) * 2**20,
            load_parallelism=_int(env, "REPORTS_LOAD_PARALLELISM", cls.load_parallelism, minimum=1),
            swap_defer_indexes=_flag(env, "REPORTS_SWAP_DEFER_INDEXES", cls.swap_defer_indexes),
            compress=_compress(env),
            snapshot_path=Path(
                env.get("REPORTS_SNAPSHOT_PATH", "")
                or os.path.join(airflow_home, "report_pipeline", "admin_snapshot.json")
            ),
            snapshot_ttl_seconds=_int(env, "REPORTS_SNAPSHOT_TTL", cls.snapshot_ttl_seconds),
            admin_timeout_seconds=_int(env, "REPORTS_ADMIN_TIMEOUT", cls.admin_timeout_seconds, minimum=1),
            sse=sse,
            sse_kms_key_id=env.get("REPORTS_S3_SSE_KMS_KEY_ID", "").strip() or None,
            source_pool=env.get("REPORTS_SOURCE_POOL", "") or cls.source_pool,
            target_pool=env.get("REPORTS_TARGET_POOL", "") or cls.target_pool,
            swap_max_shrink_percent=_int(env, "REPORTS_SWAP_MAX_SHRINK_PERCENT", cls.swap_max_shrink_percent),
            table_lock_timeout_seconds=_int(
                env, "REPORTS_TABLE_LOCK_TIMEOUT", cls.table_lock_timeout_seconds, minimum=1
            ),
            attempt_max_age_hours=_int(env, "REPORTS_ATTEMPT_MAX_AGE_HOURS", cls.attempt_max_age_hours, minimum=1),
            alert_notifiers=parse_notifiers(env.get("REPORTS_ALERT_NOTIFIERS", ""), strict=False),
            alert_smtp_conn_id=env.get("REPORTS_ALERT_SMTP_CONN_ID", "").strip() or cls.alert_smtp_conn_id,
            alert_from=env.get("REPORTS_ALERT_FROM", "").strip() or cls.alert_from,
            **_safety(env),
        )


def _safety(env: Mapping[str, str]) -> dict[str, Any]:
    """The bounded-wait, TLS, replica and bucket-ownership settings of issue 11, and the source governor's."""
    d = Settings
    net = _int(env, "REPORTS_NET_TIMEOUT", d.net_timeout_seconds, minimum=1)
    lock_wait = _int(env, "REPORTS_TARGET_LOCK_WAIT", d.target_lock_wait_seconds, minimum=1)
    rename_wait = _int(env, "REPORTS_RENAME_LOCK_WAIT", d.rename_lock_wait_seconds, minimum=1)
    if max(lock_wait, rename_wait) >= net:
        # A statement waiting on a lock is silent: the client would give up before the server does
        # and the error would say "lost connection" instead of naming the lock.
        raise ConfigError(
            f"REPORTS_TARGET_LOCK_WAIT={lock_wait} and REPORTS_RENAME_LOCK_WAIT={rename_wait} must be "
            f"below REPORTS_NET_TIMEOUT={net}"
        )
    tls = env.get("REPORTS_TARGET_REQUIRE_TLS", "").strip().lower() or d.target_require_tls
    if tls not in TLS_MODES:
        raise ConfigError(f"REPORTS_TARGET_REQUIRE_TLS={tls!r} must be one of {TLS_MODES}")
    source_tls = env.get("REPORTS_SOURCE_REQUIRE_TLS", "").strip().lower() or d.source_require_tls
    if source_tls not in TLS_MODES:
        raise ConfigError(f"REPORTS_SOURCE_REQUIRE_TLS={source_tls!r} must be one of {TLS_MODES}")
    replica = env.get("REPORTS_SOURCE_REPLICA", "").strip().lower() or d.source_replica
    if replica not in ("auto", "off", "required"):
        raise ConfigError(f"REPORTS_SOURCE_REPLICA={replica!r} must be 'auto', 'off' or 'required'")
    owner = env.get("REPORTS_S3_EXPECTED_OWNER", "").strip() or None
    if owner is not None and not (owner.isdigit() and len(owner) == 12):
        raise ConfigError(f"REPORTS_S3_EXPECTED_OWNER={owner!r} must be a 12-digit AWS account id")
    return {
        "net_timeout_seconds": net,
        "query_timeout_seconds": _int(env, "REPORTS_QUERY_TIMEOUT", d.query_timeout_seconds, minimum=1),
        "s3_max_attempts": _int(env, "REPORTS_S3_MAX_ATTEMPTS", d.s3_max_attempts, minimum=1),
        "target_lock_wait_seconds": lock_wait,
        "rename_lock_wait_seconds": rename_wait,
        "rename_attempts": _int(env, "REPORTS_RENAME_ATTEMPTS", d.rename_attempts, minimum=1),
        "task_timeout_seconds": _int(env, "REPORTS_TASK_TIMEOUT", d.task_timeout_seconds, minimum=1),
        "dagrun_timeout_seconds": _int(env, "REPORTS_DAGRUN_TIMEOUT", d.dagrun_timeout_seconds, minimum=1),
        "target_require_tls": tls,
        "source_require_tls": source_tls,
        "source_replica": replica,
        "s3_expected_owner": owner,
        "s3_expire_days": _int(env, "REPORTS_S3_EXPIRE_DAYS", d.s3_expire_days),
        "source_max_threads_running": _int(env, "REPORTS_SOURCE_MAX_THREADS_RUNNING", d.source_max_threads_running),
        "source_max_lag_seconds": _int(env, "REPORTS_SOURCE_MAX_LAG_SECONDS", d.source_max_lag_seconds),
        "governor_max_wait_seconds": _int(env, "REPORTS_GOVERNOR_MAX_WAIT", d.governor_max_wait_seconds),
        **_retries(env),
    }


def _retries(env: Mapping[str, str]) -> dict[str, Any]:
    """The retry settings (issue 21): how many retries, and how long each waits."""
    d, jitter = Settings, _float(env, "REPORTS_RETRY_JITTER", Settings.retry_jitter)
    if jitter > 1:
        raise ConfigError(f"REPORTS_RETRY_JITTER={jitter:g} must be between 0 and 1 (a fraction of each delay)")
    return {
        "retries": _int(env, "REPORTS_RETRIES", d.retries),
        "retry_delay_seconds": _float(env, "REPORTS_RETRY_DELAY", d.retry_delay_seconds, minimum=0.0),
        "retry_backoff": _float(env, "REPORTS_RETRY_BACKOFF", d.retry_backoff, minimum=1.0),
        "retry_max_delay_seconds": _float(env, "REPORTS_RETRY_MAX_DELAY", d.retry_max_delay_seconds),
        "retry_jitter": jitter,
    }


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """The ``REPORTS_*`` names in ``env`` that nothing reads: typos, or settings that do not exist."""
    return sorted(name for name in env if name.startswith("REPORTS_") and name not in KNOWN_VARIABLES)
