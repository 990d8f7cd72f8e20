"""Deployment settings, read from environment variables with documented defaults.

Everything here is the same on the DAG processor, every worker and the CLI, because all of them read
the same environment; nothing is read from the admin database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report_pipeline.errors import ConfigError

ADMIN_CONN_ID = "reports_admin_db"
SOURCE_CONN_ID = "reports_source_db"
TARGET_CONN_ID = "reports_target_db"
S3_CONN_ID = "reports_s3"
SOURCE_REPLICA_CONN_ID = "reports_source_replica_db"
TLS_MODES = ("off", "verify")


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


@dataclass(frozen=True)
class Settings:
    """Knobs of one deployment; see README "Settings" for each variable."""

    bucket_template: str = "reports-{alias}"
    schema_template: str = "{alias}"
    schedule: str | None = "@daily"
    default_lookback_days: int = 1
    part_bytes: int = 32 * 1024 * 1024
    compress: bool = True
    snapshot_path: Path = Path("/tmp/report_pipeline/admin_snapshot.json")
    snapshot_ttl_seconds: int = 300
    admin_timeout_seconds: int = 5
    sse: str | None = None
    sse_kms_key_id: str | None = None
    source_pool: str = "reports_source"
    target_pool: str = "reports_target"
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
    source_replica: str = "auto"
    s3_expected_owner: str | None = None
    s3_expire_days: int = 0

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
            default_lookback_days=_int(env, "REPORTS_DEFAULT_LOOKBACK_DAYS", cls.default_lookback_days),
            part_bytes=_int(env, "REPORTS_PART_MB", cls.part_bytes // 2**20, minimum=1) * 2**20,
            compress=env.get("REPORTS_COMPRESS", "gzip").strip().lower() not in ("none", "0", "false", "off"),
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
            **_safety(env),
        )


def _safety(env: Mapping[str, str]) -> dict[str, Any]:
    """The bounded-wait, TLS, replica and bucket-ownership settings of issue 11."""
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
        "source_replica": replica,
        "s3_expected_owner": owner,
        "s3_expire_days": _int(env, "REPORTS_S3_EXPIRE_DAYS", d.s3_expire_days),
    }
