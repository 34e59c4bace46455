"""`auditor`: the thin command-line shell over the library (interface.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditor import __version__
from auditor.cli_options import config_option, handles_errors, lab_option, read_config
from auditor.daemon import run_daemon
from auditor.demo import run_demo
from auditor.logs import configure_logging
from auditor.operations import audit_labs, open_store, provision_labs, status_lines, teardown_labs
from auditor.permissions import permissions_command
from auditor.report.command import report_command
from auditor.store import safe_url


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning or error.")
def main(log_level: str) -> None:
    """Provision, audit and tear down the cross-account Lambda lab for a whole class.

    \b
    Example:
      auditor provision --dry-run
      auditor audit --format json
    """
    configure_logging(log_level)


# ------------------------------------------------------------------------------------------ provision


@main.command()
@config_option
@lab_option
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (create / update / no change) and change nothing."
)
@handles_errors
def provision(config_path: str, labs: tuple[str, ...], dry_run: bool) -> None:
    """Build each lab's resources idempotently; on a drifted lab, restore the spec.

    \b
    Example:
      auditor provision --dry-run --lab pair-01
    """
    config = read_config(config_path)
    sys.exit(provision_labs(config, labs, dry_run=dry_run, out=click.echo))


@main.command()
@config_option
@lab_option
@click.option("--expired", is_flag=True, help="Only labs past their expiry.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed and change nothing.")
@handles_errors
def teardown(config_path: str, labs: tuple[str, ...], expired: bool, dry_run: bool) -> None:
    """Remove each lab's resources (only what the lab spec names).

    \b
    Example:
      auditor teardown --expired
    """
    config = read_config(config_path)
    sys.exit(teardown_labs(config, labs, expired_only=expired, dry_run=dry_run, out=click.echo))


# ------------------------------------------------------------------------------------------- audit


@main.command()
@config_option
@lab_option
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--no-invoke", is_flag=True, help="Do not run the function; judge the policies only.")
@click.option("--no-record", is_flag=True, help="Do not record the result in the database.")
@handles_errors
def audit(
    config_path: str, labs: tuple[str, ...], output_format: str, no_invoke: bool, no_record: bool
) -> None:
    """Audit each lab once, now: exit 0 if all are conformant, 3 if not, 1 on an operational error.

    \b
    Example:
      auditor audit --format json --lab pair-01 > audit.json
    """
    config = read_config(config_path)
    sys.exit(
        audit_labs(config, labs, output_format=output_format, invoke=not no_invoke, record=not no_record)
    )


# ------------------------------------------------------------------------------------------ status


@main.command()
@config_option
@lab_option
@handles_errors
def status(config_path: str, labs: tuple[str, ...]) -> None:
    """One line a lab: life-cycle state, expiry, last verdict, last audit time.

    \b
    Example:
      auditor status --lab pair-01
    """
    for line in status_lines(read_config(config_path), labs):
        click.echo(line)


# -------------------------------------------------------------------------------------- db upgrade


@main.group()
def db() -> None:
    """The history database.

    \b
    Example:
      auditor db upgrade
    """


@db.command("upgrade")
@config_option
@handles_errors
def db_upgrade(config_path: str) -> None:
    """Apply the database migrations (the daemon does this itself at start).

    \b
    Example:
      AUDITOR_DATABASE_URL=postgresql+psycopg://auditor@db/auditor auditor db upgrade
    """
    config = read_config(config_path)
    open_store(config).close()
    click.echo(f"database {safe_url(config.database.url)} is at the latest migration")


# ------------------------------------------------------------------------------------------ daemon


@main.command()
@config_option
@handles_errors
def daemon(config_path: str) -> None:
    """The long-running service: scheduled audits, change-event audits, teardown at expiry.

    Serves the live page, /healthz and /metrics on [daemon] health_port, sends [notify]'s
    notifications, and stops cleanly on SIGTERM or SIGINT.

    \b
    Example:
      auditor daemon --config /etc/lab-auditor/config.toml
    """
    sys.exit(run_daemon(read_config(config_path)))


# -------------------------------------------------------------------------------------------- demo


@main.command()
@click.option(
    "--out",
    "workdir",
    default="demo-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo keeps its database and report.",
)
def demo(workdir: str) -> None:
    """The whole story on the embedded emulator, start to end, then exit (no AWS account needed).

    \b
    Example:
      auditor demo --out /tmp/lab-auditor-demo
    """
    sys.exit(run_demo(Path(workdir)))


main.add_command(permissions_command)
main.add_command(report_command, "report")
