"""The options and the error handling every command of `auditor` shares (interface.md's exit codes).

Light to import: the configuration and the database are imported when a command runs, not for --help.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from auditor.common.errors import OperationalError
from auditor.common.logs import DEFAULT_LEVEL, LEVELS, configure_logging, shifted_level

if TYPE_CHECKING:
    from auditor.domain.config import Config

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_OPERATIONAL, EXIT_USAGE, EXIT_NOT_CONFORMANT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's own code for a command ended by Ctrl-C (128 + SIGINT)

# Asked before anything is deleted, with the question: True to go on. It may raise Refused.
Ask = Callable[[str], bool]


class Refused(Exception):
    """A destructive command that nobody approved (no --yes, no terminal to ask on): exit 2."""


def config_option_saying(help_text: str) -> Callable[[F], F]:
    """`--config`, with a help of the command's own (what it reads from the file)."""
    return click.option(
        "--config",
        "config_path",
        envvar="AUDITOR_CONFIG",
        default="config.toml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help=help_text,
    )


def config_option(command: F) -> F:
    return config_option_saying("The configuration file (or $AUDITOR_CONFIG).")(command)


def lab_option(command: F) -> F:
    return click.option(
        "--lab", "labs", multiple=True, metavar="NAME", help="Only this lab (repeatable; default: every lab)."
    )(command)


def yes_option(command: F) -> F:
    return click.option(
        "--yes",
        "-y",
        "yes",
        is_flag=True,
        help="Do not ask before deleting (for scripts; without a terminal it is required).",
    )(command)


def handles_errors(command: F) -> F:
    """Configuration errors exit 2, operational ones 1, each with one clear line on standard error."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from auditor.domain.config import ConfigError
        from auditor.store import DatabaseUnavailable

        try:
            return command(*args, **kwargs)
        except (ConfigError, Refused) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        except (OperationalError, DatabaseUnavailable) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_OPERATIONAL)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def read_config(path: str) -> Config:
    from auditor.domain.config import load_config

    return load_config(path)


# ------------------------------------------------------------------------------------ approval


def approval(yes: bool, action: str) -> Ask:
    """How a destructive change is approved: by --yes, by the person at the terminal, or refused."""
    if yes:
        return lambda _question: True
    if sys.stdin.isatty():
        return lambda question: click.confirm(question, default=False, err=True)

    def refuse(_question: str) -> bool:
        raise Refused(f"{action}: pass --yes to confirm (there is no terminal to ask on)")

    return refuse


# ----------------------------------------------------------------------------------------- logs


@dataclass
class LogChoice:
    """What the command line said about logging, before or after the subcommand (the last one counts)."""

    default: str = DEFAULT_LEVEL
    level: str | None = None
    verbose: int = 0
    quiet: int = 0

    def resolved(self) -> str:
        return self.level or shifted_level(self.default, self.verbose, self.quiet)


def log_choice(context: click.Context) -> LogChoice:
    choice: LogChoice = context.find_root().meta.setdefault("auditor.log", LogChoice())
    return choice


def _on_log_option(context: click.Context, parameter: click.Parameter, value: Any) -> None:
    if context.get_parameter_source(parameter.name or "") not in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    ):
        return
    choice = log_choice(context)
    if parameter.name == "log_level":
        choice.level = str(value).lower()
    elif parameter.name == "verbose":
        choice.verbose += int(value)
    else:
        choice.quiet += int(value)
    configure_logging(choice.resolved())


def log_parameters() -> list[click.Parameter]:
    """--log-level, -v and -q: each command takes them, so they may come before or after its name."""
    common: dict[str, Any] = {"expose_value": False, "callback": _on_log_option, "is_eager": True}
    return [
        click.Option(
            ["--log-level"],
            type=click.Choice(LEVELS, case_sensitive=False),
            metavar="LEVEL",
            help=f"Log at this level and above ({', '.join(LEVELS)}; default {DEFAULT_LEVEL}, "
            "info for the daemon).",
            **common,
        ),
        click.Option(["-v", "--verbose"], count=True, help="Log more (-v info, -vv debug).", **common),
        click.Option(["-q", "--quiet"], count=True, help="Log less (errors only).", **common),
    ]


def with_log_options(command: click.Command) -> None:
    """Give the command and every command under it the logging options (once: a command loaded again
    keeps its own)."""
    for each in _walk(command):
        if not any(parameter.name == "log_level" for parameter in each.params):
            each.params.extend(log_parameters())


def use_service_level(context: click.Context) -> None:
    """The daemon logs its story at info unless the command line says otherwise."""
    choice = log_choice(context)
    choice.default = "info"
    configure_logging(choice.resolved())


def _walk(command: click.Command) -> Iterator[click.Command]:
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _walk(sub)
