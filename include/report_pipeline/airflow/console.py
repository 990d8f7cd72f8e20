"""The ``report-pipeline`` console script: the plain CLI, handed connections through Airflow's hooks."""

from __future__ import annotations

import contextlib
import logging
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
    """The contract's four connections through the providers' hooks (Airflow imported only now)."""
    from report_pipeline.airflow.connections import HookConnections

    _logs_to_stderr()
    return HookConnections(settings)


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
    try:
        return cli.main(argv, hook_connections, extra)
    finally:
        if argv is None:
            _skip_final_collection()


def _skip_final_collection() -> None:
    """Let the console script's process end without the interpreter's last walk over its heap.

    Once Airflow is imported the process holds millions of objects, and the cyclic collection at
    interpreter shutdown walked them all: ~0.5 s of a small table's ~2 s ``run`` went to exiting.
    ``gc.freeze()`` moves them out of the collector's reach; atexit handlers (Airflow's ORM dispose,
    log flushes) and stream flushes still run, and the OS takes the memory back. Only when called as
    the console script (``argv`` None): a caller in a longer-lived process keeps its collector.
    """
    import gc

    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
