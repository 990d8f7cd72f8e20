"""``[core] hostname_callable`` for the Celery workers of scripts/airflow_local.sh.

Several workers on one machine would all report the machine's name in their task instances'
``hostname``; each gets its own name in ``REPORTS_WORKER_HOSTNAME``, as separate machines would have.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name from ``REPORTS_WORKER_HOSTNAME``, else the machine's fully qualified name."""
    return os.environ.get("REPORTS_WORKER_HOSTNAME") or socket.getfqdn()
