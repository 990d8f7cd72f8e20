"""Metrics through Airflow's own ``Stats`` (StatsD, Datadog or OpenTelemetry, as ``[metrics]`` configures).

Each figure goes out under one fixed name per kind, with ``company`` and ``table`` tags: eight names
for the whole fleet, however many tables it has (20,000 tables would otherwise make 160,000 names,
and many metrics back ends bill or index per name). Only plain StatsD (``[metrics] statsd_on`` without
``statsd_influxdb_enabled`` or ``statsd_datadog_enabled``) drops tags; there each figure also goes out
with company and table in the name, as Airflow does for its own task metrics, so the per-table figures
are not lost. At fleet size, turn on ``statsd_influxdb_enabled`` (tags in the name's suffix, which
StatsD exporters such as statsd_exporter and Telegraf turn into labels) or use Datadog or
OpenTelemetry (README "Running for a year").

| name | kind | value |
|---|---|---|
| ``report_pipeline.extract.rows`` | gauge | rows one extract (or chunk) wrote |
| ``report_pipeline.extract.bytes`` | gauge | uncompressed CSV bytes it wrote |
| ``report_pipeline.extract.stored_bytes`` | gauge | bytes stored in S3 (after gzip) |
| ``report_pipeline.extract.duration`` | timer (ms) | the extract's wall time |
| ``report_pipeline.extract.source_wait`` | timer (ms) | time it (or a chunk plan) waited for a busy source |
| ``report_pipeline.load.rows`` | gauge | rows one load put into the target |
| ``report_pipeline.load.bytes`` | gauge | CSV bytes it read from S3 |
| ``report_pipeline.load.duration`` | timer (ms) | the load's wall time |
| ``report_pipeline.data_age`` | gauge (s) | now minus the logical date of the table's newest load |

Per-table names (plain StatsD only) are ``report_pipeline.<company>.<table>.<figure>``. Sending a metric
never fails a task: a broken metrics set-up is logged once per task and the data path goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "report_pipeline"


class TableMetrics:
    """The metrics of one task of one company table."""

    def __init__(self, company: str, table: str, logger: Any = None) -> None:
        self.company = company
        self.table = table
        self.log = logger or log
        self.failed = False
        self.per_table_names: bool | None = None  # read from Airflow's config on the first figure

    def _send(self, kind: str, figure: str, value: float) -> None:
        if self.failed:
            return
        try:
            from airflow.sdk.observability.stats import Stats

            tags = {"company": self.company, "table": self.table}
            send = getattr(Stats, kind)
            send(f"{PREFIX}.{figure}", value, tags=tags)
            if self.per_table_names is None:
                self.per_table_names = tags_dropped()
            if self.per_table_names:
                send(f"{PREFIX}.{self.company}.{self.table}.{figure}", value)
        except Exception as exc:  # noqa: BLE001 - metrics are best effort by design
            self.failed = True  # once per task: the next figures would fail the same way
            self.log.warning("metrics not sent (%s: %s); the task goes on", type(exc).__name__, exc)

    def extracted(self, rows: int, csv_bytes: int, stored_bytes: int, seconds: float) -> None:
        """The figures of one finished extract (or chunk)."""
        self._send("gauge", "extract.rows", rows)
        self._send("gauge", "extract.bytes", csv_bytes)
        self._send("gauge", "extract.stored_bytes", stored_bytes)
        self._send("timing", "extract.duration", seconds * 1000.0)

    def waited_for_source(self, seconds: float) -> None:
        """Time one extract or chunk plan waited for the source governor (0 when the source was calm)."""
        self._send("timing", "extract.source_wait", seconds * 1000.0)

    def loaded(self, rows: int, csv_bytes: int, seconds: float, logical_date: dt.datetime) -> None:
        """The figures of one finished load, and the table's data age after it."""
        self._send("gauge", "load.rows", rows)
        self._send("gauge", "load.bytes", csv_bytes)
        self._send("timing", "load.duration", seconds * 1000.0)
        self._send("gauge", "data_age", data_age_seconds(logical_date))


def tags_dropped() -> bool:
    """Whether the configured metrics flavour drops tags: plain StatsD (``[metrics]`` of Airflow 3.3)."""
    from airflow.sdk.configuration import conf

    if conf.getboolean("metrics", "statsd_datadog_enabled", fallback=False):
        return False
    if conf.getboolean("metrics", "statsd_on", fallback=False):
        return not conf.getboolean("metrics", "statsd_influxdb_enabled", fallback=False)
    return False  # OpenTelemetry keeps tags as attributes; without metrics nothing is sent at all


def data_age_seconds(logical_date: dt.datetime, now: dt.datetime | None = None) -> float:
    """Seconds between ``logical_date`` (the end of the newest loaded window) and now; never negative."""
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (now - logical_date).total_seconds())
