"""Terminal vs transient errors: each class says whether a retry can help, and the retry decision reads it."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.unit.memtarget import LostConnection, MemoryServer

from report_pipeline.errors import (
    ConfigError,
    MismatchError,
    RefusedError,
    ReportPipelineError,
    TargetBusyError,
    TransferError,
    is_retryable,
)

TERMINAL = [ConfigError, TransferError, RefusedError, MismatchError]


@pytest.mark.parametrize("cls", TERMINAL)
def test_errors_that_meet_the_same_verdict_again_are_terminal(cls):
    assert not is_retryable(cls("x")) and cls.retryable is False


def test_a_busy_target_and_errors_not_raised_on_purpose_are_transient():
    assert is_retryable(TargetBusyError("x")) and isinstance(TargetBusyError("x"), TransferError)
    # A driver, network or S3 error may pass: retried, as the seed's Retrier retried every error.
    for error in (LostConnection(), OSError("reset"), TimeoutError(), RuntimeError("?")):
        assert is_retryable(error)
    # Every class of the package decides; none inherits a verdict it did not mean.
    classes = {c.__name__: c.retryable for c in (ReportPipelineError, *TERMINAL, TargetBusyError)}
    assert classes == {
        "ReportPipelineError": False,
        "ConfigError": False,
        "TransferError": False,
        "RefusedError": False,
        "MismatchError": False,
        "TargetBusyError": True,
    }


def test_a_writer_lock_held_past_its_bound_is_a_busy_target():
    server = MemoryServer()
    server.create_schema("acme")
    holder, waiter = server.session(), server.session()
    with holder.writer_lock("acme", "orders", 0), pytest.raises(TargetBusyError) as busy:
        with waiter.writer_lock("acme", "orders", 0):
            pass
    assert is_retryable(busy.value) and "another load of acme.orders still runs" in str(busy.value)


def test_the_retry_policy_fails_terminal_errors_at_once_and_retries_the_rest_on_the_seed_schedule():
    pytest.importorskip("airflow")
    from airflow.sdk.definitions.retry_policy import RetryAction

    from report_pipeline.airflow.retry import SeedRetrier

    policy = SeedRetrier()
    for error in (TransferError("loaded 3 rows, the manifests list 4"), RefusedError("r"), ConfigError("c")):
        decision = policy.evaluate(error, try_number=1, max_tries=4)
        assert decision.action == RetryAction.FAIL, error
        assert decision.reason is not None and type(error).__name__ in decision.reason
    for error in (TargetBusyError("busy"), LostConnection()):
        decisions = [policy.evaluate(error, try_number=n, max_tries=4) for n in (1, 2, 3)]
        assert [d.action for d in decisions] == [RetryAction.RETRY] * 3
        assert [d.retry_delay for d in decisions] == [dt.timedelta(seconds=s) for s in (1, 2, 4)]


def test_the_operators_fail_terminal_errors_without_retries_and_pass_transient_ones_on():
    pytest.importorskip("airflow")
    from airflow.sdk.exceptions import AirflowFailException

    from report_pipeline.airflow.retry import terminal_errors_fail_at_once

    def raising(error: BaseException):
        @terminal_errors_fail_at_once
        def execute(self, context):
            raise error

        return lambda: execute(None, {})

    with pytest.raises(AirflowFailException, match="the manifests list 4"):
        raising(TransferError("loaded 3 rows, the manifests list 4"))()
    with pytest.raises(TargetBusyError):
        raising(TargetBusyError("another load of acme.orders still runs"))()
    with pytest.raises(LostConnection):
        raising(LostConnection())()
