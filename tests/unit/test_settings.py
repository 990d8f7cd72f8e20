"""settings.py as the one home of the REPORTS_* variables: what is known, what check-settings refuses.

A deployment (the compose stack's .env, a Helm values file) with a typo in a name or a malformed value
must stop at container start with the variable named, instead of running with a default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from report_pipeline import settingsdoc
from report_pipeline.environment import KNOWN_VARIABLES, check_environment
from report_pipeline.errors import ConfigError
from report_pipeline.notifiers import AlertTarget
from report_pipeline.setting_values import declared
from report_pipeline.settings import SETTINGS_VARIABLES, Settings

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
    assert unknown == {}, f"add these to environment.TOOLING_VARIABLES: {unknown}"


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


def test_every_setting_is_declared_with_its_variable_and_a_meaning() -> None:
    """Each Settings field is one setting() declaration: a REPORTS_* variable of its own and a README line."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    found = {f.name: declaration for f, declaration in declared(Settings)}
    assert set(found) == fields, f"fields not declared with setting(): {fields - set(found)}"
    names = [d.env for d in found.values()]
    assert len(names) == len(set(names)), "two settings read one variable"
    for name, declaration in found.items():
        assert re.fullmatch(r"REPORTS_[A-Z0-9_]+", declaration.env), name
        assert len(declaration.doc) > 10, f"{declaration.env} needs a README meaning"
    assert SETTINGS_VARIABLES == tuple(names)


def test_readme_settings_table_is_the_generated_one() -> None:
    """README's table between the markers is exactly what the declarations render (`make settings-table`)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settingsdoc.with_table(readme) == readme, "run `make settings-table`"
    assert settingsdoc.settings_table() in readme
    rows = settingsdoc.settings_table().splitlines()[2:]
    assert len(rows) == len(SETTINGS_VARIABLES)
    assert "| `REPORTS_PART_MB` | `8` | uncompressed size of one CSV part" in settingsdoc.settings_table()
    assert "| `REPORTS_SWAP_DEFER_INDEXES` | `off` |" in settingsdoc.settings_table()


def test_the_settings_table_check_fails_on_a_stale_readme(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("| `REPORTS_RETRIES` | `3` |", "| `REPORTS_RETRIES` | `4` |"), encoding="utf-8")
    assert settingsdoc.main(["--check", str(stale)]) == 1
    assert settingsdoc.main(["--write", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == readme
    assert settingsdoc.main(["--check", str(stale)]) == 0


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({}, "schedule", "@daily"),
        ({"REPORTS_SCHEDULE": ""}, "schedule", None),  # empty means manual runs only, not the default
        ({"REPORTS_SCHEDULE": " Manual "}, "schedule", None),
        ({"REPORTS_SCHEDULE": " 0 3 * * * "}, "schedule", "0 3 * * *"),
        ({"REPORTS_PART_MB": "16"}, "part_bytes", 16 * 2**20),
        ({"REPORTS_PART_MB": " "}, "part_bytes", 8 * 2**20),
        ({"REPORTS_COMPRESS": "OFF"}, "compress", False),
        ({"REPORTS_SWAP_DEFER_INDEXES": "Yes"}, "swap_defer_indexes", True),
        ({"REPORTS_TARGET_REQUIRE_TLS": "VERIFY"}, "target_require_tls", "verify"),
        ({"REPORTS_S3_SSE": " aws:kms "}, "sse", "aws:kms"),
        ({"REPORTS_ALERT_SMTP_CONN_ID": "  mail  "}, "alert_smtp_conn_id", "mail"),
        ({"REPORTS_S3_BUCKET_TEMPLATE": "r-{alias}"}, "bucket_template", "r-{alias}"),
        ({"REPORTS_RETRY_JITTER": "0.25"}, "retry_jitter", 0.25),
        ({"AIRFLOW_HOME": "/srv/af"}, "snapshot_path", Path("/srv/af/report_pipeline/admin_snapshot.json")),
        ({"REPORTS_SNAPSHOT_PATH": "/x/s.json", "AIRFLOW_HOME": "/a"}, "snapshot_path", Path("/x/s.json")),
        ({"REPORTS_ALERT_NOTIFIERS": "slack:ops bogus"}, "alert_notifiers", (AlertTarget("slack", ("ops",)),)),
    ],
)
def test_from_env_reads_each_setting_as_before(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(Settings.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"REPORTS_RETRY_JITTER": "1.5"},
            "REPORTS_RETRY_JITTER=1.5 must be between 0 and 1 (a fraction of each delay)",
        ),
        ({"REPORTS_RETRY_BACKOFF": "0.5"}, "REPORTS_RETRY_BACKOFF=0.5 must be a finite number of at least 1"),
        ({"REPORTS_RETRY_DELAY": "nan"}, "REPORTS_RETRY_DELAY=nan must be a finite number of at least 0"),
        ({"REPORTS_DAG_SHARDS": "0"}, "REPORTS_DAG_SHARDS=0 must be at least 1"),
        ({"REPORTS_SWAP_DEFER_INDEXES": "maybe"}, "REPORTS_SWAP_DEFER_INDEXES='maybe' must be on or off"),
        ({"REPORTS_SOURCE_REPLICA": "Always"}, "REPORTS_SOURCE_REPLICA='always' must be 'auto', 'off' or 'required'"),
        ({"REPORTS_S3_EXPECTED_OWNER": "12345"}, "REPORTS_S3_EXPECTED_OWNER='12345' must be a 12-digit AWS account id"),
        (
            {"REPORTS_NET_TIMEOUT": "30", "REPORTS_TARGET_LOCK_WAIT": "30"},
            "REPORTS_TARGET_LOCK_WAIT=30 and REPORTS_RENAME_LOCK_WAIT=5 must be below REPORTS_NET_TIMEOUT=30",
        ),
    ],
)
def test_from_env_refuses_a_bad_value_as_before(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert expected in str(error.value)
