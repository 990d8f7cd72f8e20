"""The ``report-pipeline`` console script: the plain CLI, handed connections through Airflow's hooks."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from report_pipeline.settings import Settings


def _logs_to_stderr() -> None:
    """Send Airflow's log lines to stderr, so stdout carries only this tool's tables.

    Importing Airflow configures its logging to stdout (stdlib handlers and structlog's writer);
    a warning such as "Skipping masking for a secret" would otherwise land in the middle of a table
    that an operator pipes into another tool.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)
    with contextlib.suppress(Exception):  # structlog's layout is Airflow's internal business
        import structlog

        factory: Any = structlog.get_config().get("logger_factory")
        if factory is not None and hasattr(factory, "io"):
            factory.io = sys.stderr


def hook_connections(settings: Settings) -> Any:
    """The contract's four connections: plain ``AIRFLOW_CONN_*`` variables directly, else the providers' hooks.

    Importing Airflow for its hooks costs more than a small table's whole transfer; ``envconn`` opens
    connections the hooks would open alike and declines anything else (REPORTS_CLI_CONNECTIONS=hooks
    forces the hooks). Airflow is imported only when the hooks are used.
    """
    if settings.cli_connections == "auto":
        from report_pipeline.envconn import env_connections

        direct = env_connections(os.environ, settings.admin_timeout_seconds)
        if direct is not None:
            return direct
    from report_pipeline.airflow.connections import HookConnections

    _logs_to_stderr()
    return HookConnections(settings.admin_timeout_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``report-pipeline`` console script."""
    from report_pipeline import cli

    # The demo is not part of the runtime package; the console offers it where it is installed.
    extra: dict[str, tuple[str, Any]] = {}
    with contextlib.suppress(ImportError):
        import report_pipeline_demo

        extra["demo-setup"] = (
            "create the demo admin rows, source tables and company targets",
            report_pipeline_demo.setup,
        )
    return cli.main(argv, hook_connections, extra)


if __name__ == "__main__":
    sys.exit(main())
