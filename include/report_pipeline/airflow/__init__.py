"""The Airflow adapter: hooks, retry policy, operators and the task-group factory.

Everything Airflow-specific lives here; the package above it imports without Airflow.
"""

import importlib.util

# The providers this adapter imports, with the requirement that installs each (pyproject's dependencies).
PROVIDERS = (
    ("airflow.providers.mysql", "apache-airflow-providers-mysql>=6.7.1,<7"),
    ("airflow.providers.amazon", "apache-airflow-providers-amazon>=9.39,<10"),
    ("airflow.providers.common.sql", "apache-airflow-providers-common-sql>=2.4,<3"),
)


def require_providers() -> None:
    """Fail with what to install when a provider the adapter imports is missing (issue 21).

    pip installs them with the package; an environment built with ``--no-deps``, or one where a provider
    was removed, would otherwise fail every parse with a bare ``ModuleNotFoundError: airflow.providers.mysql``.
    Called by ``connections``, which every operator and the DAG factory import, before its first provider
    import: not on importing this package, since ``find_spec`` of a provider imports Airflow itself (1.7 s),
    and ``report-pipeline check-settings``, run before every container command, needs none of it.
    """
    missing = []
    for module, requirement in PROVIDERS:
        # find_spec, not import: a provider's package runs Airflow's provider discovery when imported.
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
            found = False
        if not found:
            missing.append(requirement)
    if missing:
        raise ImportError(
            f"report-pipeline needs {', '.join(r.split('>')[0] for r in missing)} in the Airflow environment that "
            f"parses and runs its DAG; install: pip install {' '.join(repr(r) for r in missing)}"
        )
