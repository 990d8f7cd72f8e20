"""report-pipeline: copy per-company report tables from a source MySQL through S3 into target MySQL.

This package is plain Python and imports without Airflow; ``report_pipeline.airflow`` is the thin
adapter that turns it into operators, task groups and a DAG.
"""

__version__ = "0.1.0"
