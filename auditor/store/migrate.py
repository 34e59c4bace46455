"""Alembic, configured from code: `auditor db upgrade`, the daemon's start and the tests all come here.

Every command opens the database through `upgrade`; a database already at the newest migration is told
without Alembic (its import is 0.1 s of a command's start), by its `alembic_version` against the
newest revision of migrations/versions/.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

import auditor
from auditor.store.engine import DatabaseUnavailable, make_engine, safe_url, unavailable_as, writing_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(auditor.__file__).resolve().parent.parent / "migrations"
# How each migration names itself and the one it follows (`revision: str = "0008"`, `down_revision:
# str | None = "0007"`): what Alembic reads of them to find the newest.
_REVISION = re.compile(r'^revision(?:: [^=]+)? = "([^"]+)"$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?:: [^=]+)? = (?:"([^"]+)"|None)$', re.MULTILINE)

# Any constant will do: it only has to be the same for every auditor process on one PostgreSQL server.
_POSTGRES_MIGRATION_LOCK = 0x6C61625F61756469


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, without an ini file; env.py migrates over `connection` when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str) -> None:
    """`alembic upgrade head`; safe to run from two processes at once, a no-op when already at head."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> None:
    """`alembic upgrade head` over an engine already open (an in-memory database has no other)."""
    if _at_newest(engine):
        return
    from alembic import command

    with _migration_connection(engine) as connection:
        if _holds_no_table(connection):
            _create_at_newest(connection)
        else:
            command.upgrade(alembic_config(connection), "head")


def _holds_no_table(connection: Connection) -> bool:
    return not inspect(connection).get_table_names()


def _create_at_newest(connection: Connection) -> None:
    """A database with no table yet gets the models' schema and is stamped at the newest migration, as
    Alembic's cookbook builds one from scratch: the migrations' data steps have no row to change, and
    replaying them (SQLite rebuilds a table for each ALTER) is most of a first command's time.
    tests/test_migrations.py holds the two schemas equal."""
    from alembic import command

    from auditor.store.models import Base

    Base.metadata.create_all(connection)
    command.stamp(alembic_config(connection), "head")


class NewerDatabase(DatabaseUnavailable):
    """The database was migrated by a newer lab-auditor: this one does not know its schema."""


def _at_newest(engine: Engine) -> bool:
    """Whether the database is at the newest migration, read without Alembic; False whenever in doubt
    (no such table yet, migrations this cannot read): Alembic then decides. A revision this version
    does not know is a newer lab-auditor's: NewerDatabase, before Alembic fails on it."""
    newest = newest_revision()
    if newest is None:
        return False
    with unavailable_as(engine.url):
        connection = engine.connect()
    with connection:
        try:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:
            return False
    unknown = [version for version in versions if version not in known_revisions()]
    if unknown:
        raise NewerDatabase(
            f"the database {safe_url(engine.url)} is at migration {', '.join(unknown)}, which this lab-auditor"
            f" does not know (its newest is {newest}): a newer lab-auditor migrated it; run that version"
            " (a database is never migrated down by an older one)"
        )
    return versions == [newest]


@functools.cache
def _migration_sources() -> tuple[str, ...]:
    """The text of each migration of migrations/versions/, read once a process."""
    return tuple(path.read_text(encoding="utf-8") for path in sorted(MIGRATIONS_DIR.glob("versions/*.py")))


@functools.cache
def known_revisions() -> frozenset[str]:
    """The revisions of migrations/versions/, as each names itself."""
    return frozenset(found for source in _migration_sources() for found in _REVISION.findall(source))


@functools.cache
def newest_revision() -> str | None:
    """The one revision of migrations/versions/ that no other follows; None unless each migration names
    its revision and the one before it plainly and they make one line (Alembic reads the rest)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for source in _migration_sources():
        revision, before = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(before) != 1:
            return None
        revisions.add(revision[0])
        followed.update(filter(None, before))
    newest = revisions - followed
    return newest.pop() if len(newest) == 1 and followed <= revisions else None


def check(url: str) -> None:
    """`alembic check`: raises alembic's AutogenerateDiffsDetected when the models and migrations disagree."""
    from alembic import command

    engine = make_engine(url)
    try:
        with _migration_connection(engine) as connection:
            command.check(alembic_config(connection))
    finally:
        engine.dispose()


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    # Only reaching the database is "unavailable"; a migration that fails keeps its own error.
    with unavailable_as(engine.url):
        connection = writing_engine(engine).connect()
    with connection, connection.begin():
        serialised_migrations(connection)
        yield connection


def serialised_migrations(connection: Connection) -> None:
    """Within the transaction, wait for any other migrator (or replica installing its queue)."""
    # SQLite's BEGIN IMMEDIATE already excludes a second migrator; PostgreSQL needs a lock of its own.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
