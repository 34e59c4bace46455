"""Shared fixtures: fake AWS credentials, moto in-process and as a real HTTP server, sample labs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from auditor.app.context import Context, open_context
from auditor.aws.local_lambda import LocalLambda
from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    DatabaseSettings,
    LabConfig,
)
from auditor.domain.model import Subject
from auditor.domain.spec import ExpectedLab, RoleSpec
from bench.common import moto_server as moto_server_process

pytest_plugins = ["db_fixtures"]

REPO = Path(__file__).resolve().parent.parent

if sys.version_info < (3, 11, 8):
    # CPython 3.11.7's ast.parse is not safe in threads: its recursion count is shared, so a garbage
    # collection in the middle of one parse can break another ("AST constructor recursion depth
    # mismatch", gh-106905, fixed in 3.11.8). werkzeug compiles moto's in-process routes with it, in
    # the provisioning's threads; this machine has 3.11.7. One parse at a time, in the tests only.
    _parse, _one_parse_at_a_time = ast.parse, threading.Lock()

    def _parse_alone(*args: Any, **named: Any) -> Any:
        with _one_parse_at_a_time:
            return _parse(*args, **named)

    ast.parse = _parse_alone


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may ever reach real AWS with the developer's own credentials."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.delenv("AUDITOR_DATABASE_URL", raising=False)
    monkeypatch.delenv("AUDITOR_CONFIG", raising=False)


@pytest.fixture(autouse=True, scope="session")
def own_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The action catalogue's file (auditor/iam/catalogue_file.py) in the session's directory, not the
    user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDITOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def every_cpu_for_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command run in process (CliRunner) would keep the test worker to one CPU for the rest of its
    tests (auditor/common/process.py); tests/test_process.py tests that without this setting."""
    monkeypatch.setenv("AUDITOR_ONE_CPU", "0")


ALLOWED_CPUS = frozenset(os.sched_getaffinity(0))
several_cpus = pytest.mark.skipif(len(ALLOWED_CPUS) < 2, reason="one CPU: nothing to keep to")


@pytest.fixture
def kept_to_one_cpu() -> Iterator[None]:
    """This thread kept to one CPU, as a command's (auditor/common/process.py), for the test; then every CPU
    it had again."""
    os.sched_setaffinity(0, {min(ALLOWED_CPUS)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, ALLOWED_CPUS)


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """A command run in process (CliRunner) configures logging for its level; the next test starts over."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def assumed(account_id: str, external_id: str | None = None) -> AccountAccess:
    return AccountAccess(
        account_id,
        role_arn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
        external_id=external_id,
    )


def pair(index: int) -> LabConfig:
    """Lab number `index` of a classroom: accounts 1000000000XX (origin) and 2000000000XX (destination)."""
    return LabConfig(f"pair-{index:02d}", assumed(f"1{index:011d}"), assumed(f"2{index:011d}"))


def solo(index: int) -> LabConfig:
    access = assumed(f"3{index:011d}")
    return LabConfig(f"solo-{index:02d}", access, access)


def role_as_built(spec: RoleSpec) -> ActualRole:
    """A role exactly as the provisioner builds it (plain data, for the pure comparison)."""
    return ActualRole.as_specified(spec)


def subject_of_role(arn: str) -> Subject:
    """The subject of a finding about the role of that ARN (arn:aws:iam::ACCOUNT:role/NAME)."""
    account, name = arn.split(":")[4], arn.rsplit("/", 1)[-1]
    return Subject("role", account, name, name)


def lab_as_built(expected: ExpectedLab, code_sha256: str) -> ActualLab:
    """A whole lab exactly as the provisioner builds it, its code having the digest given."""
    return ActualLab.as_specified(expected, code_sha256)


def make_config(
    labs: tuple[LabConfig, ...],
    endpoint_url: str | None = None,
    database_url: str = "sqlite://",
    **audit: object,
) -> Config:
    return Config(
        path="test.toml",
        labs=labs,
        aws=AwsSettings(endpoint_url=endpoint_url, max_attempts=3),
        audit=replace(AuditSettings(concurrency=8), **audit),  # type: ignore[arg-type]
        database=DatabaseSettings(url=database_url),
    )


@pytest.fixture
def moto_in_process() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


def in_process_context(*labs: LabConfig, **audit: object) -> Context:
    """A runtime whose clients go to moto's in-process mock (use inside the moto_in_process fixture)."""
    return open_context(make_config(labs, endpoint_url=None, **audit))


@pytest.fixture(scope="session")
def preforked_local_lambda() -> Iterator[LocalLambda]:
    """The local Lambda stand-in as a runtime opens it (runs forked from its zygote), shared."""
    with LocalLambda() as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def fresh_local_lambda() -> Iterator[LocalLambda]:
    """The local Lambda stand-in that starts a fresh interpreter for every run, shared."""
    with LocalLambda(preforked=False) as stand_in:
        yield stand_in


@pytest.fixture(params=["preforked", "fresh"])
def local_lambda(request: pytest.FixtureRequest) -> LocalLambda:
    """Each way the stand-in runs a function: what it guarantees holds both ways."""
    stand_in: LocalLambda = request.getfixturevalue(f"{request.param}_local_lambda")
    return stand_in


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """A moto server in its own process: a real HTTP endpoint, as an operator's emulator would be."""
    with moto_server_process() as url:
        yield url


@pytest.fixture
def moto_server(moto_server_url: str) -> str:
    """The server, emptied before the test."""
    request = urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return moto_server_url


def write_config(
    tmp_path: Path, endpoint_url: str, labs_toml: str, extra: str = "", database_url: str = ""
) -> Path:
    """A config for the end-to-end suites. They check verdicts, so the policy time limit is generous:
    a loaded CI machine must not turn a decision into "undecided" (the limit has its own tests)."""
    database_url = database_url or f"sqlite:///{tmp_path / 'auditor.db'}"
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [lab]
            region = "us-east-1"
            [aws]
            endpoint_url = "{endpoint_url}"
            max_attempts = 3
            [audit]
            concurrency = 8
            policy_time_limit = "60s"
            [database]
            url = "{database_url}"
            [daemon]
            health_port = 0
            """
        )
        + textwrap.dedent(extra)
        + labs_toml,
        encoding="utf-8",
    )
    return path


def labs_toml(*labs: LabConfig) -> str:
    def side(access: AccountAccess) -> str:
        return f'{{ account_id = "{access.account_id}", role_arn = "{access.role_arn}" }}'

    return "".join(
        f'\n[[labs]]\nname = "{lab.name}"\norigin = {side(lab.origin)}\ndestination = {side(lab.destination)}\n'
        for lab in labs
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real entry point, in its own process, as an operator or a script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_demo(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`auditor demo` (with `args`) writing to `out`, through the installed `auditor` of this test's own
    environment, as `make demo` runs it; 200 columns, so that its lines are read whole."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "auditor"), "demo", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


# The fast tier (`make check`, `pytest -m "not slow"`) is every test that needs none of these (an AWS
# emulator, PostgreSQL, the local Lambda stand-in's processes); a test that runs the CLI in a process of its own, or a browser, is marked
# `slow` where it is written.
def examples(full: int) -> int:
    """A property's number of hypothesis examples: all of them in `make test`, a tenth in the fast tier
    (`make fast` sets AUDITOR_FAST_TIER=1), where a quick signal matters more than a deep search."""
    return max(4, full // 10) if os.environ.get("AUDITOR_FAST_TIER") == "1" else full


SLOW_FIXTURES = frozenset(
    {
        "moto_server_url",
        "moto_in_process",
        "postgres_server",
        "own_postgres",
        "local_lambda",  # a zygote process and the runs it forks
        "preforked_local_lambda",
        "fresh_local_lambda",
    }
)
SLOW_MARKS = ("postgres", "server")
# The long end-to-end suites (marked `long`, and `slow`): whole processes over time (the daemon and its
# replicas, their intervals, restarts and change events), a lab's whole life under hypothesis, the
# fault benchmark, the class demo. `make unit` leaves them out, a quick whole-suite signal; `make long`
# runs them, each file on one worker; `make test` is both.
LONG_SUITES = frozenset(
    {
        "test_daemon.py",
        "test_daemon_change_events.py",
        "test_daemon_notify.py",
        "test_replicas.py",
        "test_deploy.py",
        "test_plan_is_the_audit.py",
        "test_fault_audit.py",
        "test_class_demo.py",
    }
)


# The long suites whose tests share a module's fixture (one class demo, one fault benchmark): each on
# one worker (`make long` distributes the others test by test: they mostly wait on intervals).
ONE_WORKER_SUITES = frozenset({"test_class_demo.py", "test_fault_audit.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs or any(item.get_closest_marker(mark) for mark in SLOW_MARKS):
            item.add_marker(pytest.mark.slow)
        if item.path.name in LONG_SUITES:
            item.add_marker(pytest.mark.long)
            item.add_marker(pytest.mark.slow)
        if item.path.name in ONE_WORKER_SUITES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a required part that did not run: fail the run."""
    if os.environ.get("AUDITOR_STRICT_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(
                f"AUDITOR_STRICT_SKIPS: {skipped} test(s) skipped; CI requires all to run", red=True
            )
