"""Third-party modules an Airflow worker can import once, in the process its task processes fork from.

Airflow 3.3 runs each task in a process forked from the executor's worker (the LocalExecutor's workers
fork from the scheduler; a Celery worker's pool processes from the worker), so what that parent has
imported, every task has for free. Our tasks import boto3 and the providers' S3 and MySQL hooks on
first use: 0.2-0.4 s of each extract's and load's own time, again in every task process. A deployment
preloads them from ``airflow_local_settings.py``, which every Airflow process imports at start-up
(``$AIRFLOW_HOME/config/`` or any directory on ``PYTHONPATH``)::

    from report_pipeline.airflow.preload import preload

    preload()

Only libraries are preloaded, never this package's own modules: a deploy of new DAG code must reach
the next task without restarting the workers, while a new boto3 or provider needs a restart anyway.

It also parses botocore's data files once: every new botocore session has a loader of its own, so each
task's S3 client parsed the endpoint list, partitions and the S3 model again (0.15-0.3 s of JSON per
task). ``preload`` makes sessions share one loader per data path and fills it by building an S3 and an
STS client (no request is sent); the forked tasks inherit the parsed data. Workaround on botocore's internals
(``botocore.session.create_loader``), measured on botocore 1.44.8: the loader is read-only once filled,
and one session already hands its cached data to every client it builds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def preload() -> float:
    """Import boto3/botocore, the amazon and MySQL providers' hooks and mysqlclient; the seconds it took.

    A missing provider is logged and skipped: the tasks then fail with the import's own message.
    """
    started = time.perf_counter()
    try:
        import boto3
        import botocore.session
        import MySQLdb  # noqa: F401
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
        from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper  # noqa: F401
        from airflow.providers.mysql.hooks.mysql import MySqlHook  # noqa: F401
    except ImportError as exc:
        log.warning("report_pipeline preload: %s; tasks will import on first use", exc)
        return time.perf_counter() - started
    share_botocore_loader(botocore.session)
    try:
        # Fills the shared loader: endpoints, partitions, the S3 and STS models and their endpoint rules
        # (each task asks STS which account its S3 connection is: report_pipeline.airflow.connections).
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        for service in ("s3", "sts"):
            session.client(service)
    except Exception as exc:  # noqa: BLE001 - a warm-up only: the tasks build their clients anyway
        log.warning("report_pipeline preload: botocore data not preloaded (%s: %s)", type(exc).__name__, exc)
    return time.perf_counter() - started


def share_botocore_loader(session_module: Any) -> None:
    """Make botocore sessions share one data loader per data path (idempotent)."""
    create = session_module.create_loader
    if getattr(create, "report_pipeline_shared", False):
        return
    loaders: dict[Any, Any] = {}

    def shared(search_path_string: Any = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = create(search_path_string)
        return loaders[search_path_string]

    shared.report_pipeline_shared = True  # type: ignore[attr-defined]
    session_module.create_loader = shared
