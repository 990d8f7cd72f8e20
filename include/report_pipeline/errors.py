"""The package's exceptions: one base class, so callers can catch everything the pipeline raises."""


class ReportPipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigError(ReportPipelineError):
    """An admin row (company, table spec, configuration) cannot be used as written."""


class TransferError(ReportPipelineError):
    """Moving rows between the source, S3 and the target failed in a way a retry will not fix."""


class RefusedError(TransferError):
    """The pipeline cannot be sure a load would be right, so it refuses and leaves the target as it was.

    Retrying does not help: the admin row, the run's parameters or the data must change first.
    """


class MismatchError(ReportPipelineError):
    """Verify found the target's rows different from the source's; a retry compares the same rows again."""


def show_value(value: str, limit: int = 80) -> str:
    """repr() of a user value for an error message, cut short so a huge hostile value cannot flood logs."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"
