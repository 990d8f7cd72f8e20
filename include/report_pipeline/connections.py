"""How the units of work reach the servers: the ``Connections`` provider, the bounded source session,
and the company's bucket.

``tasks``, ``reconciliation``, ``checks`` and the CLI open the source only through ``source_session`` and
the company's bucket only through ``company_bucket``; the Airflow adapter's ``HookConnections``
(``report_pipeline.airflow.connections``) is the provider the DAG's tasks pass in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from report_pipeline.config import Company
from report_pipeline.session import bound_note, bound_source_session, opened
from report_pipeline.settings import Settings
from report_pipeline.storage import Bucket

# The units of work's logger, as before these moved out of tasks.py: log filters keep finding it.
log = logging.getLogger("report_pipeline.tasks")


@contextlib.contextmanager
def bounds_named(settings: Settings, *, source: bool) -> Iterator[None]:
    """Add to a timeout's error which setting bounded the wait, so the failed task's log says so."""
    try:
        yield
    except Exception as exc:
        note = bound_note(
            exc,
            net_timeout=settings.net_timeout_seconds,
            query_timeout=settings.query_timeout_seconds if source else None,
            lock_wait=None if source else settings.target_lock_wait_seconds,
        )
        if note:
            exc.add_note(note)
            log.error("%s (%s: %s)", note, type(exc).__name__, exc)
        raise


@contextlib.contextmanager
def source_session(connections: Connections, settings: Settings) -> Iterator[Any]:
    """The one way to read the source: a connection whose every query is bounded, closed afterwards.

    The server kills a query after ``REPORTS_QUERY_TIMEOUT`` (and stops waiting on a reader after the
    stream timeout); the client gives up on a silent server after ``REPORTS_NET_TIMEOUT`` (the hook's
    timeouts). A timeout's error names the setting that tripped. Extracts, chunk planning, verify,
    reconcile, validate's probes and onboarding all read through it.
    """
    with bounds_named(settings, source=True), opened(connections.source()) as conn:
        bound_source_session(conn, settings.query_timeout_seconds, settings.source_stream_timeout_seconds)
        yield conn


class Connections(Protocol):
    """Opens connections; in Airflow through the providers' hooks."""

    def source(self) -> Any:
        """A mysqlclient connection to the source DB."""

    def target(self) -> Any:
        """A mysqlclient connection to the target DB with LOAD DATA LOCAL allowed."""

    def s3(self) -> Any:
        """A boto3 S3 client."""

    def protected_schemas(self) -> dict[str, str]:
        """Schemas on the target's server that belong to something else (admin, source), lower case."""


def company_bucket(connections: Connections, settings: Settings, company: Company) -> Bucket:
    """The company's own bucket, written with the configured server-side encryption."""
    owner, owner_is_caller = bucket_owner(connections, settings)
    return Bucket(
        connections.s3(),
        company.bucket,
        settings.sse,
        settings.sse_kms_key_id,
        owner,
        settings.s3_expire_days,
        owner_is_caller,
    )


def bucket_owner(connections: Any, settings: Settings) -> tuple[str | None, bool]:
    """The account company buckets must belong to, and whether the S3 connection authenticates as it.

    REPORTS_S3_EXPECTED_OWNER, else the connection's own account (``s3_caller_account``, in Airflow STS
    GetCallerIdentity); None where neither is known (an S3 server without accounts).
    """
    caller = getattr(connections, "s3_caller_account", None)
    account = caller() if caller is not None else None
    owner = settings.s3_expected_owner or account
    return owner, owner is not None and owner == account
