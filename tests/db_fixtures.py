"""Database fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL: each test gets a fresh, uniquely named database on the server at
$AUDITOR_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped
afterwards, so pytest-xdist workers never meet. An unreachable server skips those tests, unless
AUDITOR_REQUIRE_POSTGRES=1 (as in CI), where it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from auditor.store import Store, upgrade
from bench.common import own_database

POSTGRES_URL_ENV = "AUDITOR_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "AUDITOR_REQUIRE_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _server_url() -> URL:
    url = make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def _postgres_required() -> bool:
    return os.environ.get(REQUIRE_POSTGRES_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The server's URL once it answered; skip (or fail, when required) if it does not."""
    url = _server_url()
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        first_line = str(exc.orig).strip().splitlines()[0]
        reason = f"PostgreSQL at {url.render_as_string(hide_password=True)} is unreachable: {first_line}"
        if _postgres_required():
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auditor.db'}"
        return
    server: URL = request.getfixturevalue("postgres_server")
    with own_database(server, f"auditor_test_{os.getpid()}") as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty store on that database."""
    upgrade(database_url)
    opened = Store.from_url(database_url)
    yield opened
    opened.close()
