"""Layers in one direction: every module imports on its own, the core imports nothing above it, and no
two modules import each other, not even from inside a function."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("auditor", "provisioner", "lambda_src")

# The layers, lowest first: a module imports only from its own layer and those below it. The folders
# say which layer a module is in (the longest prefix that names it wins).
LAYERS: dict[str, int] = {
    "auditor": 0,  # the package itself: its version
    "auditor.common": 0,  # plumbing that knows nothing of the lab
    "auditor.domain": 1,  # the lab as data and pure logic
    "auditor.iam": 1,  # the IAM engine, pure
    "auditor.policy": 1,  # its face
    "auditor.resources": 2,  # the kinds of resource, and the judgement over them
    "auditor.aws": 3,  # sessions, clients, the function's run, CloudTrail, EventBridge
    "auditor.store": 4,  # the history
    "auditor.app": 5,  # the context of a command, leases, collection, the audit, recording
    "provisioner": 6,  # plans, builds and tears down labs
    "auditor.app.service": 7,  # the application: what a command does, as values
    "auditor.report": 8,  # delivery: the reports,
    "auditor.web": 9,  # the live page,
    "auditor.daemon": 10,  # the daemon,
    "auditor.cli": 11,  # and the command line
    "lambda_src": 0,  # the lab's function: it imports nothing of ours
}
# Libraries of I/O and delivery that the pure layers never import. botocore's exception types are data;
# the configuration checks a notification URL with Apprise's parser (it sends nothing), so Apprise is not
# listed.
NOT_IN_THE_PURE_LAYERS = ("boto3", "click", "rich", "apscheduler", "procrastinate", "uvicorn", "starlette")


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


def layer_of(name: str) -> int:
    owner = max((prefix for prefix in LAYERS if name == prefix or name.startswith(f"{prefix}.")), key=len)
    return LAYERS[owner]


# Each module is imported in a process that starts with nothing of the project loaded: a child forked
# from one interpreter that has loaded only these libraries (an interpreter a module spent nearly all
# of its time importing them again). A library missing here is simply imported by the child.
PRELOADED = (
    "boto3",
    "botocore.session",
    "sqlalchemy.orm",
    "alembic.command",
    "z3",
    "click",
    "rich.console",
    "pydantic",
    "structlog",
    "jinja2",
    "apprise",
    "apscheduler.schedulers.background",
    "starlette.applications",
    "uvicorn",
)
FORK_SERVER = """
import json, os, sys, traceback
for library in sys.argv[1:]:
    try:
        __import__(library)
    except ImportError:
        pass
ours = [name for name in sys.modules if name.split(".")[0] in ("auditor", "provisioner", "lambda_src")]
assert not ours, ours
print("ready", flush=True)
for line in sys.stdin:
    name = line.strip()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        error = stream.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"code": os.waitstatus_to_exitcode(status), "error": error}), flush=True)
"""


@pytest.fixture(scope="module")
def importer() -> Iterator[subprocess.Popen[str]]:
    """The interpreter that forks a child a module, each importing it alone."""
    server = subprocess.Popen(
        [sys.executable, "-c", FORK_SERVER, *PRELOADED],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    yield server
    server.kill()
    server.wait()


@pytest.mark.slow  # a process a module
@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports_on_its_own(name: str, importer: subprocess.Popen[str]) -> None:
    assert importer.stdin is not None and importer.stdout is not None
    importer.stdin.write(name + "\n")
    importer.stdin.flush()
    result = json.loads(importer.stdout.readline())
    assert result["code"] == 0, result["error"]


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


def test_every_module_is_in_a_layer() -> None:
    assert [name for name in MODULES if not any(name == p or name.startswith(f"{p}.") for p in LAYERS)] == []


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{name} ({layer_of(name)}) imports {imported} ({layer_of(imported)})"
        for name, path in MODULES.items()
        for imported in imports_of(name, path)
        if layer_of(imported) > layer_of(name)
    )
    assert upward == []


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer_of("auditor.domain.spec") < layer_of("auditor.aws.accounts")
    assert layer_of("auditor.app.service") > layer_of("provisioner.plan") > layer_of("auditor.app.context")
    assert layer_of("auditor.cli.main") > layer_of("auditor.daemon.daemon") > layer_of("auditor.web.app")


def test_the_pure_layers_do_no_io_of_their_own() -> None:
    """The domain, the IAM engine and the plumbing import no AWS client, terminal, scheduler or server."""
    pure = [name for name in MODULES if layer_of(name) <= 1 and not name.startswith("lambda_src")]
    offending = sorted(
        f"{name} imports {library}"
        for name in pure
        for library in third_party_imports(MODULES[name])
        if library.split(".")[0] in NOT_IN_THE_PURE_LAYERS
    )
    assert offending == []


def third_party_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


def test_the_application_prints_nothing_and_knows_no_exit_codes() -> None:
    """auditor.app and provisioner return values: no print, no sys.exit, no click, no rich."""
    application = [name for name in MODULES if 5 <= layer_of(name) <= 7]
    offending = sorted(f"{name}: {what}" for name in application for what in terminal_use(MODULES[name]))
    assert offending == []


def terminal_use(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"print at line {node.lineno}")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
            and node.attr in {"exit", "stdout", "stderr"}
        ):
            found.append(f"sys.{node.attr} at line {node.lineno}")
    found += [
        f"imports {library}"
        for library in third_party_imports(path)
        if library.split(".")[0] in {"click", "rich"}
    ]
    return found
