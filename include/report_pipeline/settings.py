"""Deployment settings, read from environment variables with documented defaults.

Everything here is the same on the DAG processor, every worker and the CLI, because all of them read
the same environment; nothing is read from the admin database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from report_pipeline.errors import ConfigError

ADMIN_CONN_ID = "reports_admin_db"
SOURCE_CONN_ID = "reports_source_db"
TARGET_CONN_ID = "reports_target_db"
S3_CONN_ID = "reports_s3"


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
    # A swap may shrink a table by at most this percentage of its rows unless the run or row allows it.
    swap_max_shrink_percent: int = 50
    # How long a load waits for another load of the same target table to finish (one writer per table).
    table_lock_timeout_seconds: int = 1800
    attempt_max_age_hours: int = 24

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
            swap_max_shrink_percent=_int(env, "REPORTS_SWAP_MAX_SHRINK_PERCENT", cls.swap_max_shrink_percent),
            table_lock_timeout_seconds=_int(
                env, "REPORTS_TABLE_LOCK_TIMEOUT", cls.table_lock_timeout_seconds, minimum=1
            ),
            attempt_max_age_hours=_int(env, "REPORTS_ATTEMPT_MAX_AGE_HOURS", cls.attempt_max_age_hours, minimum=1),
        )
