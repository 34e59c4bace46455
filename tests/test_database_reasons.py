"""Issue 25, reasons on database errors: a SQLite file that cannot be opened says why (the folder
missing, not writable) and which setting names it; a PostgreSQL login refused says which setting to
check and that the image sets the password only when its volume is first made; never the password.
The daemon waiting for such a database logs the same at each retry."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs
from test_daemon import free_port, postgres_binaries, run_as_postgres

from auditor.app.context import open_context
from auditor.cli.main import main
from auditor.daemon.drivers.scheduler import SchedulerDriver
from auditor.daemon.service import Service
from auditor.daemon.supervisor import Supervisor
from auditor.store import DatabaseUnavailable, Store, upgrade
from auditor.store.engine import sqlite_file_problem
from conftest import make_config, pair

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "the-first-password"  # what the volume was made with
WRONG = "a-changed-password"  # what POSTGRES_PASSWORD says now
SETTINGS = "[database] url, or AUDITOR_DATABASE_URL, which overrides it"


def write_config(folder: Path, database_url: str) -> Path:
    config = folder / "config.toml"
    config.write_text(
        '[aws]\nendpoint_url = "http://127.0.0.1:9"\n'
        f'[database]\nurl = "{database_url}"\n'
        '[[labs]]\nname = "pair-01"\norigin = { account_id = "111111111111" }\n'
        'destination = { account_id = "222222222222" }\n',
        encoding="utf-8",
    )
    os.chmod(config, 0o644)
    return config


# ---------------------------------------------------------------------------------------- SQLite


def test_a_database_folder_that_does_not_exist_is_named_with_its_setting(tmp_path: Path) -> None:
    config = write_config(tmp_path, "sqlite:///no-such-folder/auditor.db")
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 1
    assert (
        f"unable to open database file: the folder {tmp_path / 'no-such-folder'} does not exist "
        f"(the file is set in {SETTINGS})"
    ) in result.output


def test_what_stands_in_the_database_file_s_way_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    assert sqlite_file_problem(tmp_path / "a-file" / "auditor.db") == f"{tmp_path / 'a-file'} is not a folder"
    assert (
        sqlite_file_problem(tmp_path / "a-folder")
        == f"{tmp_path / 'a-folder'} is a folder, not a database file"
    )
    assert sqlite_file_problem(tmp_path / "auditor.db") is None  # nothing in the way


def as_an_ordinary_user() -> list[str]:
    """Root writes in any folder: as root, run without the capabilities that let it (util-linux's setpriv)."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


@pytest.fixture
def read_only_folder() -> Iterator[Path]:
    # Not under pytest's temporary folder (0700): the command runs without root's reach.
    base = Path(tempfile.mkdtemp(prefix="lab-auditor-ro-"))
    (base / "data").mkdir()
    base.chmod(0o755)
    (base / "data").chmod(0o555)
    yield base
    (base / "data").chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow  # the CLI in a process of its own
def test_a_read_only_database_folder_says_it_is_not_writable(read_only_folder: Path) -> None:
    """Before: "unable to open database file", and nothing more."""
    config = write_config(read_only_folder, "sqlite:///data/auditor.db")
    result = subprocess.run(
        [*as_an_ordinary_user(), sys.executable, "-m", "auditor", "status", "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"unable to open database file: the folder {read_only_folder / 'data'} is not writable by this user "
        f"(uid {os.geteuid()}) (the file is set in {SETTINGS})"
    ) in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------ PostgreSQL


@dataclass
class PasswordPostgres:
    """A PostgreSQL of this test's own that asks for a password over TCP (the shared one trusts all)."""

    base: Path
    port: int

    def url(self, password: str, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")  # one for the module: its start is most of each test's time
def password_postgres() -> Iterator[PasswordPostgres]:
    binaries = postgres_binaries()
    base = Path(tempfile.mkdtemp(prefix="lab-auditor-pgpw-"))
    password_file = base / "password"
    password_file.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(password_file, "postgres")
        base.chmod(0o755)
    data = base / "data"
    run_as_postgres(
        str(binaries / "initdb"),
        *("-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"),
        f"--pwfile={password_file}",
    )
    instance = PasswordPostgres(base, free_port())
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-w"]
    options = f"-p {instance.port} -k {base} -c listen_addresses=127.0.0.1"
    run_as_postgres(*pg_ctl, "-o", options, "-l", str(base / "log"), "start")
    yield instance
    with contextlib.suppress(subprocess.CalledProcessError):
        run_as_postgres(*pg_ctl, "-m", "immediate", "stop")
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_a_refused_login_names_the_setting_and_the_volume_rule_never_the_password(
    password_postgres: PasswordPostgres, tmp_path: Path
) -> None:
    upgrade(password_postgres.url(PASSWORD))  # the password the volume was made with logs in
    config = write_config(tmp_path, "sqlite:///auditor.db")
    result = CliRunner().invoke(
        main, ["status", "--config", str(config)], env={"AUDITOR_DATABASE_URL": password_postgres.url(WRONG)}
    )
    assert result.exit_code == 1
    assert 'password authentication failed for user "postgres": check the user and password' in result.output
    assert SETTINGS in result.output and "POSTGRES_PASSWORD" in result.output
    assert "only when its volume is first made" in result.output
    assert "postgres:***@127.0.0.1" in result.output
    assert WRONG not in result.output


@pytest.mark.postgres
def test_a_password_that_is_a_word_of_the_advice_leaves_the_advice_whole(
    password_postgres: PasswordPostgres,
) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        Store.from_url(password_postgres.url("password")).status()
    assert "postgres:***@127.0.0.1" in str(caught.value)
    assert ": check the user and password of the URL" in str(caught.value)


@pytest.mark.postgres
def test_a_database_that_does_not_exist_is_named_with_its_setting(
    password_postgres: PasswordPostgres,
) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        Store.from_url(password_postgres.url(PASSWORD, database="nowhere")).status()
    assert str(caught.value).endswith(
        f'database "nowhere" does not exist: check the database name of the URL ({SETTINGS}), or create it '
        "(createdb)"
    )
    assert PASSWORD not in str(caught.value)


@pytest.mark.postgres
@pytest.mark.usefixtures("moto_in_process")
def test_the_daemon_waiting_for_a_refused_login_logs_why_at_each_retry(
    password_postgres: PasswordPostgres,
) -> None:
    """Before: it retried forever, each warning without a hint."""
    config = make_config((pair(1),), database_url=password_postgres.url(WRONG))
    service = Service(config, open_context(config))
    supervisor = Supervisor(service, SchedulerDriver(service))
    with capture_logs() as logs:
        waiting = threading.Thread(target=supervisor._wait_for_database)
        waiting.start()
        deadline = time.monotonic() + 30
        while (
            len([e for e in logs if e["event"] == "waiting_for_database"]) < 2 and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        service.stop_event.set()
        waiting.join(30)
    retries = [e for e in logs if e["event"] == "waiting_for_database"]
    assert len(retries) >= 2
    for retry in retries:
        assert retry["log_level"] == "warning"
        assert (
            "POSTGRES_PASSWORD" in retry["error"] and "only when its volume is first made" in retry["error"]
        )
        assert WRONG not in retry["error"]
