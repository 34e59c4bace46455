"""Commands answer at once (issue 25): a command imports what it uses when it uses it.

`auditor --help` and the commands' own help import no AWS, database, template, notification or solver
library; `auditor status` imports no solver, template, notification or web library, nor botocore, nor
Alembic once the database is migrated. The pieces that make it so are checked here too: the lazy
command group's listing, the packages' names imported on first use, structlog's set-up made on its
import, the AWS regions read from botocore's own data, the newest migration known without Alembic.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import botocore.session
import click
import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from auditor.cli.main import COMMAND_MODULES, main
from auditor.domain import config as config_module
from auditor.store.migrate import alembic_config, newest_revision
from conftest import REPO

# Runs the command line in this interpreter, then writes the top-level packages it imported to a file.
_PROBE = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["auditor", *sys.argv[2:]]
try:
    runpy.run_module("auditor", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
else:
    code = 0
with open(out, "w") as file:
    json.dump({"code": code, "imported": sorted({name.split(".")[0] for name in sys.modules})}, file)
"""

NEVER_FOR_HELP = ("z3", "botocore", "boto3", "sqlalchemy", "alembic", "apprise", "jinja2", "pydantic")
WEB_STACK = ("starlette", "uvicorn", "prometheus_client")
NEVER_FOR_STATUS = (
    "z3",
    "apprise",
    "jinja2",
    *WEB_STACK,
    "botocore",
    "boto3",
    "procrastinate",
    "apscheduler",
)


def imported_by(folder: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of `auditor ARGS` run in `folder`, and the top-level packages it imported."""
    out = folder / "imported.json"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), result.stderr
    found = json.loads(out.read_text(encoding="utf-8"))
    return found["code"], set(found["imported"])


@pytest.fixture
def sample_class(tmp_path: Path) -> Path:
    """The shipped config.toml in a folder of its own: its SQLite database is made beside it."""
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    return tmp_path


# ------------------------------------------------------------------------------------ what is imported


@pytest.mark.slow  # the CLI in a process of its own
@pytest.mark.parametrize(
    "args",
    [("--help",), ("audit", "--help"), ("grade", "--help"), ("report", "--help"), ("status", "--help")],
)
def test_help_imports_no_heavy_library(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, imported = imported_by(tmp_path, *args)

    assert code == 0
    assert sorted(imported & {*NEVER_FOR_HELP, *WEB_STACK}) == []


@pytest.mark.slow
def test_status_imports_no_solver_template_notifier_web_or_aws_library(sample_class: Path) -> None:
    code, imported = imported_by(sample_class, "status", "--config", "config.toml")

    assert code == 0
    assert "sqlalchemy" in imported  # it read the database (and made it: a first command migrates)
    assert sorted(imported & set(NEVER_FOR_STATUS)) == []


@pytest.mark.slow
def test_status_on_a_migrated_database_does_not_import_alembic(sample_class: Path) -> None:
    assert imported_by(sample_class, "db", "upgrade", "--config", "config.toml")[0] == 0

    code, imported = imported_by(sample_class, "status", "--config", "config.toml")

    assert code == 0
    assert "alembic" not in imported


# ---------------------------------------------------------------------------------- the lazy group


def first_paragraph(command: click.Command) -> str:
    return " ".join(inspect.cleandoc(command.help or "").split("\n\n")[0].split())


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_the_listing_summarises_each_lazy_command_as_its_own_help_does(name: str) -> None:
    command = main.get_command(click.Context(main), name)

    assert command is not None
    assert COMMAND_MODULES[name].summary == first_paragraph(command)


def test_a_lazy_command_is_loaded_once_with_the_log_options_once() -> None:
    context = click.Context(main)
    first = main.get_command(context, "grade")
    main.commands.pop("grade")
    again = main.get_command(context, "grade")

    assert first is again is not None
    assert [p.name for p in again.params].count("log_level") == 1
    assert main.get_command(context, "no-such-command") is None


def test_the_help_lists_every_command_once_without_loading_the_lazy_ones() -> None:
    for name in COMMAND_MODULES:
        main.commands.pop(name, None)

    result = CliRunner().invoke(main, ["--help"])

    section = result.output.split("Commands:", 1)[1].splitlines()
    listed = [line.split()[0] for line in section if line.startswith("  ") and not line.startswith("   ")]
    assert result.exit_code == 0
    assert listed == main.list_commands(click.Context(main))
    assert not set(COMMAND_MODULES) & set(main.commands)


def test_a_lazy_command_runs_with_the_options_every_command_takes() -> None:
    result = CliRunner().invoke(main, ["report", "--help"])

    assert result.exit_code == 0 and "--log-level" in result.output and "--since" in result.output


# ---------------------------------------------------------------------- names imported on first use


LAZY_PACKAGES = ("auditor.store", "auditor.report", "auditor.web")


def names_for_the_type_checker(package: str) -> dict[str, str]:
    """Each name the package's `if TYPE_CHECKING:` block imports, with the module it comes from."""
    path = Path(importlib.import_module(package).__file__ or "")
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    found.update({alias.name: statement.module for alias in statement.names})
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_of_a_lazy_package_is_its_home_modules_own(package: str) -> None:
    module = importlib.import_module(package)
    homes = names_for_the_type_checker(package)

    assert sorted(homes) == sorted(module.__all__)
    for name, home in homes.items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name), name


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_name_a_lazy_package_lacks_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = importlib.import_module(package).nothing_here


# ------------------------------------------------------------------------ structlog, on its import


_LOG_BEFORE_STRUCTLOG = """
import sys
from auditor.common.logs import configure_logging
configure_logging("info", json_lines=True)
configure_logging("warning", json_lines=True)  # the last call wins
assert "structlog" not in sys.modules, "configure_logging imported structlog"
import structlog
log = structlog.get_logger()
log.info("not shown")
log.warning("shown", token="a secret")
"""


@pytest.mark.slow  # an interpreter of its own: this one has imported structlog long ago
def test_logging_configured_before_structlog_is_imported_holds_once_it_is() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LOG_BEFORE_STRUCTLOG],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["event"], line["level"], line["token"]) for line in lines] == [
        ("shown", "warning", "[redacted]")
    ]


# --------------------------------------------------------------------------------------- regions


@pytest.fixture
def no_aws_data_of_the_operators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / ".aws" / "config"))
    return home


def test_the_regions_read_from_botocores_own_data_are_the_sessions(
    no_aws_data_of_the_operators: Path,
) -> None:
    shipped = config_module._botocore_own_endpoints()

    assert shipped is not None
    assert shipped == botocore.session.get_session().get_data("endpoints")


def with_a_region_of_its_own(folder: Path) -> Path:
    """botocore's endpoint data with one more region, in a folder as AWS_DATA_PATH takes it."""
    data = botocore.session.get_session().get_data("endpoints")
    data["partitions"][0]["regions"]["zz-test-1"] = {"description": "a test region"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "endpoints.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def test_regions_of_data_the_operator_put_in_botocores_path_are_known(
    no_aws_data_of_the_operators: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(with_a_region_of_its_own(tmp_path / "data")))

    assert config_module._botocore_own_endpoints() is None
    assert "zz-test-1" in config_module.known_regions()


def test_aws_models_in_the_home_folder_leave_the_regions_to_botocore(
    no_aws_data_of_the_operators: Path,
) -> None:
    with_a_region_of_its_own(no_aws_data_of_the_operators / ".aws" / "models")

    assert config_module._botocore_own_endpoints() is None


def test_a_data_path_in_the_aws_configuration_leaves_the_regions_to_botocore(
    no_aws_data_of_the_operators: Path,
) -> None:
    config_file = no_aws_data_of_the_operators / ".aws" / "config"
    config_file.parent.mkdir()
    config_file.write_text("[default]\ndata_path = /somewhere\n", encoding="utf-8")

    assert config_module._botocore_own_endpoints() is None


# ------------------------------------------------------------------------------------- migrations


def test_the_newest_migration_is_alembics_head() -> None:
    assert [newest_revision()] == ScriptDirectory.from_config(alembic_config()).get_heads()
