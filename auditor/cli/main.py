"""`auditor`: the thin command-line shell over the library (interface.md).

A command imports what it uses when it runs (issue 25: `auditor --help` and `auditor status` answer at
once): the commands here import the application inside their bodies, and the commands of their own
modules are imported only when named (LazyGroup); tests/test_startup.py holds them to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from auditor import __version__
from auditor.cli.lazy import LazyCommand, LazyGroup
from auditor.cli.options import (
    config_option,
    handles_errors,
    lab_option,
    log_choice,
    read_config,
    use_service_level,
    with_log_options,
    yes_option,
)

# The commands of their own modules, imported when the command is named; --help shows the summary.
COMMAND_MODULES = {
    "doctor": LazyCommand(
        "auditor.cli.doctor:doctor_command",
        "Before class: check each account as the daemon will use it; exit 0 ready, 1 problems, 2 bad input.",
    ),
    "emulator": LazyCommand(
        "auditor.cli.emulator:emulator_command",
        "The embedded AWS emulator, kept running in the background between commands.",
    ),
    "grade": LazyCommand(
        "auditor.cli.grade:grade_command",
        "Grade each lab step by step from the recorded history (no AWS call): the guide's steps as a rubric.",
    ),
    "permissions": LazyCommand(
        "auditor.cli.permissions:permissions_command",
        "Print the least-privilege IAM policies the auditor needs, derived from the calls its code makes.",
    ),
    "report": LazyCommand(
        "auditor.cli.report:report_command",
        "The report from the recorded history: html for people, md for a chat, csv for grades, json "
        "for tools.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMAND_MODULES,
    on_load=with_log_options,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="auditor")
@click.pass_context
def main(context: click.Context) -> None:
    """Provision, audit and tear down the cross-account Lambda lab for a whole class.

    Logs go to standard error, at warning and above unless -v (or --log-level) says otherwise; these
    options may come before or after the command.

    \b
    Example:
      auditor provision --dry-run
      auditor audit --format json
      auditor -v teardown --expired --yes
    """
    from auditor.common.logs import configure_logging
    from auditor.common.process import tune_process

    configure_logging(log_choice(context).resolved())
    tune_process()


# ------------------------------------------------------------------------------------------ provision


@main.command()
@config_option
@lab_option
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (what to create, update, delete) and change nothing."
)
@click.option(
    "--diff", is_flag=True, help="Show each change's attributes: - as in the account, + as the spec."
)
@yes_option
@handles_errors
def provision(config_path: str, labs: tuple[str, ...], dry_run: bool, diff: bool, yes: bool) -> None:
    """Build each lab's resources idempotently; on a drifted lab, restore the spec.

    A plan that deletes something (a student's extra policy, an attached managed policy) is shown and
    asked about first on a terminal; scripts pass --yes. Ends with a summary (3 to create, 1 to update,
    0 to delete); Ctrl-C lets the labs under way finish and says which were done and which not.

    \b
    Example:
      auditor provision --dry-run --diff --lab pair-01
      auditor provision --yes
    """
    from auditor.app import service
    from auditor.cli.outcomes import deletions_approval, provisioning_shown, to_stderr
    from auditor.cli.progress import terminal_progress
    from auditor.common.clock import process_started_at

    outcome = service.provision(
        read_config(config_path),
        labs,
        dry_run=dry_run,
        approve=deletions_approval(yes, click.echo, diff=diff),
        tell=to_stderr,
        started=process_started_at(),  # a lab torn down since the operator ran it is left so
        progress=terminal_progress(),
    )
    sys.exit(provisioning_shown(outcome, click.echo, diff=diff))


@main.command()
@config_option
@lab_option
@click.option("--expired", is_flag=True, help="Only labs past their expiry.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed and change nothing.")
@click.option(
    "--students-resources",
    is_flag=True,
    help='With [class] built_by = "students": remove the students\' roles, policies, function and log '
    "group too, not only the project's marker bucket and event rules.",
)
@yes_option
@handles_errors
def teardown(
    config_path: str, labs: tuple[str, ...], expired: bool, dry_run: bool, students_resources: bool, yes: bool
) -> None:
    """Remove each lab's resources (only what the lab spec names).

    When students build the lab ([class] built_by = "students"), only the project's own parts go (the
    marker bucket, the event rules) unless --students-resources is given.

    Shows what will go and asks first on a terminal; scripts pass --yes (without a terminal and without
    --yes it refuses, exit 2). Ctrl-C lets the labs under way finish and says which were done.

    \b
    Example:
      auditor teardown --expired --yes
      auditor teardown --lab pair-01
      auditor teardown --students-resources --yes
    """
    from auditor.app import service
    from auditor.cli.outcomes import removal_approval, teardown_shown, to_stderr
    from auditor.cli.progress import terminal_progress

    outcome = service.teardown(
        read_config(config_path),
        labs,
        expired_only=expired,
        dry_run=dry_run,
        approve=removal_approval(yes, click.echo),
        tell=to_stderr,
        progress=terminal_progress(),
        students_resources=students_resources,
    )
    sys.exit(teardown_shown(outcome, click.echo, expired_only=expired))


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

    The table puts the worst labs first (broken or critical, then drifted); each finding names its
    account and resource and ends with the command that fixes it.

    \b
    Example:
      auditor audit --format json --lab pair-01 > audit.json
    """
    from auditor.app import service
    from auditor.cli.outcomes import audit_shown, to_stderr
    from auditor.cli.progress import terminal_progress

    config = read_config(config_path)
    outcome = service.audit(
        config, labs, invoke=not no_invoke, record=not no_record, tell=to_stderr, progress=terminal_progress()
    )
    sys.exit(audit_shown(outcome, output_format, config.path))


# ------------------------------------------------------------------------------------------ status


@main.command()
@config_option
@lab_option
@click.option(
    "--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@handles_errors
def status(config_path: str, labs: tuple[str, ...], output_format: str) -> None:
    """One line a lab: life-cycle state, expiry, last verdict, last audit time.

    A lab still standing past its expiry shows as expired; a torn-down lab has no verdict.

    \b
    Example:
      auditor status --lab pair-01
      auditor status --format json
    """
    from auditor.cli.outcomes import status_output

    click.echo(status_output(read_config(config_path), labs, output_format), nl=False)


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
    from auditor.app.recording import open_store
    from auditor.store import safe_url

    config = read_config(config_path)
    open_store(config).close()
    click.echo(f"database {safe_url(config.database.url)} is at the latest migration")


# ------------------------------------------------------------------------------------------ daemon


@main.command()
@config_option
@handles_errors
@click.pass_context
def daemon(context: click.Context, config_path: str) -> None:
    """The long-running service: scheduled audits, change-event audits, teardown at expiry.

    Serves the live page, /healthz and /metrics on [daemon] health_port (AUDITOR_HEALTH_PORT wins:
    replicas on one host each set their own), sends [notify]'s notifications, and stops cleanly on
    SIGTERM or SIGINT. Logs at info unless told otherwise.

    \b
    Example:
      auditor daemon --config /etc/lab-auditor/config.toml
    """
    from auditor.daemon.daemon import run_daemon

    use_service_level(context)
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
@click.option(
    "--class",
    "students",
    is_flag=True,
    help='A class of students building the lab by hand, followed and graded ([class] built_by = "students").',
)
@handles_errors
def demo(workdir: str, students: bool) -> None:
    """The whole story on the embedded emulator, start to end, then exit (no AWS account needed).

    \b
    Example:
      auditor demo --out /tmp/lab-auditor-demo
      auditor demo --class
    """
    if students:
        from auditor.cli.class_demo import run_class_demo

        sys.exit(run_class_demo(Path(workdir)))
    from auditor.cli.demo import run_demo

    sys.exit(run_demo(Path(workdir)))


with_log_options(main)
