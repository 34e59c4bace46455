"""Engines for SQLite and PostgreSQL, and the one error the CLI needs: the database cannot be reached."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.pool import QueuePool

# A daemon and a CLI may write at once: a writer waits this long for the other's transaction to end.
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10

# Execution option the store sets on its writing engine. SQLite then starts the transaction with
# BEGIN IMMEDIATE, taking the write lock up front: a deferred transaction that reads, then writes,
# fails at once with "database is locked" if another writer committed meanwhile, whatever the timeout.
WRITE_INTENT = "auditor_write_intent"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used right now (down, refused, locked for too long)."""


def safe_url(url: str | URL) -> str:
    """The URL as it may be shown: never with its password."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL) -> Engine:
    parsed = _with_default_driver(make_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _with_default_driver(url: URL) -> URL:
    # psycopg 3 is the PostgreSQL driver the project installs; plain postgresql:// would mean psycopg2.
    if url.drivername == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    return url


def is_memory_database(url: str | URL) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, **_memory_pool()) if is_memory_database(url) else create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode: a power cut may lose the last commits but never corrupts; spares an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_INTENT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _memory_pool() -> dict[str, Any]:
    # An in-memory database lives and dies with its one connection: a pool of exactly that connection,
    # which threads take in turn (a transaction at a time), and which is never closed while pooled.
    return {
        "poolclass": QueuePool,
        "pool_size": 1,
        "max_overflow": 0,
        "connect_args": {"check_same_thread": False},
    }


def writing_engine(engine: Engine) -> Engine:
    """The same engine (and pool), marked so that its transactions take the write lock at once."""
    return engine.execution_options(**{WRITE_INTENT: True})


@contextmanager
def unavailable_as(url: str | URL) -> Iterator[None]:
    """Turn "cannot reach / cannot lock the database" into DatabaseUnavailable, saying why and which
    setting to check, without the password."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(f"database {safe_url(url)} is unavailable: {_reason(exc, url)}") from None


# Where a database URL is set: the configuration's key, or the variable that overrides it.
URL_SETTINGS = "[database] url, or AUDITOR_DATABASE_URL, which overrides it"
# The failed logins of PostgreSQL (through libpq): wrong password, none given, no such user.
_LOGIN_FAILED = re.compile(r'password authentication failed|no password supplied|role "[^"]*" does not exist')
_NO_DATABASE = re.compile(r'database "[^"]*" does not exist')
# The SQLite errors of a file that cannot be opened or written (not those of a busy one).
_SQLITE_CANNOT_OPEN = ("unable to open database file", "attempt to write a readonly database")


def _reason(exc: DBAPIError, url: str | URL) -> str:
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    parsed = make_url(url)
    password = parsed.password
    # The driver's words may repeat the password; the advice is ours, and never holds it.
    reason = lines[0].replace(str(password), "***") if password else lines[0]
    return reason + (_advice(reason=lines[0], url=parsed) or "")


def _advice(reason: str, url: URL) -> str | None:
    """What to check, for the failures a setting explains: a SQLite file that cannot be opened, a
    PostgreSQL login or database refused."""
    if url.get_backend_name() == "sqlite":
        if any(text in reason for text in _SQLITE_CANNOT_OPEN) and not is_memory_database(url):
            problem = sqlite_file_problem(Path(url.database or ""))
            return f": {problem} (the file is set in {URL_SETTINGS})" if problem else None
        return None
    if _LOGIN_FAILED.search(reason):
        return (
            f": check the user and password of the URL ({URL_SETTINGS}; docker-compose.yml makes it "
            "from POSTGRES_PASSWORD). PostgreSQL's image sets the password only when its volume is first "
            "made: after POSTGRES_PASSWORD changed, give the old one again, or set the new one in the "
            "database (ALTER USER ... PASSWORD) or start from an empty volume"
        )
    if _NO_DATABASE.search(reason):
        return f": check the database name of the URL ({URL_SETTINGS}), or create it (createdb)"
    return None


def sqlite_file_problem(path: Path) -> str | None:
    """Why SQLite cannot open or write this database file, as the file system says, or None."""
    folder = path.parent
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if path.is_dir():
        return f"{path} is a folder, not a database file"
    # SQLite writes its -wal and -shm files beside the database: the folder must be writable too.
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by this user (uid {os.geteuid()})"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file {path} is not writable by this user (uid {os.geteuid()})"
    return None
