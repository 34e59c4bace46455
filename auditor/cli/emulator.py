"""`auditor emulator start|stop|status`: the embedded emulator, lasting between commands (what each
command uses is imported when it runs)."""

from __future__ import annotations

import sys

import click

from auditor.cli.options import EXIT_OPERATIONAL, config_option, handles_errors, read_config


@click.group("emulator")
def emulator_command() -> None:
    """The embedded AWS emulator, kept running in the background between commands.

    With endpoint_url = "embedded", every command finds the emulator started here (its address is
    kept in .auditor-emulator.json beside the configuration), so what `auditor provision` builds is
    still there for `auditor audit`. The first `auditor provision` starts it if need be.

    \b
    Example:
      auditor emulator start
      auditor provision && auditor audit
      auditor emulator stop
    """


@emulator_command.command("start")
@config_option
@handles_errors
def emulator_start(config_path: str) -> None:
    """Start the emulator in the background (nothing happens if it already runs).

    \b
    Example:
      auditor emulator start --config config.toml
    """
    from auditor.aws.emulator import EmulatorError, start_emulator, state_file_for

    _check_embedded(config_path)
    try:
        emulator, started = start_emulator(state_file_for(config_path))
    except EmulatorError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_OPERATIONAL)
    verb = "started" if started else "already running"
    click.echo(f"emulator {verb} at {emulator.url} (pid {emulator.pid}); `auditor emulator stop` ends it")


@emulator_command.command("stop")
@config_option
@handles_errors
def emulator_stop(config_path: str) -> None:
    """Stop the emulator; everything built in it is gone.

    \b
    Example:
      auditor emulator stop
    """
    from auditor.aws.emulator import state_file_for, stop_emulator

    stopped = stop_emulator(state_file_for(config_path))
    click.echo(f"emulator at {stopped.url} stopped" if stopped else "no emulator was running")


@emulator_command.command("status")
@config_option
@handles_errors
def emulator_status(config_path: str) -> None:
    """Whether the emulator runs, and where: exit 0 if it does, 1 if not.

    \b
    Example:
      auditor emulator status
    """
    from auditor.aws.emulator import running_emulator, state_file_for

    running = running_emulator(state_file_for(config_path))
    if running is None:
        click.echo("not running (`auditor emulator start` starts it)")
        sys.exit(EXIT_OPERATIONAL)
    click.echo(f"running at {running.url} (pid {running.pid}, since {running.started_at})")


def _check_embedded(config_path: str) -> None:
    from auditor.domain.config import EMBEDDED

    config = read_config(config_path)
    if config.aws.endpoint_url != EMBEDDED:
        click.echo(f'warning: {config.path} does not use it ([aws] endpoint_url is not "embedded")', err=True)
