"""The seed's Step Functions Retrier as an Airflow 3.3 retry policy.

``ErrorEquals: States.ALL, IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 2``: every error is
retried 3 times after the first try, waiting exactly 1 s, 2 s, then 4 s. Airflow's own
``retry_exponential_backoff`` would add up to 100 % hash jitter, so the policy returns exact delays.

Except where the error's class says a retry cannot help (``errors.is_retryable``: a bad admin row, a
refused load, a verify that found a difference, a transfer that would meet the same data again): then
the task fails at once, as the seed's states would have with that error left out of ErrorEquals.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

from report_pipeline.errors import is_retryable

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

INTERVAL_SECONDS = 1.0
MAX_ATTEMPTS = 3
BACKOFF_RATE = 2.0


class SeedRetrier(RetryPolicy):
    """Retry an error a retry can help after ``interval * rate ** (try_number - 1)`` seconds: 1 s, 2 s, 4 s."""

    def __init__(self, interval_seconds: float = INTERVAL_SECONDS, backoff_rate: float = BACKOFF_RATE) -> None:
        self.interval_seconds = interval_seconds
        self.backoff_rate = backoff_rate

    def delay(self, try_number: int) -> timedelta:
        """The wait after the given (1-based) failed try."""
        return timedelta(seconds=self.interval_seconds * self.backoff_rate ** (try_number - 1))

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
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SeedRetrier:
        """Rebuild from ``serialize``."""
        return cls(data["interval_seconds"], data["backoff_rate"])


def retry_arguments() -> dict[str, Any]:
    """Operator arguments that make a task follow the seed's Retrier."""
    return {
        "retries": MAX_ATTEMPTS,
        "retry_delay": timedelta(seconds=INTERVAL_SECONDS),
        "retry_exponential_backoff": 0,
        "retry_policy": SeedRetrier(),
    }
