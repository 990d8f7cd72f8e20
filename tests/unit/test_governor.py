"""The source governor's pure parts: which figure is over its threshold, and the backoff."""

from __future__ import annotations

from report_pipeline import governor
from report_pipeline.governor import Limits, SourceLoad, over_limits
from report_pipeline.settings import Settings


def test_each_threshold_is_off_at_zero_and_strictly_above_counts():
    assert not Limits().enabled
    busy = SourceLoad(threads_running=500, lag_seconds=9999, replica=True)
    assert over_limits(busy, Limits()) is None
    assert over_limits(SourceLoad(20), Limits(max_threads_running=20)) is None
    assert over_limits(SourceLoad(21), Limits(max_threads_running=20)) == (
        "Threads_running=21 is above REPORTS_SOURCE_MAX_THREADS_RUNNING=20"
    )


def test_the_lag_is_named_as_the_server_names_it_and_a_stopped_replica_counts_as_lagging():
    limits = Limits(max_lag_seconds=30)
    assert over_limits(SourceLoad(1), limits) is None  # a primary: no replica status
    mysql = SourceLoad(1, 31, replica=True, lag_figure="Seconds_Behind_Source", lag_statement="SHOW REPLICA STATUS")
    assert over_limits(mysql, limits) == (
        "the replica lags: Seconds_Behind_Source=31 is above REPORTS_SOURCE_MAX_LAG_SECONDS=30"
    )
    stopped = SourceLoad(1, None, replica=True, lag_statement="SHOW SLAVE STATUS")
    assert over_limits(stopped, limits) == (
        "the replica's replication is not running (Seconds_Behind_Master is NULL in SHOW SLAVE STATUS), "
        "so its lag is unknown and may be above REPORTS_SOURCE_MAX_LAG_SECONDS=30"
    )


def test_backoff_doubles_from_two_seconds_up_to_a_minute():
    assert [governor.backoff_seconds(i) for i in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert governor.backoff_seconds(10_000) == 60


def test_the_settings_reach_the_limits():
    env = {
        "REPORTS_SOURCE_MAX_THREADS_RUNNING": "40",
        "REPORTS_SOURCE_MAX_LAG_SECONDS": "120",
        "REPORTS_GOVERNOR_MAX_WAIT": "900",
    }
    assert governor.limits_of(Settings.from_env(env)) == Limits(40, 120, 900)
    assert governor.limits_of(Settings.from_env({})) == Limits(0, 0, 3600)
