"""Checks of the container set-up: docker-compose.yaml, Dockerfile, .env.example, init SQL.

No Docker daemon here. Two tiers: static checks parse the files with PyYAML and a small
re-implementation of Compose's ``${VAR}`` interpolation, so that an inconsistent edit (a renamed
service, an undeclared volume, an undocumented variable, an Airflow upgrade in one place only, a
wrong connection id) fails in CI instead of at ``docker compose up``; and a real Compose
implementation, Debian's ``docker-compose`` 1.29 (installed by ``make system-packages``), validates
the file with ``docker-compose config`` and resolves each container's environment from a ``.env``,
which is then fed to the containers' own start-up check (``report-pipeline check-settings``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements.txt"
ENTRYPOINT = ROOT / "scripts" / "compose" / "entrypoint.sh"

AIRFLOW_INIT = "airflow-init"
AIRFLOW_LONG_RUNNING = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
)
REQUIRED_SERVICES = ("postgres", "redis", "mysql", "seaweedfs", AIRFLOW_INIT, *AIRFLOW_LONG_RUNNING)
HEALTHCHECKED_SERVICES = ("postgres", "redis", "mysql", "seaweedfs", *AIRFLOW_LONG_RUNNING)
POOLS = ("reports_source", "reports_target")
# dags/ and plugins/ only: the package itself is installed in the image, never mounted or on PYTHONPATH.
CODE_MOUNTS = {"dags": "/opt/airflow/dags", "plugins": "/opt/airflow/plugins"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# --- Compose interpolation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One ``${NAME<operator><operand>}`` or ``$NAME`` found in a value of the compose file."""

    name: str
    operator: str  # "" for ${NAME} and $NAME, else one of :- - :? ? :+ +
    operand: str

    @property
    def has_default(self) -> bool:
        return self.operator in (":-", "-")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r":?[-?+]")


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` that ends a ``${`` expression, found the way Compose does it.

    Compose counts only ``${`` as an opening brace, so the first other ``}`` closes the expression:
    ``${X:-{alias}}`` ends after ``{alias``.
    """
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed '${{' in {text!r}")


def interpolate(text: str, env: Mapping[str, str], found: list[Reference]) -> str:
    """Substitute variables like ``docker compose`` does; append every reference to ``found``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            name = _NAME.match(text, i + 2)
            if name is None:
                raise ValueError(f"invalid variable name after '${{' in {text!r}")
            end = _closing_brace(text, name.end())
            rest = text[name.end() : end]
            operator_match = _OPERATOR.match(rest)
            operator = operator_match.group() if operator_match else ""
            if rest and not operator:
                raise ValueError(f"unsupported expression '${{{name.group()}{rest}}}' in {text!r}")
            operand = rest[len(operator) :]
            found.append(Reference(name.group(), operator, operand))
            operand_value = interpolate(operand, env, found)  # always, to see nested references
            value = env.get(name.group())
            if operator in (":-", "-"):
                unset = value is None or (operator == ":-" and value == "")
                out.append(operand_value if unset else value or "")
            elif operator in (":+", "+"):
                is_set = value is not None and (operator == "+" or value != "")
                out.append(operand_value if is_set else "")
            else:
                out.append(value or "")
            i = end + 1
        else:
            name = _NAME.match(text, i + 1)
            if name is None:  # e.g. "$(": Compose keeps it as it is
                out.append("$")
                i += 1
            else:
                found.append(Reference(name.group(), "", ""))
                out.append(env.get(name.group(), ""))
                i = name.end()
    return "".join(out)


def _interpolate_tree(node: Any, env: Mapping[str, str], found: list[Reference]) -> Any:
    # Compose interpolates values, not keys.
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env, found) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(item, env, found) for item in node]
    if isinstance(node, str):
        return interpolate(node, env, found)
    return node


@cache
def _load() -> tuple[dict[str, Any], tuple[Reference, ...]]:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    found: list[Reference] = []
    resolved = _interpolate_tree(raw, {}, found)  # an empty environment: what the defaults give
    return resolved, tuple(found)


def compose() -> dict[str, Any]:
    """The compose file as ``docker compose config`` would see it with no .env and no variables."""
    return _load()[0]


def references() -> tuple[Reference, ...]:
    return _load()[1]


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def airflow_image() -> str:
    return compose()["x-airflow-common"]["image"]


# Services that only borrow the Airflow image for its Python (no Airflow component, no settings).
IMAGE_TOOLS = frozenset({"mysql-certs"})


def airflow_services() -> dict[str, dict[str, Any]]:
    """Services built on the x-airflow-common anchor (recognised by its image)."""
    return {
        name: svc for name, svc in services().items() if svc.get("image") == airflow_image() and name not in IMAGE_TOOLS
    }


def env_example_values() -> dict[str, str]:
    """The variables .env.example sets, values unquoted (a copy of it is the stack's .env)."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A container's environment: its env_file (.env, i.e. a copy of .env.example) under ``environment``."""
    merged = env_example_values() if service.get("env_file") in (".env", [".env"]) else {}
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    merged.update({str(key): "" if value is None else str(value) for key, value in env.items()})
    return merged


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    kind: str  # "volume" or "bind"


def mounts(service: Mapping[str, Any]) -> Iterator[Mount]:
    for entry in service.get("volumes") or ():
        if isinstance(entry, dict):
            yield Mount(str(entry.get("source", "")), str(entry["target"]), str(entry.get("type", "volume")))
            continue
        source, _, rest = entry.partition(":")
        if not rest:  # anonymous volume
            continue
        target = rest.split(":", 1)[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield Mount(source, target, kind)


def split_image(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` -> (repo, tag); a ``:`` inside a registry host is not a tag."""
    reference = image.split("@", 1)[0]
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, None
    return name, tag


def airflow_pin() -> str:
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*apache-airflow(?:\[[^\]]*\])?\s*==\s*([0-9][^\s;#]*)", line)
        if match:
            return match.group(1)
    raise AssertionError("requirements.txt does not pin apache-airflow==<version>")


def env_example_names(*, include_commented: bool) -> set[str]:
    prefix = r"(?:#\s*)?" if include_commented else ""
    pattern = re.compile(rf"^\s*{prefix}(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class ParsedConnection:
    conn_type: str
    host: str | None
    schema: str | None
    extra: dict[str, Any]


def parse_connection(value: str) -> ParsedConnection:
    """Parse an ``AIRFLOW_CONN_*`` value (URI or JSON form) the way Airflow's Task SDK does."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        return ParsedConnection(data["conn_type"], data.get("host"), data.get("schema"), extra)
    parts = urlsplit(value)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra = json.loads(query["__extra__"]) if "__extra__" in query else query
    schema = unquote(parts.path[1:]) if parts.path else None
    return ParsedConnection(parts.scheme.replace("-", "_"), parts.hostname, schema or None, extra)


# --- Structure ---------------------------------------------------------------------------------


def test_compose_has_the_expected_services_and_executor() -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services()]
    assert not missing, f"services missing from docker-compose.yaml: {missing}"
    assert set(AIRFLOW_LONG_RUNNING) | {AIRFLOW_INIT} <= set(airflow_services()), (
        "every Airflow service must be built on the x-airflow-common anchor"
    )
    for name, svc in airflow_services().items():
        assert environment(svc).get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", name
    assert services()["airflow-apiserver"]["command"] == "api-server"
    assert any(str(port).endswith(":8080") for port in services()["airflow-apiserver"].get("ports", ()))


def test_every_depends_on_target_exists_and_can_satisfy_its_condition() -> None:
    problems = []
    for name, svc in services().items():
        for target, condition in depends_on(svc).items():
            if target not in services():
                problems.append(f"{name} depends on unknown service {target!r}")
                continue
            if condition not in DEPENDS_ON_CONDITIONS:
                problems.append(f"{name} -> {target}: unknown condition {condition!r}")
            if condition == "service_healthy" and not services()[target].get("healthcheck"):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
    assert not problems, "\n".join(problems)


def test_every_named_volume_is_declared_and_every_declared_volume_used() -> None:
    declared = set(compose().get("volumes") or {})
    used = {m.source for svc in services().values() for m in mounts(svc) if m.kind == "volume"}
    assert used <= declared, f"named volumes used but not declared under 'volumes:': {sorted(used - declared)}"
    assert declared <= used, f"volumes declared but never mounted: {sorted(declared - used)}"


def test_every_airflow_service_waits_for_airflow_init() -> None:
    problems = [
        name
        for name, svc in airflow_services().items()
        if name != AIRFLOW_INIT and depends_on(svc).get(AIRFLOW_INIT) != "service_completed_successfully"
    ]
    assert not problems, f"not waiting for airflow-init (service_completed_successfully): {problems}"


def test_airflow_init_waits_for_the_databases_and_storage() -> None:
    deps = depends_on(services()[AIRFLOW_INIT])
    for name in ("postgres", "redis", "mysql", "seaweedfs"):
        assert deps.get(name) == "service_healthy", f"airflow-init must wait for {name} to be healthy"


@pytest.mark.parametrize("name", HEALTHCHECKED_SERVICES)
def test_service_has_a_healthcheck(name: str) -> None:
    check = services()[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = check.get("test")
    assert test, f"{name}: no healthcheck test"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: malformed healthcheck {test!r}"


def test_apiserver_healthcheck_uses_the_monitor_health_endpoint() -> None:
    assert "/api/v2/monitor/health" in " ".join(services()["airflow-apiserver"]["healthcheck"]["test"])


# --- Variables ---------------------------------------------------------------------------------


def test_every_variable_without_default_is_in_env_example() -> None:
    documented = env_example_names(include_commented=True)
    undocumented = sorted({ref.name for ref in references() if not ref.has_default} - documented)
    assert not undocumented, f"${{VAR}} without a default and missing from .env.example: {undocumented}"


def test_env_example_only_sets_variables_the_compose_file_reads() -> None:
    from report_pipeline.environment import KNOWN_VARIABLES

    read = {ref.name for ref in references()}
    # What the containers read through env_file: the settings and the connections.
    forwarded = {n for n in env_example_names(include_commented=False) if n in KNOWN_VARIABLES}
    forwarded |= {n for n in env_example_names(include_commented=False) if n.startswith("AIRFLOW_CONN_REPORTS_")}
    unused = sorted(env_example_names(include_commented=False) - read - forwarded)
    assert not unused, f".env.example sets variables neither docker-compose.yaml nor the containers read: {unused}"


def test_env_example_sets_every_setting() -> None:
    from report_pipeline.settings import SETTINGS_VARIABLES

    missing = sorted(set(SETTINGS_VARIABLES) - env_example_names(include_commented=False))
    assert not missing, f".env.example does not list these settings (README 'Settings'): {missing}"


def test_every_airflow_service_reads_the_env_file() -> None:
    for name, svc in airflow_services().items():
        env_file = svc.get("env_file")
        assert env_file in (".env", [".env"]), f"{name}: env_file is {env_file!r}, not .env"


def test_defaults_contain_no_bare_braces() -> None:
    # Compose ends ${VAR:-...} at the first "}", so a default like "{alias}" is silently cut.
    bad = [
        f"${{{ref.name}{ref.operator}{ref.operand}}}"
        for ref in references()
        if re.search(r"(?<!\$)\{", ref.operand) or "}" in re.sub(r"\$\{[^}]*\}", "", ref.operand)
    ]
    assert not bad, f"defaults with '{{' or '}}' are cut short by Compose: {bad}"


# --- Images ------------------------------------------------------------------------------------


def test_every_image_is_pinned() -> None:
    problems = []
    for name, svc in services().items():
        image = svc.get("image")
        if not image:
            problems.append(f"{name}: no image name (a build needs one too, to tag what it builds)")
            continue
        _, tag = split_image(image)
        if "@" in image:
            continue
        if tag is None or tag == "latest":
            problems.append(f"{name}: image {image!r} is not pinned to a tag")
    assert not problems, "\n".join(problems)


def test_airflow_image_tag_matches_requirements() -> None:
    _, tag = split_image(airflow_image())
    assert tag is not None
    version = tag.split("-", 1)[0]
    assert version == airflow_pin(), (
        f"compose Airflow image tag {tag!r} does not match apache-airflow=={airflow_pin()} in requirements.txt"
    )


def test_dockerfile_from_tag_matches_compose_image_tag() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    from_line = next(line for line in lines if line.upper().startswith("FROM "))
    words = [word for word in from_line.split()[1:] if not word.startswith("--")]
    base_repo, base_tag = split_image(words[0])
    assert base_repo == "apache/airflow", f"Dockerfile must build on apache/airflow, not {base_repo}"
    assert base_tag is not None and base_tag.split("-", 1)[0] == airflow_pin()
    _, compose_tag = split_image(airflow_image())
    assert base_tag == compose_tag, f"Dockerfile FROM tag {base_tag!r} != compose image tag {compose_tag!r}"
    build = compose()["x-airflow-common"].get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context is not None, "x-airflow-common must build the image from the Dockerfile"
    assert (COMPOSE_FILE.parent / context / "Dockerfile").resolve() == DOCKERFILE.resolve()


# --- Airflow containers ------------------------------------------------------------------------

CONNECTIONS = {
    "AIRFLOW_CONN_REPORTS_ADMIN_DB": "mysql",
    "AIRFLOW_CONN_REPORTS_SOURCE_DB": "mysql",
    "AIRFLOW_CONN_REPORTS_TARGET_DB": "mysql",
    "AIRFLOW_CONN_REPORTS_S3": "aws",
}


@pytest.mark.parametrize(("variable", "conn_type"), CONNECTIONS.items())
def test_contract_connection_is_set_in_every_airflow_service(variable: str, conn_type: str) -> None:
    for name, svc in airflow_services().items():
        value = environment(svc).get(variable)
        assert value, f"{name}: {variable} is not set"
        conn = parse_connection(value)
        assert conn.conn_type == conn_type, f"{name}: {variable} has conn_type {conn.conn_type!r}"
    conn = parse_connection(environment(airflow_services()[AIRFLOW_INIT])[variable])
    if variable == "AIRFLOW_CONN_REPORTS_ADMIN_DB":
        assert (conn.host, conn.schema) == ("mysql", "reports_admin")
    elif variable == "AIRFLOW_CONN_REPORTS_SOURCE_DB":
        assert (conn.host, conn.schema) == ("mysql", "source")
    elif variable == "AIRFLOW_CONN_REPORTS_TARGET_DB":
        assert conn.host == "mysql"
        assert conn.extra.get("local_infile") is True, "the target connection needs extra local_infile: true"
    else:
        assert conn.extra.get("endpoint_url") == "http://seaweedfs:8333"
        assert conn.extra.get("region_name")


def test_airflow_init_checks_the_settings_first_then_sets_up_pools_db_and_admin_schema() -> None:
    script = "\n".join(services()[AIRFLOW_INIT]["command"])
    for pool in POOLS:
        assert re.search(rf"airflow pools set {pool} ", script), f"airflow-init does not create pool {pool}"
    assert "airflow db migrate" in script
    assert "report-pipeline init-admin" in script
    assert "report-pipeline demo-setup" in script
    assert 0 <= script.index("report-pipeline check-settings") < script.index("airflow db migrate")


def test_airflow_services_use_the_installed_package() -> None:
    for name, svc in airflow_services().items():
        binds = {m.target: m.source for m in mounts(svc) if m.kind == "bind"}
        for folder, target in CODE_MOUNTS.items():
            assert target in binds, f"{name}: {target} is not mounted"
            assert Path(binds[target]).name == folder, f"{name}: {target} is mounted from {binds[target]}"
        assert not [t for t in binds if t.startswith("/opt/airflow/include")], f"{name}: include/ is mounted"
        assert "PYTHONPATH" not in environment(svc), f"{name}: sets PYTHONPATH"
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"^\s*ENV\s.*PYTHONPATH", dockerfile, re.M), "the Dockerfile sets PYTHONPATH"
    assert re.search(r"pip install .*/tmp/report-pipeline/src -c .*constraints-3\.11\.txt", dockerfile)
    entrypoint = r'^ENTRYPOINT \["/usr/bin/dumb-init", "--", "/opt/report-pipeline/entrypoint.sh"\]$'
    assert re.search(entrypoint, dockerfile, re.M), "the image must check its settings before Airflow starts"


def test_airflow_config_options_exist() -> None:
    """Every AIRFLOW__SECTION__KEY of a core section names a real option of the installed Airflow."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("apache-airflow is not installed")
    config_yml = Path(next(iter(spec.submodule_search_locations))) / "config_templates" / "config.yml"
    if not config_yml.exists():
        pytest.skip(f"{config_yml} not found")
    options = {
        section: set((body or {}).get("options") or {})
        for section, body in yaml.safe_load(config_yml.read_text(encoding="utf-8")).items()
    }
    unknown = []
    for variable in environment(compose()["x-airflow-common"]):
        match = re.fullmatch(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)", variable)
        if not match:
            continue
        section, key = match.group(1).lower(), match.group(2).lower()
        if section in options and key not in options[section]:  # provider sections (celery) are skipped
            unknown.append(variable)
    assert not unknown, f"not options of Airflow {airflow_pin()}: {unknown}"


# --- MySQL -------------------------------------------------------------------------------------


def test_mysql_enables_local_infile() -> None:
    command = services()["mysql"].get("command") or []
    if isinstance(command, str):
        command = command.split()
    flags = {re.sub(r"[-_]", "-", arg.split("=", 1)[0]): arg.partition("=")[2] for arg in command}
    assert flags.get("--local-infile", "").upper() in ("1", "ON", "TRUE"), "mysql needs --local-infile=1"


def test_mysql_init_sql_exists_and_creates_the_contract_objects() -> None:
    init = [m for m in mounts(services()["mysql"]) if m.target.startswith("/docker-entrypoint-initdb.d")]
    assert init, "mysql does not mount an init SQL file into /docker-entrypoint-initdb.d"
    for mount in init:
        path = (COMPOSE_FILE.parent / mount.source).resolve()
        assert path.is_file(), f"init SQL {mount.source} does not exist"
    sql = "\n".join((COMPOSE_FILE.parent / m.source).read_text(encoding="utf-8") for m in init)
    for database in ("reports_admin", "source"):
        assert re.search(rf"CREATE\s+DATABASE\s+IF\s+NOT\s+EXISTS\s+`?{database}`?", sql, re.I), database
    assert re.search(r"CREATE\s+USER\s+(IF\s+NOT\s+EXISTS\s+)?'reports'@'%'", sql, re.I)
    assert environment(services()["mysql"]).get("MYSQL_USER", "reports") == "reports"


# --- A real Compose implementation: docker-compose config --------------------------------------


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "docker-compose is not installed: `make system-packages` (scripts/services.sh install) installs "
            "Debian's docker-compose, which validates docker-compose.yaml without a Docker daemon"
        )
    return found


def compose_config(tmp_path: Path, env_text: str) -> tuple[dict[str, Any], str]:
    """``docker-compose config`` of a copy of the project holding ``env_text`` as its .env."""
    project = tmp_path / "project"
    (project / "scripts" / "compose").mkdir(parents=True)
    shutil.copy(COMPOSE_FILE, project / COMPOSE_FILE.name)
    shutil.copy(ROOT / "scripts" / "compose" / "mysql-init.sql", project / "scripts" / "compose")
    shutil.copy(ROOT / "scripts" / "compose" / "mysql_certs.py", project / "scripts" / "compose")
    (project / ".env").write_text(env_text, encoding="utf-8")
    # Only the .env may feed the substitutions: none of this process's variables.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    out = subprocess.run(
        [_docker_compose(), "config"], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr}"
    return yaml.safe_load(out.stdout), out.stderr


def _check_settings(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """What every Airflow container runs before it starts, with that container's environment."""
    venv_bin = str(Path(sys.executable).parent)
    return subprocess.run(
        ["bash", str(ENTRYPOINT), "airflow", "version"],
        env={**env, "PATH": f"{venv_bin}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_config_accepts_the_file_and_every_variable_is_set(tmp_path: Path) -> None:
    config, warnings = compose_config(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert "is not set" not in warnings, warnings
    assert set(REQUIRED_SERVICES) <= set(config["services"])
    health = config["services"]["airflow-apiserver"]["healthcheck"]["test"]
    assert "http://localhost:8080/api/v2/monitor/health" in health
    assert config["services"]["seaweedfs"]["image"].startswith("chrislusf/seaweedfs:")


def test_docker_compose_gives_every_airflow_container_the_settings_and_connections(tmp_path: Path) -> None:
    config, _ = compose_config(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    wanted = {
        name: value
        for name, value in env_example_values().items()
        if name.startswith(("REPORTS_", "AIRFLOW_CONN_REPORTS_"))
    }
    assert len([n for n in wanted if n.startswith("AIRFLOW_CONN_")]) == 4
    for name in (*AIRFLOW_LONG_RUNNING, AIRFLOW_INIT):
        env = {k: "" if v is None else str(v) for k, v in (config["services"][name].get("environment") or {}).items()}
        assert {k: env.get(k) for k in wanted} == wanted, name
        assert "PYTHONPATH" not in env, name
        conn = parse_connection(env["AIRFLOW_CONN_REPORTS_S3"])
        seaweed = config["services"]["seaweedfs"]["environment"]
        assert (conn.extra["endpoint_url"], conn.extra["region_name"]) == ("http://seaweedfs:8333", "us-east-1")
        # The S3 connection carries the one key pair SeaweedFS accepts.
        assert urlsplit(env["AIRFLOW_CONN_REPORTS_S3"]).username == seaweed["AWS_ACCESS_KEY_ID"]
        assert urlsplit(env["AIRFLOW_CONN_REPORTS_S3"]).password == seaweed["AWS_SECRET_ACCESS_KEY"]


def test_containers_start_with_the_example_settings(tmp_path: Path) -> None:
    config, _ = compose_config(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    env = {k: str(v) for k, v in config["services"]["airflow-worker"]["environment"].items() if v is not None}
    out = _check_settings(env)
    assert "settings ok:" in out.stderr, out.stderr
    # The check passed and handed over to the official image's /entrypoint, which only the image has.
    assert "/entrypoint" in out.stderr and out.returncode == 127, out.stderr


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("REPORTS_PART_MBB=8", "REPORTS_PART_MBB (did you mean REPORTS_PART_MB?)"),
        ("REPORTS_SNAPSHOT_TTL=5m", "REPORTS_SNAPSHOT_TTL='5m' is not a whole number"),
        ("REPORTS_COMPRESS=zstd", "REPORTS_COMPRESS='zstd' must be 'gzip' or 'none'"),
    ],
)
def test_a_bad_reports_variable_in_env_stops_every_container_naming_it(tmp_path: Path, line: str, named: str) -> None:
    config, _ = compose_config(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8") + line + "\n")
    for name in (*AIRFLOW_LONG_RUNNING, AIRFLOW_INIT):
        env = {k: str(v) for k, v in config["services"][name]["environment"].items() if v is not None}
        assert line.split("=", 1)[0] in env, f"{name} does not get {line} from .env"
    out = _check_settings({k: str(v) for k, v in config["services"]["airflow-scheduler"]["environment"].items()})
    assert out.returncode == 64, out.stderr
    assert named in out.stderr
    assert "not starting 'airflow version'" in out.stderr


def test_the_stack_requires_verified_tls_to_its_mysql(tmp_path: Path) -> None:
    """Issue 22.5: MySQL 8.4 serves its own certificates and refuses plain connections; the pipeline's
    containers require verified TLS to source and target, and the connections verify host ``mysql``."""
    resolved, _ = compose_config(tmp_path, ENV_EXAMPLE.read_text(encoding="utf-8"))
    mysql = resolved["services"]["mysql"]
    assert "--require-secure-transport=ON" in mysql["command"]
    assert mysql["depends_on"]["mysql-certs"]["condition"] == "service_completed_successfully"
    for name in ("airflow-apiserver", "airflow-worker", "airflow-scheduler", "airflow-dag-processor", "airflow-init"):
        env = resolved["services"][name]["environment"]
        assert env["REPORTS_SOURCE_REQUIRE_TLS"] == env["REPORTS_TARGET_REQUIRE_TLS"] == "verify", name
        for conn in ("ADMIN", "SOURCE", "TARGET"):
            uri = unquote(env[f"AIRFLOW_CONN_REPORTS_{conn}_DB"])
            assert "VERIFY_IDENTITY" in uri and "/opt/airflow/mysql-certs/ca.pem" in uri, (name, conn)


def test_the_stack_certificate_verifies_for_host_mysql(tmp_path: Path) -> None:
    """The certificates mysql_certs.py writes pass a real TLS handshake that checks the name ``mysql``."""
    import socket
    import ssl
    import threading

    subprocess.run([sys.executable, str(ROOT / "scripts" / "compose" / "mysql_certs.py"), str(tmp_path)], check=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "server-cert.pem", tmp_path / "server-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        sock, _ = listener.accept()
        with server_ctx.wrap_socket(sock, server_side=True) as tls:
            tls.sendall(b"ok")

    threading.Thread(target=serve, daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with (
        socket.create_connection(listener.getsockname()) as raw,
        client_ctx.wrap_socket(raw, server_hostname="mysql") as tls,
    ):
        assert tls.recv(2) == b"ok"
    listener.close()


@pytest.mark.parametrize(("line", "wanted"), [("", "0.1"), ("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=1", "1")])
def test_the_scheduler_sleeps_a_tenth_of_a_second_when_idle_unless_env_says(
    tmp_path: Path, line: str, wanted: str
) -> None:
    # The idle sleep is most of the wait between an extract's end and its load's start (README
    # "Per-task cost"); .env may set Airflow's 1 s back (docs/deploy.md "Scheduler idle sleep").
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    env_text = "\n".join(
        n for n in example.splitlines() if not n.startswith("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME=")
    )
    config, _ = compose_config(tmp_path, f"{env_text}\n{line}\n")
    for name in (*AIRFLOW_LONG_RUNNING, AIRFLOW_INIT):
        env = config["services"][name].get("environment") or {}
        assert str(env.get("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME")) == wanted, name
