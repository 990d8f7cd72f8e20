"""settings.py as the one home of the REPORTS_* variables: what is known, what check-settings refuses.

A deployment (the compose stack's .env, a Helm values file) with a typo in a name or a malformed value
must stop at container start with the variable named, instead of running with a default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from report_pipeline.environment import check_environment
from report_pipeline.errors import ConfigError
from report_pipeline.settings import KNOWN_VARIABLES, SETTINGS_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]


class Recording(Mapping[str, str]):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_variable_from_env_reads_is_listed_in_settings_variables() -> None:
    env = Recording()
    Settings.from_env(env)
    read = {name for name in env.asked if name.startswith("REPORTS_")}
    assert read == set(SETTINGS_VARIABLES), "keep SETTINGS_VARIABLES equal to what Settings.from_env reads"


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `REPORTS_")]
    documented = {name for row in rows for name in re.findall(r"REPORTS_[A-Z0-9_]+", row)}
    assert set(SETTINGS_VARIABLES) <= documented, f"missing from README: {set(SETTINGS_VARIABLES) - documented}"
    assert documented <= KNOWN_VARIABLES, f"README documents unknown variables: {documented - KNOWN_VARIABLES}"


def _project_files() -> Iterator[Path]:
    """The code and configuration that set or read variables (prose may show typos on purpose)."""
    for pattern in ("include/**/*.py", "dags/*.py", "scripts/**/*"):
        yield from (p for p in ROOT.glob(pattern) if p.is_file())
    for name in ("Makefile", "docker-compose.yaml", ".env.example", "Dockerfile"):
        yield ROOT / name


def test_every_reports_variable_the_project_mentions_is_known() -> None:
    """A new REPORTS_* variable anywhere (a script, the compose file) must be added to KNOWN_VARIABLES,
    or every container started with it in its environment would refuse to start."""
    mentioned: dict[str, str] = {}
    for path in _project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in re.findall(r"(?<![A-Z0-9_])REPORTS_[A-Z0-9_]*[A-Z0-9]", text):
            mentioned.setdefault(name, str(path.relative_to(ROOT)))
    unknown = {name: where for name, where in mentioned.items() if name not in KNOWN_VARIABLES}
    assert unknown == {}, f"add these to settings.KNOWN_VARIABLES: {unknown}"


def test_known_variables_pass() -> None:
    env = {"REPORTS_PART_MB": "8", "REPORTS_COMPRESS": "none", "REPORTS_DEMO_SETUP": "true", "PATH": "/bin"}
    assert check_environment(env).part_bytes == 8 * 2**20


def test_an_unknown_name_is_refused_and_the_closest_known_one_suggested() -> None:
    with pytest.raises(ConfigError) as error:
        check_environment({"REPORTS_PART_MBB": "8", "REPORTS_SCHEDULE": "@daily", "REPORTS_ZZZ": "1"})
    message = str(error.value)
    assert "REPORTS_PART_MBB (did you mean REPORTS_PART_MB?)" in message
    assert "REPORTS_ZZZ" in message
    assert "REPORTS_SCHEDULE" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REPORTS_PART_MB", "lots", "REPORTS_PART_MB='lots' is not a whole number"),
        ("REPORTS_SNAPSHOT_TTL", "-1", "REPORTS_SNAPSHOT_TTL=-1 must be at least 0"),
        ("REPORTS_COMPRESS", "zip", "REPORTS_COMPRESS='zip' must be 'gzip' or 'none'"),
        ("REPORTS_S3_SSE", "aes", "REPORTS_S3_SSE='aes'"),
        ("REPORTS_S3_BUCKET_TEMPLATE", "reports-{alais}", "REPORTS_S3_BUCKET_TEMPLATE='reports-{alais}'"),
        ("REPORTS_TARGET_SCHEMA_TEMPLATE", "mysql{nothing}", "REPORTS_TARGET_SCHEMA_TEMPLATE='mysql{nothing}'"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_environment({name: value})
    assert expected in str(error.value)


def _check_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REPORTS_")}
    return subprocess.run(
        [sys.executable, "-m", "report_pipeline.airflow.console", "check-settings"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_settings_command_exits_non_zero_naming_the_variable() -> None:
    ok = _check_settings({"REPORTS_PART_MB": "16"})
    assert ok.returncode == 0, ok.stderr
    assert "settings ok: 1 REPORTS_* variable(s) set: REPORTS_PART_MB" in ok.stdout
    typo = _check_settings({"REPORTS_SNAPSHOT_TTLL": "60"})
    assert typo.returncode != 0
    assert "REPORTS_SNAPSHOT_TTLL (did you mean REPORTS_SNAPSHOT_TTL?)" in typo.stderr
    malformed = _check_settings({"REPORTS_ADMIN_TIMEOUT": "5s"})
    assert malformed.returncode != 0
    assert "REPORTS_ADMIN_TIMEOUT='5s' is not a whole number" in malformed.stderr
