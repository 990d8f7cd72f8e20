"""The local Airflow stack's one-time pieces (scripts/airflow_local.sh calls each):

airflow_setup.py secrets      export lines of a fresh JWT secret, API secret key and Fernet key
airflow_setup.py passwords    ADMIN_USER's password ADMIN_PASSWORD (and the test users') into
                              AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE
airflow_setup.py log-bucket   create LOG_BUCKET on the reports_s3 connection unless it exists
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import sys


def print_secrets() -> None:
    """The deployment's secrets as ``export`` lines (the caller keeps them in a 0600 file)."""
    from cryptography.fernet import Fernet

    print(f"export AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}")
    print(f"export AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
    print(f"export AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")


def write_passwords() -> None:
    """SimpleAuthManager generates a random password per user unless the file has one: write ours."""
    path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
    passwords[os.environ["ADMIN_USER"]] = os.environ["ADMIN_PASSWORD"]
    passwords.setdefault("rp_reader", "rp_reader")
    passwords.setdefault("rp_norole", "rp_norole")
    path.write_text(json.dumps(passwords) + "\n")
    path.chmod(0o600)


def ensure_log_bucket() -> None:
    """The bucket the task logs of a Celery stack go to (remote logging through reports_s3)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="reports_s3")
    if not hook.check_for_bucket(os.environ["LOG_BUCKET"]):
        hook.create_bucket(os.environ["LOG_BUCKET"])


COMMANDS = {"secrets": print_secrets, "passwords": write_passwords, "log-bucket": ensure_log_bucket}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]]()
