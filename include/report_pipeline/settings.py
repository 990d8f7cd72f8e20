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


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name}={raw!r} must be one of {allowed}")
    return raw


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
    # The console script: "auto" opens plain AIRFLOW_CONN_* variables directly (no Airflow import),
    # "hooks" always goes through the providers' hooks.
    cli_connections: str = "auto"

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
            load_parallelism=_int(env, "REPORTS_LOAD_PARALLELISM", cls.load_parallelism, minimum=1),
            swap_defer_indexes=_flag(env, "REPORTS_SWAP_DEFER_INDEXES", cls.swap_defer_indexes),
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
            cli_connections=_choice(env, "REPORTS_CLI_CONNECTIONS", cls.cli_connections, ("auto", "hooks")),
        )
