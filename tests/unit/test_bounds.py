"""Issue 11 without servers: the bound settings, the hint refusal, the S3 client bounds, the TLS check."""

from __future__ import annotations

import pytest

from report_pipeline.errors import ConfigError
from report_pipeline.settings import Settings
from report_pipeline.validation import check_select


def test_defaults_are_documented_values():
    s = Settings.from_env({})
    assert (s.net_timeout_seconds, s.query_timeout_seconds, s.target_lock_wait_seconds) == (120, 3600, 60)
    assert (s.rename_lock_wait_seconds, s.rename_attempts, s.s3_max_attempts) == (5, 5, 3)
    assert (s.task_timeout_seconds, s.dagrun_timeout_seconds) == (3 * 3600, 23 * 3600)
    assert (s.target_require_tls, s.source_replica, s.s3_expected_owner, s.s3_expire_days) == ("off", "auto", None, 0)
    # Four S3 calls' worth of patience: the server never kills a stream the extract is uploading.
    assert s.source_stream_timeout_seconds == 4 * 3 * 120


def test_settings_from_env():
    s = Settings.from_env(
        {
            "REPORTS_NET_TIMEOUT": "10",
            "REPORTS_QUERY_TIMEOUT": "30",
            "REPORTS_TARGET_LOCK_WAIT": "5",
            "REPORTS_RENAME_LOCK_WAIT": "2",
            "REPORTS_TARGET_REQUIRE_TLS": "verify",
            "REPORTS_SOURCE_REPLICA": "required",
            "REPORTS_S3_EXPECTED_OWNER": "123456789012",
            "REPORTS_S3_EXPIRE_DAYS": "90",
            "REPORTS_TASK_TIMEOUT": "600",
        }
    )
    assert (s.net_timeout_seconds, s.query_timeout_seconds, s.target_lock_wait_seconds) == (10, 30, 5)
    assert (s.target_require_tls, s.source_replica, s.s3_expected_owner) == ("verify", "required", "123456789012")
    assert (s.s3_expire_days, s.task_timeout_seconds, s.source_stream_timeout_seconds) == (90, 600, 120)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"REPORTS_NET_TIMEOUT": "0"}, "REPORTS_NET_TIMEOUT=0 must be at least 1"),
        ({"REPORTS_NET_TIMEOUT": "30", "REPORTS_TARGET_LOCK_WAIT": "30"}, "must be below REPORTS_NET_TIMEOUT=30"),
        ({"REPORTS_TARGET_REQUIRE_TLS": "yes"}, "REPORTS_TARGET_REQUIRE_TLS='yes'"),
        ({"REPORTS_SOURCE_REPLICA": "maybe"}, "REPORTS_SOURCE_REPLICA='maybe'"),
        ({"REPORTS_S3_EXPECTED_OWNER": "acme"}, "12-digit AWS account id"),
    ],
)
def test_bad_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT /*+ MAX_EXECUTION_TIME(0) */ id FROM t",
        "SELECT /*+ max_execution_time (0) */ id FROM t",
        "SELECT /*+ MAX_EXECUTION_TIME(3600001) */ id FROM t",
        "SELECT /*+ SET_VAR(max_execution_time=0) */ id FROM t",
        "SELECT /*+ BKA(t) SET_VAR(lock_wait_timeout=99999) */ id FROM t",
        "SELECT id FROM (SELECT /*+ MAX_EXECUTION_TIME(0) */ id FROM t) AS d",
        "SET STATEMENT max_statement_time=0 FOR SELECT id FROM t",
    ],
)
def test_hints_that_lift_the_query_timeout_are_refused(query):
    with pytest.raises(ConfigError):
        check_select(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT /*+ BKA(t) */ id FROM t",
        "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM t",
        "SELECT /*+ SET_VAR(sort_buffer_size = 16M) */ id FROM t",
        "SELECT /* MAX_EXECUTION_TIME(0) is only a remark here */ id FROM t",
        "SELECT 'MAX_EXECUTION_TIME(0)' AS txt FROM t",
    ],
)
def test_other_hints_and_mentions_pass(query):
    assert check_select(query) == query


def test_s3_client_config_bounds_and_keeps_the_users_extras():
    pytest.importorskip("botocore")
    from botocore.config import Config

    from report_pipeline.airflow.connections import s3_client_config

    settings = Settings(net_timeout_seconds=7, s3_max_attempts=2)
    bounded = s3_client_config(settings)
    assert (bounded.connect_timeout, bounded.read_timeout) == (7, 7)
    assert bounded.retries["total_max_attempts"] == 2
    merged = s3_client_config(settings, Config(s3={"addressing_style": "path"}, read_timeout=90))
    assert merged.s3 == {"addressing_style": "path"} and merged.read_timeout == 90 and merged.connect_timeout == 7


@pytest.mark.parametrize(
    "config, verified",
    [
        ({}, False),
        ({"ssl_mode": "REQUIRED"}, False),
        ({"ssl": {"ca": "/ca.pem"}}, False),
        ({"ssl_mode": "VERIFY_CA", "ssl": {"ca": "/ca.pem"}}, False),
        ({"ssl_mode": "VERIFY_IDENTITY", "ssl": {"ca": "/ca.pem"}}, True),
        ({"ssl": {"ca": "/ca.pem", "check_hostname": True}}, False),
        ({"ssl_mode": "verify_identity"}, True),
    ],
)
def test_verified_tls_check(config, verified):
    pytest.importorskip("airflow")
    from report_pipeline.airflow.connections import check_verified_tls

    if verified:
        check_verified_tls("reports_target_db", config)
    else:
        with pytest.raises(ConfigError, match="does not verify the server's identity"):
            check_verified_tls("reports_target_db", config)
