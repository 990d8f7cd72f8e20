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

from report_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

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
    # Alerts (report_pipeline.airflow.alerts): which notifiers a failed task or run calls.
    alert_notifiers: tuple[AlertTarget, ...] = ()
    alert_smtp_conn_id: str = "smtp_default"
    alert_from: str = "report-pipeline@localhost"

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
            alert_notifiers=parse_notifiers(env.get("REPORTS_ALERT_NOTIFIERS", ""), strict=False),
            alert_smtp_conn_id=env.get("REPORTS_ALERT_SMTP_CONN_ID", "").strip() or cls.alert_smtp_conn_id,
            alert_from=env.get("REPORTS_ALERT_FROM", "").strip() or cls.alert_from,
        )
