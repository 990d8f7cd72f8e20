"""The package's exceptions: one base class, so callers can catch everything the pipeline raises.

Each class says whether a retry can help (``retryable``, like dlt's terminal and transient destination
errors), and the Airflow retry decision reads it (``is_retryable``): a terminal error fails its task at
once, a transient one is retried on the seed's schedule.
"""

from __future__ import annotations

from typing import ClassVar


class ReportPipelineError(Exception):
    """Base class of every error the pipeline raises on purpose.

    ``retryable``: whether another try of the same task can succeed with nothing changed by anyone.
    False unless a class says otherwise: the pipeline raises on purpose when it knows what it found.
    """

    retryable: ClassVar[bool] = False


class ConfigError(ReportPipelineError):
    """An admin row (company, table spec, configuration) cannot be used as written. Terminal: the row must change."""


class TransferError(ReportPipelineError):
    """Moving rows between the source, S3 and the target failed in a way a retry will not fix: another try
    meets the same data and the same check. A subclass that a later try can get past says ``retryable``."""


class TargetBusyError(TransferError):
    """The target stayed busy past its bound: another load of the table held its writer lock, or readers
    kept a swap's RENAME waiting. Transient: a later try may find it free."""

    retryable = True


class RefusedError(TransferError):
    """The pipeline cannot be sure a load would be right, so it refuses and leaves the target as it was.

    Retrying does not help: the admin row, the run's parameters or the data must change first.
    """


class MismatchError(ReportPipelineError):
    """Verify found the target's rows different from the source's; a retry compares the same rows again."""


def is_retryable(error: BaseException) -> bool:
    """Whether another try can help: the pipeline's own errors say so by their class; anything else (a
    driver, network or S3 error) may pass, so it is retried, as the seed's Retrier retried every error."""
    return error.retryable if isinstance(error, ReportPipelineError) else True


def show_value(value: str, limit: int = 80) -> str:
    """repr() of a user value for an error message, cut short so a huge hostile value cannot flood logs."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"
