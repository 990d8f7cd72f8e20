"""Issue 14's pure pieces: the alert setting's syntax, source tables parsed from SQL, the query as a
template field, and the CLI's progress line (live on a terminal, silent when piped)."""

from __future__ import annotations

import io

import jinja2
import pytest

from report_pipeline.errors import ConfigError
from report_pipeline.notifiers import AlertTarget, parse_notifiers
from report_pipeline.progress import ProgressLine
from report_pipeline.settings import Settings


def test_notifiers_setting_selects_smtp_and_slack() -> None:
    assert parse_notifiers("smtp:a@x.com,b@x.com; slack:reports_slack") == (
        AlertTarget("smtp", ("a@x.com", "b@x.com")),
        AlertTarget("slack", ("reports_slack",)),
    )
    assert Settings.from_env({}).alert_notifiers == ()
    assert Settings.from_env({"REPORTS_ALERT_NOTIFIERS": "smtp:ops@x.com"}).alert_smtp_conn_id == "smtp_default"


@pytest.mark.parametrize("bad", ["pager:ops", "smtp:", "smtp:not-an-address", "ops@x.com"])
def test_a_bad_notifiers_setting_names_the_entry(bad: str) -> None:
    with pytest.raises(ConfigError, match="REPORTS_ALERT_NOTIFIERS"):
        parse_notifiers(bad)
    # Read by the DAG at parse time, a bad entry is left out (and logged), never breaking the DAG.
    good = Settings.from_env({"REPORTS_ALERT_NOTIFIERS": f"{bad} smtp:ops@x.com"}).alert_notifiers
    assert good == (AlertTarget("smtp", ("ops@x.com",)),)


def test_source_tables_come_from_the_sql_without_ctes_or_placeholders() -> None:
    from report_pipeline.airflow.lineage import source_tables

    query = (
        "WITH recent AS (SELECT * FROM shop.orders WHERE created_at >= %(date_from)s) "
        "SELECT r.id, u.name FROM recent r JOIN users u ON u.id = r.user_id "
        "WHERE u.company = %s AND u.id IN (SELECT user_id FROM `bans`)"
    )
    assert sorted(source_tables(query), key=str) == sorted(
        [("shop", "orders"), (None, "users"), (None, "bans")], key=str
    )
    assert source_tables("SELECT FROM WHERE (") == []


@pytest.mark.parametrize(
    "query",
    ["SELECT id FROM t WHERE note LIKE '{{%'", "SELECT id FROM t /* {# not jinja #} */", "SELECT 1 FROM t"],
)
def test_the_query_renders_verbatim_as_a_template_field(query: str) -> None:
    from report_pipeline.airflow.operators import shown_sql

    assert jinja2.Environment().from_string(shown_sql(query)).render() == query


def test_progress_line_is_live_on_a_terminal_and_silent_when_piped() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped = io.StringIO()
    line = ProgressLine(piped, "acme.users extract")
    line(10, 2**20)
    line.finish()
    assert piped.getvalue() == ""

    tty = Tty()
    line = ProgressLine(tty, "acme.users extract", interval=0)
    line(10, 2**20)
    line.next_chunk()
    line(5, 2**20)
    line.finish("loading...")
    text = tty.getvalue()
    assert text.startswith("\racme.users extract: 10 rows  1.0 MB")
    assert "15 rows  2.0 MB" in text and text.endswith("loading...\n")


def test_a_broken_metrics_backend_is_logged_once_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt
    import logging

    from airflow.sdk.observability.stats import Stats

    from report_pipeline.airflow.metrics import TableMetrics

    calls: list[str] = []

    def broken(stat: str, *args: object, **kwargs: object) -> None:
        calls.append(stat)
        raise OSError("statsd host unreachable")

    monkeypatch.setattr(Stats, "gauge", broken)
    monkeypatch.setattr(Stats, "timing", broken)
    logger = logging.getLogger("rp-test-metrics")
    warnings: list[str] = []
    monkeypatch.setattr(logger, "warning", lambda msg, *a: warnings.append(msg % a))
    metrics = TableMetrics("acme", "users", logger)
    metrics.extracted(10, 100, 50, 1.5)
    metrics.loaded(10, 100, 2.0, dt.datetime(2026, 11, 26, tzinfo=dt.UTC))
    assert calls == ["report_pipeline.extract.rows"], "after one failure the task stops trying"
    assert len(warnings) == 1 and "statsd host unreachable" in warnings[0]


def test_broken_lineage_is_logged_once_and_returns_empty_lineage() -> None:
    import logging

    from report_pipeline.airflow.lineage import safe_lineage

    class Op:
        log = logging.getLogger("rp-test-lineage")

    warnings: list[str] = []
    Op.log.warning = lambda msg, *a: warnings.append(msg % a)  # type: ignore[method-assign]
    op = Op()

    def fail() -> None:
        raise RuntimeError("transport down")

    first, second = safe_lineage(op, fail), safe_lineage(op, fail)
    assert first.inputs == [] and first.outputs == [] and second.outputs == []
    assert len(warnings) == 1 and "transport down" in warnings[0]
