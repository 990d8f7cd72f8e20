"""The source governor in Airflow: a busy source reschedules the task instead of holding its slots.

Measured on Airflow 3.3 (task_runner.py, execution API ``ti_update_state``, ``ReadyToRescheduleDep``):
any operator may raise ``AirflowRescheduleException``; the task instance becomes
``UP_FOR_RESCHEDULE``, which is neither RUNNING nor QUEUED, so it holds no worker slot and no pool
slot while it waits; the scheduler queues it again once the reschedule date has passed, with the same
try number (a reschedule is not a retry, so the retries stay for real failures). Each busy look writes
a ``task_reschedule`` row; ``get_first_reschedule_date`` reads the first row of this try, which is where
the wait bound counts from.

Between the parts of an extract that is already streaming there is nothing to give back: the pacer
pauses in-process there (``report_pipeline.governor.Pacer``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from report_pipeline import governor
from report_pipeline.airflow.metrics import TableMetrics
from report_pipeline.config import Company, TableSpec
from report_pipeline.settings import Settings
from report_pipeline.tasks import table_label

log = logging.getLogger(__name__)


class RescheduleGate(governor.Gate):
    """Admits a task's source work while the source is calm; reschedules the task while it is busy."""

    def __init__(self, limits: governor.Limits, where: str, context: Any) -> None:
        super().__init__(limits, where)
        self.context = context

    def admit(self, connect: Callable[[], Any]) -> None:
        """Return when calm; AirflowRescheduleException (backoff) while busy; SourceBusyError past the bound."""
        if not self.limits.enabled:
            return
        now = dt.datetime.now(dt.UTC)
        first = self.context["ti"].get_first_reschedule_date(self.context)
        waited = 0.0 if first is None else max(0.0, (now - first).total_seconds())
        reason = governor.look(connect, self.limits)
        if reason is None:
            self.waited += waited
            return
        looks = int(self.context.get("task_reschedule_count") or 0)
        delay = governor.backoff_seconds(looks)
        if waited + delay > self.limits.max_wait_seconds:
            self.waited += waited
            raise governor.SourceBusyError(governor.busy_message(self.where, reason, waited, self.limits), waited)
        log.warning(
            "%s: %s; rescheduling the task in %.0f s, its worker and pool slot free meanwhile "
            "(waited %.0f s of REPORTS_GOVERNOR_MAX_WAIT=%d)",
            self.where,
            reason,
            delay,
            waited,
            self.limits.max_wait_seconds,
        )
        raise AirflowRescheduleException(now + dt.timedelta(seconds=delay))


@contextlib.contextmanager
def governed(
    settings: Settings, company: Company, spec: TableSpec, context: Any, logger: Any
) -> Iterator[RescheduleGate]:
    """The gate of one task; once the task's source work ran (or the bound ran out), the wait metric.

    A bound that ran out fails the task without retries: each retry would wait the whole bound again.
    """
    gate = RescheduleGate(governor.limits_of(settings), table_label(company, spec), context)
    try:
        yield gate
    except governor.SourceBusyError as exc:
        TableMetrics(company.alias, spec.name, logger).waited_for_source(gate.waited)
        raise AirflowFailException(str(exc)) from exc
    if gate.limits.enabled:
        TableMetrics(company.alias, spec.name, logger).waited_for_source(gate.waited)
