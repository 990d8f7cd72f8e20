"""Alert notifiers: what ``REPORTS_ALERT_NOTIFIERS`` names, parsed (``airflow/alerts.py`` calls them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from report_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

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
