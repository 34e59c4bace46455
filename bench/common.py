"""What the benchmarks share: a moto server of their own, sample classrooms, ratios."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from auditor.domain.config import (
    AccountAccess,
    AuditSettings,
    AwsSettings,
    Config,
    DatabaseSettings,
    LabConfig,
)

T = TypeVar("T")


@contextmanager
def own_database(server: str | URL, prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own on `server` (named `prefix` and a random part), dropped after."""
    url = make_url(server)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def fake_credentials() -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )


@contextmanager
def moto_server() -> Iterator[str]:
    """The embedded emulator (a moto server that also serves a function's code, auditor/aws/emulator.py)
    in its own process, so that its CPU is not ours."""
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor.aws.emulator"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    try:
        if not url.startswith("http://"):
            raise RuntimeError(f"the emulator did not start (it printed {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def classroom(size: int, first: int = 1) -> tuple[LabConfig, ...]:
    def access(account: str) -> AccountAccess:
        return AccountAccess(account, role_arn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole")

    return tuple(
        LabConfig(f"pair-{i:03d}", access(f"1{i:011d}"), access(f"2{i:011d}"))
        for i in range(first, first + size)
    )


def config(labs: tuple[LabConfig, ...], endpoint_url: str, concurrency: int, **audit: object) -> Config:
    return Config(
        path="bench",
        labs=labs,
        aws=AwsSettings(endpoint_url=endpoint_url),
        audit=AuditSettings(concurrency=concurrency, **audit),  # type: ignore[arg-type]
        database=DatabaseSettings(url="sqlite://"),
    )


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def cpu_timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.process_time()
    result = call()
    return result, time.process_time() - started
