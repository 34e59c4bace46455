"""The options and the error handling every command of `auditor` shares (interface.md's exit codes)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from auditor.config import Config, ConfigError, load_config
from auditor.errors import OperationalError
from auditor.store import DatabaseUnavailable

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_OPERATIONAL, EXIT_USAGE, EXIT_NOT_CONFORMANT = 0, 1, 2, 3


def config_option(command: F) -> F:
    return click.option(
        "--config",
        "config_path",
        envvar="AUDITOR_CONFIG",
        default="config.toml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="The configuration file (or $AUDITOR_CONFIG).",
    )(command)


def lab_option(command: F) -> F:
    return click.option(
        "--lab", "labs", multiple=True, metavar="NAME", help="Only this lab (repeatable; default: every lab)."
    )(command)


def handles_errors(command: F) -> F:
    """Configuration errors exit 2, operational ones 1, each with one clear line on standard error."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        except (OperationalError, DatabaseUnavailable) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_OPERATIONAL)

    return wrapper  # type: ignore[return-value]


def read_config(path: str) -> Config:
    return load_config(path)
