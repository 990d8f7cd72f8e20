"""The package's exceptions: one base class, so callers can catch everything the pipeline raises."""


class ReportPipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigError(ReportPipelineError):
    """An admin row (company, table spec, configuration) cannot be used as written."""


class TransferError(ReportPipelineError):
    """Moving rows between the source, S3 and the target failed in a way a retry will not fix."""
