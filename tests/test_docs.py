"""The project's own docs/ stay true: every command, option and configuration key of the code is there,
the README links them, their links lead somewhere, and the full configuration they show loads."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

import click
import pytest

from auditor.cli.main import main
from auditor.domain.config import _ROSTER_OPTIONAL, _ROSTER_REQUIRED, AccountAccess, Config, LabConfig
from conftest import REPO

DOCS = REPO / "docs"
INTERFACE = " ".join((DOCS / "interface.md").read_text(encoding="utf-8").split())


def commands(command: click.Command = main, path: str = "auditor") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, name
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
    for name in sorted(path.name for path in DOCS.glob("*.md")):
        assert f"](docs/{name})" in readme, f"the README does not link docs/{name}"
    for name in ("lab.md", "interface.md", "changelog.md", "performance.md"):
        assert (DOCS / name).is_file(), name


MARKDOWN = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
_FENCED = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The file without its code blocks: a heading or a link inside one is not one."""
    return _FENCED.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """The anchors of a file's headings as GitHub makes them: lower case, punctuation dropped, spaces
    made hyphens, a repeated heading numbered."""
    seen: dict[str, int] = {}
    for title in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(path), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def relative_links(path: Path) -> list[str]:
    """Every link's target that is not a URL (`https:`, `mailto:`): a file, a file's heading, a heading."""
    return [target for target in _LINK.findall(_prose(path)) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def test_the_docs_have_links_to_check() -> None:
    assert "docs/daemon.md#the-record" in relative_links(REPO / "README.md")
    assert "verdicts-and-what-error-means" in anchors(REPO / "README.md")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path: Path) -> None:
    for target in relative_links(path):
        name, _, anchor = target.partition("#")
        linked = (path.parent / name).resolve() if name else path
        assert linked.exists(), f"{path.name} links {target}: no such file"
        if anchor:
            assert linked.suffix == ".md", f"{path.name} links {target}: an anchor outside Markdown"
            assert anchor in anchors(linked), f"{path.name} links {target}: no such heading"


def test_the_full_configuration_of_the_operating_notes_loads(tmp_path: Path) -> None:
    from auditor.domain.config import load_config

    operating = (DOCS / "operating.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", operating, flags=re.DOTALL)
    assert block is not None
    text = block.group(1)
    tomllib.loads(text)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, env={})
    assert config.labs[0].name == "pair-01"


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
