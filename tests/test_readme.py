"""The README tells the truth: its commands exist and run here, its configuration loads."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from auditor.cli.main import main
from conftest import REPO, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """Every subcommand the README's command table names."""
    return sorted(set(re.findall(r"^\| `auditor ([a-z]+(?: upgrade)?)", README, flags=re.MULTILINE)))


def test_the_readme_names_every_command_of_the_program() -> None:
    documented = {name.split()[0] for name in readme_commands()}
    assert documented == set(main.list_commands(click.Context(main)))


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_the_readme_configuration_block_is_a_valid_configuration(tmp_path: Path) -> None:
    from auditor.domain.config import load_config

    block = re.search(r"```toml\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    text = block.group(1)
    tomllib.loads(text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, env={})
    assert config.labs[0].name == "pair-01"


@pytest.mark.slow
def test_the_readme_permissions_example_runs() -> None:
    command = "auditor permissions --config deploy/config.toml --format cloudformation --part daemon"
    assert command in " ".join(README.split())
    result = run_cli(
        "permissions",
        "--config",
        str(REPO / "deploy" / "config.toml"),
        "--format",
        "cloudformation",
        "--part",
        "daemon",
    )
    assert result.returncode == 0, result.stderr
    template = json.loads(result.stdout)
    assert template["Parameters"]["AccessRoleName"]["Default"] == "LabAuditorAccess"  # the roster's role_arn
    assert "sts:ExternalId" in result.stdout
    result = run_cli("permissions", "--operator-account", "123456789012", "--external-id", "class-2026")
    assert result.returncode == 0, result.stderr
    assert "sts:ExternalId" in result.stdout


def test_the_readme_is_a_front_door() -> None:
    """What it is, the quick start, the commands, configuration, the daemon; the rest is in docs/."""
    assert len(README.splitlines()) <= 260
    for section in ("Quick start", "Commands", "Configuration", "The daemon", "Where to read more"):
        assert f"\n## {section}" in README, section


def test_the_quick_start_is_make_demo_and_make_test() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("install", "demo", "run", "test", "check", "bench"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
