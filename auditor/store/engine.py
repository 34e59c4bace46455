"""Engines for SQLite and PostgreSQL, and the one error the CLI needs: the database cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    """Turn "cannot reach / cannot lock the database" into DatabaseUnavailable, without the password."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(f"database {safe_url(url)} is unavailable: {_reason(exc, url)}") from None


def _reason(exc: DBAPIError, url: str | URL) -> str:
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = lines[0]
    password = make_url(url).password
    return reason.replace(str(password), "***") if password else reason
