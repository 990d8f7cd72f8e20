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

# Every REPORTS_* variable Settings.from_env reads (README "Settings" lists them all).
SETTINGS_VARIABLES = (
    "REPORTS_S3_BUCKET_TEMPLATE",
    "REPORTS_TARGET_SCHEMA_TEMPLATE",
    "REPORTS_SCHEDULE",
    "REPORTS_DEFAULT_LOOKBACK_DAYS",
    "REPORTS_PART_MB",
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
)
# REPORTS_* variables of the tooling around the package rather than of the package itself: the
# compose stack's .env (docker-compose.yaml) and the local servers (scripts/env.sh, services.sh).
# They are known, so that check_environment() accepts them wherever the same .env is shared.
TOOLING_VARIABLES = (
    "REPORTS_DEMO_SETUP",
    "REPORTS_SOURCE_POOL_SLOTS",
    "REPORTS_TARGET_POOL_SLOTS",
    "REPORTS_MYSQL_PASSWORD",
    "REPORTS_MYSQL_HOST_PORT",
    "REPORTS_MYSQL_PORT",
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
        )


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """The ``REPORTS_*`` names in ``env`` that nothing reads: typos, or settings that do not exist."""
    return sorted(name for name in env if name.startswith("REPORTS_") and name not in KNOWN_VARIABLES)


def check_environment(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env``, refusing unknown ``REPORTS_*`` names as well as malformed values.

    What a container runs before it starts (``report-pipeline check-settings``), so that a typo in a
    deployment's environment stops the deployment with the variable named, instead of being ignored
    (an unknown name) or surfacing later as a broken DAG (a malformed value). ConfigError names every
    unknown variable, with the known name it most resembles.
    """
    import difflib

    env = os.environ if env is None else env
    unknown = unknown_variables(env)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ConfigError(f"unknown setting(s): {', '.join(hints)}; README 'Settings' lists the known ones")
    settings = Settings.from_env(env)
    # The templates fail only once a company is named: try them on a sample alias now.
    from report_pipeline import validation

    for variable, apply, template in (
        ("REPORTS_S3_BUCKET_TEMPLATE", validation.bucket_name, settings.bucket_template),
        ("REPORTS_TARGET_SCHEMA_TEMPLATE", validation.schema_name, settings.schema_template),
    ):
        try:
            apply(template, "acme")
        except ConfigError as error:
            raise ConfigError(f"{variable}={template!r}: {error}") from None
    return settings
