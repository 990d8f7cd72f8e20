"""The seed's Step Functions Retrier as an Airflow 3.3 retry policy.

``ErrorEquals: States.ALL, IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 2``: every error is
retried 3 times after the first try, waiting exactly 1 s, 2 s, then 4 s. Airflow's own
``retry_exponential_backoff`` would add up to 100 % hash jitter, so the policy returns exact delays.

Except where the error's class says a retry cannot help (``errors.is_retryable``: a bad admin row, a
refused load, a verify that found a difference, a transfer that would meet the same data again): then
the task fails at once, as the seed's states would have with that error left out of ErrorEquals.

That is the default. Seven seconds of retries do not outlast an Aurora failover (30-60 s), so the
REPORTS_RETRIES / REPORTS_RETRY_DELAY / REPORTS_RETRY_BACKOFF / REPORTS_RETRY_MAX_DELAY /
REPORTS_RETRY_JITTER settings (README "Settings") give a deployment more tries, longer waits and
jitter; jitter only ever lengthens a wait, so the schedule is never shorter than configured.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowFailException

from report_pipeline.errors import ReportPipelineError, is_retryable
from report_pipeline.settings import Settings

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

T = TypeVar("T")
INTERVAL_SECONDS = 1.0
MAX_ATTEMPTS = 3
BACKOFF_RATE = 2.0


class SeedRetrier(RetryPolicy):
    """Retry an error a retry can help after ``interval * rate ** (try_number - 1)`` seconds: 1 s, 2 s, 4 s
    by default.

    ``max_delay_seconds`` (0: none) caps a wait; ``jitter`` (0..1) stretches each one by up to that
    fraction, at random, so the tasks of a fleet that failed together do not retry together.
    """

    def __init__(
        self,
        interval_seconds: float = INTERVAL_SECONDS,
        backoff_rate: float = BACKOFF_RATE,
        max_delay_seconds: float = 0.0,
        jitter: float = 0.0,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.backoff_rate = backoff_rate
        self.max_delay_seconds = max_delay_seconds
        self.jitter = jitter

    def base_delay(self, try_number: int) -> float:
        """The wait in seconds after the given (1-based) failed try, before jitter."""
        seconds = self.interval_seconds * self.backoff_rate ** (try_number - 1)
        return min(seconds, self.max_delay_seconds) if self.max_delay_seconds > 0 else seconds

    def delay(self, try_number: int) -> timedelta:
        """The wait after the given (1-based) failed try: exact without jitter."""
        seconds = self.base_delay(try_number)
        if self.jitter > 0:
            seconds *= 1 + random.uniform(0, self.jitter)
        return timedelta(seconds=seconds)

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        """Retry every error a retry can help (States.ALL but the terminal ones) with the seed's exact delay;
        fail a terminal one at once; after the last try, fail as usual."""
        if not is_retryable(exception):
            return RetryDecision.fail(
                reason=f"{type(exception).__name__} is terminal: a retry cannot help; fix what the message says"
            )
        if max_tries and try_number > max_tries:
            return RetryDecision.default()
        wait = self.delay(try_number)
        return RetryDecision.retry(
            delay=wait,
            reason=f"seed Retrier: try {try_number} failed with {type(exception).__name__}; "
            f"retrying in {wait.total_seconds():g} s",
        )

    def serialize(self) -> dict[str, Any]:
        """JSON form (Airflow stores only a has-policy flag; this is for completeness)."""
        return {
            "__type": "SeedRetrier",
            "interval_seconds": self.interval_seconds,
            "backoff_rate": self.backoff_rate,
            "max_delay_seconds": self.max_delay_seconds,
            "jitter": self.jitter,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SeedRetrier:
        """Rebuild from ``serialize``."""
        return cls(
            data["interval_seconds"], data["backoff_rate"], data.get("max_delay_seconds", 0.0), data.get("jitter", 0.0)
        )


def retry_arguments(settings: Settings | None = None) -> dict[str, Any]:
    """Operator arguments that make a task follow the seed's Retrier, or the deployment's retry settings."""
    settings = settings or Settings()
    return {
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 0,
        "retry_policy": SeedRetrier(
            settings.retry_delay_seconds,
            settings.retry_backoff,
            settings.retry_max_delay_seconds,
            settings.retry_jitter,
        ),
    }


def terminal_errors_fail_at_once(execute: Callable[..., T]) -> Callable[..., T]:
    """An error whose class says a retry cannot help (``errors.is_retryable``: a bad admin row, a load the
    pipeline cannot be sure of, a verify that found a difference, a transfer that would meet the same data
    again) fails the task without retries; the target is already as it was. Others go to the retry policy."""

    @functools.wraps(execute)
    def run(self: BaseOperator, context: Any) -> T:
        try:
            return execute(self, context)
        except ReportPipelineError as exc:
            if is_retryable(exc):
                raise
            raise AirflowFailException(str(exc)) from exc

    return run
