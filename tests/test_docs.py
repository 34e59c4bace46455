"""The project's own docs/ stay true: every command, option and configuration key of the code is there,
and the README links them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any, get_args, get_type_hints

import click
import pytest

from auditor.cli import main
from auditor.config import _ROSTER_OPTIONAL, _ROSTER_REQUIRED, AccountAccess, Config, LabConfig
from conftest import REPO

DOCS = REPO / "docs"
INTERFACE = " ".join((DOCS / "interface.md").read_text(encoding="utf-8").split())


def commands(command: click.Command = main, path: str = "auditor") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from commands(sub, f"{path} {name}")


def options() -> list[tuple[str, str]]:
    return sorted(
        {
            (path, name)
            for path, command in commands()
            for parameter in command.params
            if isinstance(parameter, click.Option)
            for name in (*parameter.opts, *parameter.secondary_opts)
        }
    )


def _table(kind: Any) -> type | None:
    if isinstance(kind, type) and is_dataclass(kind):
        return kind
    return next((found for arg in get_args(kind) if (found := _table(arg)) is not None), None)


def config_keys() -> list[str]:
    """Every key of the file, dotted: `lab.region`, `labs.origin.account_id`, ..."""
    keys = []
    for table in fields(Config):
        if table.name == "path":
            continue
        kind = _table(get_type_hints(Config)[table.name])
        assert kind is not None, table.name
        for key in fields(kind):
            keys.append(f"{table.name}.{key.name}")
    keys += [f"labs.origin.{key.name}" for key in fields(AccountAccess)]
    assert {key.name for key in fields(LabConfig)} <= {
        key.split(".")[1] for key in keys if key.startswith("labs.")
    }
    return keys


def test_the_docs_are_in_the_repository_and_the_readme_links_them() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("lab.md", "interface.md"):
        assert (DOCS / name).is_file(), name
        assert f"](docs/{name})" in readme, f"the README does not link docs/{name}"


@pytest.mark.parametrize("path", [path for path, _ in commands() if path != "auditor"])
def test_every_command_is_in_the_interface(path: str) -> None:
    assert f"`{path}" in INTERFACE or f"{path}`" in INTERFACE or f" {path} " in INTERFACE, path


@pytest.mark.parametrize(("path", "option"), options())
def test_every_option_is_in_the_interface(path: str, option: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", INTERFACE), f"{path} {option}"


@pytest.mark.parametrize("key", config_keys())
def test_every_configuration_key_is_in_the_interface(key: str) -> None:
    assert f"`{key}`" in INTERFACE, key


@pytest.mark.parametrize("column", [*_ROSTER_REQUIRED, *_ROSTER_OPTIONAL])
def test_every_roster_column_is_in_the_interface(column: str) -> None:
    assert f"`{column}`" in INTERFACE, column
