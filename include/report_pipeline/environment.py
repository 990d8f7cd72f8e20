"""The deployment's environment checked before it starts (``report-pipeline check-settings``): the
``REPORTS_*`` names it may hold, and their values.

Not in ``settings``: it tries the name templates with ``validation``, which itself reads ``settings``
(the source query bound); from here, the imports run one way.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Mapping
from typing import Any

from report_pipeline import validation
from report_pipeline.errors import ConfigError
from report_pipeline.settings import SETTINGS_VARIABLES, Settings

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
    for variable, apply, template in (
        ("REPORTS_S3_BUCKET_TEMPLATE", validation.bucket_name, settings.bucket_template),
        ("REPORTS_TARGET_SCHEMA_TEMPLATE", validation.schema_name, settings.schema_template),
    ):
        try:
            apply(template, "acme")
        except ConfigError as error:
            raise ConfigError(f"{variable}={template!r}: {error}") from None
    return settings


def cmd_check_settings(args: argparse.Namespace, settings: Settings, connect: Any) -> int:
    """Refuse unknown or malformed REPORTS_* variables (what a container checks before it starts)."""
    check_environment()
    names = sorted(name for name in os.environ if name.startswith("REPORTS_"))
    print(f"settings ok: {len(names)} REPORTS_* variable(s) set{': ' if names else ''}{', '.join(names)}")
    return 0
