"""Failure alerts through Airflow's notifiers, chosen by ``REPORTS_ALERT_NOTIFIERS`` (no code change).

``smtp:ADDR[,ADDR...]`` sends through the SMTP provider's ``SmtpNotifier`` (connection
``REPORTS_ALERT_SMTP_CONN_ID``, default ``smtp_default``; sender ``REPORTS_ALERT_FROM``);
``slack:CONN_ID`` posts through the Slack provider's ``SlackWebhookNotifier``. Two alerts:

- a task failed (its final try: the retries are spent): company, table, logical date, run id, task,
  try, the error's first line and a link to the task's log;
- a run finished with failed tables: the run, its logical date, and each failed company.table with a
  link to its log.

A notifier that fails (server down, bad connection, provider missing) never changes a task's or
run's outcome: it is logged once for that task or run, and the other notifiers still send.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from report_pipeline.config import table_label
from report_pipeline.notifiers import AlertTarget
from report_pipeline.settings import Settings
from report_pipeline.taskids import parse_task_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """What one alert says: a subject line and a plain-text body (HTML for mail is derived from it)."""

    subject: str
    body: str

    def html(self) -> str:
        """The body for an HTML mail: escaped, links clickable, lines kept."""
        lines = []
        for line in self.body.splitlines():
            text = html.escape(line)
            if line.startswith("log: "):
                url = html.escape(line[5:], quote=True)
                text = f'log: <a href="{url}">{url}</a>'
            lines.append(text)
        return "<pre>" + "\n".join(lines) + "</pre>"


def first_line(error: Any) -> str:
    """The first non-empty line of an exception's message (or of any text), with its type."""
    if error is None:
        return "(no error recorded)"
    text = str(error).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(error).__name__}: {line}" if isinstance(error, BaseException) else line


def _table_of(task_id: str) -> tuple[str, str]:
    """(company alias, table) from a task id ``company_<alias>.<table>__<step>``."""
    ref = parse_task_id(task_id)
    return ref.company, ref.table or "-"


def _logical_date(context: Mapping[str, Any]) -> str:
    value = context.get("logical_date")
    if value is None and context.get("dag_run") is not None:
        value = getattr(context["dag_run"], "logical_date", None) or getattr(context["dag_run"], "run_after", None)
    return value.isoformat() if isinstance(value, dt.datetime) else str(value or "-")


def task_failure_alert(context: Mapping[str, Any]) -> Alert:
    """The alert for a failed task, from its callback context."""
    ti = context["ti"]
    task = context.get("task")
    company = getattr(getattr(task, "company", None), "alias", None)
    spec = getattr(task, "spec", None)
    alias, table = _table_of(ti.task_id)
    company, table = company or alias, getattr(spec, "name", None) or table
    date = _logical_date(context)
    error = first_line(context.get("exception"))
    subject = f"[report-pipeline] {company}.{table} failed for {date}: {error}"[:250]
    body = "\n".join(
        [
            f"company: {company}",
            f"table: {table}",
            f"logical date: {date}",
            f"run: {context.get('run_id')}",
            f"task: {ti.task_id} (try {ti.try_number})",
            f"error: {error}",
            f"log: {ti.log_url}",
        ]
    )
    return Alert(subject, body)


def run_failure_alert(context: Mapping[str, Any], failed: Sequence[Mapping[str, Any]]) -> Alert:
    """The alert for a finished run with failed tables; ``failed`` holds task_id, log_url per task."""
    run_id = context.get("run_id")
    date = _logical_date(context)
    tables = sorted({"{}.{}".format(*_table_of(str(f["task_id"]))) for f in failed})
    subject = f"[report-pipeline] run {run_id} finished with {len(tables)} failed table(s): {', '.join(tables)}"
    lines = [f"run: {run_id}", f"logical date: {date}", f"reason: {context.get('reason') or '-'}", "failed:"]
    for f in failed:
        alias, table = _table_of(str(f["task_id"]))
        lines.append(f"- {table_label(alias, table)} task {f['task_id']}")
        if f.get("log_url"):
            lines.append(f"log: {f['log_url']}")
    return Alert(subject[:250], "\n".join(lines))


def make_notifier(target: AlertTarget, settings: Settings, alert: Alert) -> Any:
    """An Airflow notifier for one ``REPORTS_ALERT_NOTIFIERS`` entry, carrying ``alert``."""
    if target.kind == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            to=list(target.targets),
            from_email=settings.alert_from,
            subject=alert.subject,
            html_content=alert.html(),
            smtp_conn_id=settings.alert_smtp_conn_id,
        )
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    return SlackWebhookNotifier(slack_webhook_conn_id=target.targets[0], text=f"*{alert.subject}*\n{alert.body}")


def send(alert: Alert, context: Mapping[str, Any], settings: Settings, logger: Any = None) -> list[str]:
    """Send ``alert`` through every configured notifier; returns the failures (each logged, none raised).

    The notifiers' ``notify`` is called directly, not through the template renderer: the alert's text
    is final, and an error message with ``{{`` in it must not be read as a Jinja template.
    """
    logger = logger or log
    failures: list[str] = []
    for target in settings.alert_notifiers:
        try:
            make_notifier(target, settings, alert).notify(context)
        except Exception as exc:  # noqa: BLE001 - an alert must never change the outcome
            failures.append(f"{target.kind}:{','.join(target.targets)}: {type(exc).__name__}: {exc}")
    if failures:
        # One line for the task (or run), however many notifiers failed.
        logger.warning("alert not delivered by %d notifier(s): %s", len(failures), "; ".join(failures))
    return failures


class TaskFailureAlert:
    """A task's ``on_failure_callback``: alerts through the configured notifiers, never raises."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            alert = task_failure_alert(context)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not compose the failure alert: %s: %s", type(exc).__name__, exc)
            return
        send(alert, context, self.settings)


class RunFailureAlert:
    """The DAG's ``on_failure_callback``: one alert naming every failed table of the finished run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, context: Mapping[str, Any]) -> None:
        try:
            failed = failed_tasks(context)
            alert = run_failure_alert(context, failed)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not compose the run failure alert: %s: %s", type(exc).__name__, exc)
            return
        send(alert, context, self.settings)


def failed_tasks(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's failed tasks (task_id, state, log_url), from Airflow's task states of the run."""
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    dag = context["dag"]
    run_id = str(context["run_id"])
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    failed = []
    for task_id, state in sorted(_task_states(dag.dag_id, run_id).items()):
        if state in ("failed", "upstream_failed"):
            url = f"{base}/dags/{dag.dag_id}/runs/{quote(run_id)}/tasks/{task_id}"
            failed.append({"task_id": task_id, "state": state, "log_url": url if state == "failed" else None})
    return failed


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    """task_id -> state of one run: through the DAG processor's supervisor (how a deployment runs the
    DAG callback), else from the metadata DB (``dag.test()`` runs it in-process, with DB access)."""
    from airflow.sdk.execution_time import task_runner

    if getattr(task_runner, "SUPERVISOR_COMMS", None) is not None:
        states = task_runner.RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        return {str(k): str(v) for k, v in states.get(run_id, {}).items()}
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    found: dict[str, str] = {}
    for task_id, state in rows:
        # Mapped tasks have a row per chunk: the task counts as failed if any chunk failed.
        if found.get(task_id) != "failed":
            found[task_id] = str(getattr(state, "value", state))
    return found


def callbacks(settings: Settings) -> dict[str, Any]:
    """``default_args`` entries for the tasks' failure alert; empty when no notifier is configured."""
    return {"on_failure_callback": TaskFailureAlert(settings)} if settings.alert_notifiers else {}


def dag_callback(settings: Settings) -> Any:
    """The DAG's ``on_failure_callback``, or None when no notifier is configured."""
    return RunFailureAlert(settings) if settings.alert_notifiers else None
