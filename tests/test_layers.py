"""Layers in one direction: every module imports on its own, the core imports nothing above it, and no
two modules import each other, not even from inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("auditor", "provisioner", "lambda_src")

# The core: the lab as data, the comparison, collection and the registry of resource kinds.
CORE = (
    "auditor.resources.access",
    "auditor.aws.accounts",
    "auditor.domain.actual",
    "auditor.common.clock",
    "auditor.app.collect",
    "auditor.resources.compare",
    "auditor.domain.config",
    "auditor.common.errors",
    "auditor.domain.model",
    "auditor.domain.package",
    "auditor.policy",
    "auditor.resources",
    "auditor.domain.spec",
    "auditor.app.target",
)
# What the core must never pull in: the layers built on it.
ABOVE_THE_CORE = (
    "provisioner",
    "auditor.app.audit",
    "auditor.cli.main",
    "auditor.app.context",
    "auditor.daemon.daemon",
    "auditor.cli.demo",
    "auditor.aws.events",
    "auditor.app.operations",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path.name != "__main__.py"  # it runs the command line
    }


MODULES = project_modules()


def in_a_fresh_interpreter(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def is_core(name: str) -> bool:
    return any(name == core or name.startswith(f"{core}.") for core in CORE)


@pytest.mark.slow  # an interpreter a module
@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports_on_its_own(name: str) -> None:
    result = in_a_fresh_interpreter(f"import {name}")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # an interpreter a module
@pytest.mark.parametrize("name", sorted(name for name in MODULES if is_core(name)))
def test_the_core_pulls_in_nothing_above_it(name: str) -> None:
    above = repr(ABOVE_THE_CORE)
    result = in_a_fresh_interpreter(
        f"import sys, {name}\n"
        f"print(sorted(m for m in sys.modules if any(m == a or m.startswith(a + '.') for a in {above})))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules a module imports, wherever in it the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {imported for imported in found if imported in MODULES and imported != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_two_modules_import_each_other() -> None:
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_only_auditor_policy_reaches_into_the_policy_engine() -> None:
    """auditor.policy is the engine's face: no other module imports auditor.iam's own."""
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    reaching = sorted(
        name
        for name, imported in graph.items()
        if not is_engine(name) and name != "auditor.policy" and any(map(is_engine, imported))
    )
    assert reaching == []


def is_engine(name: str) -> bool:
    return name == "auditor.iam" or name.startswith("auditor.iam.")
