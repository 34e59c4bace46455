"""`auditor doctor`: the diagnosis of auditor/app/doctor.py, printed, and its exit code (0 ready, 1 problems)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.options import (
    EXIT_OK,
    EXIT_OPERATIONAL,
    config_option,
    handles_errors,
    lab_option,
    read_config,
)
from auditor.cli.render import plural

if TYPE_CHECKING:
    from auditor.app.doctor import Diagnosis

SHOWN_SUBJECTS = 3


@click.command("doctor")
@config_option
@lab_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: a line a check, then a line a problem with its fix; json: one document for scripts.",
)
@handles_errors
def doctor_command(config_path: str, labs: tuple[str, ...], output_format: str) -> None:
    """Before class: check each account as the daemon will use it; exit 0 ready, 1 problems, 2 bad input.

    Checks the operator's credentials (and says where they come from), the clock against AWS's, each
    lab account's role assumed with its external id, each API call the daemon makes there (IAM's policy
    simulator on AWS; the project's policy engine on an emulator, which enforces no IAM), and with
    [events] the change events' queue, rules and trails. Changes nothing.

    \b
    Example:
      auditor doctor --config config.toml
      auditor doctor --lab pair-01 --format json
    """
    from auditor.app.doctor import diagnose  # the AWS and policy stacks, only when the command runs

    diagnosis = diagnose(read_config(config_path), labs)
    if output_format == "json":
        click.echo(json.dumps(doctor_document(diagnosis), indent=2))
    else:
        for line in doctor_lines(diagnosis):
            click.echo(line)
    sys.exit(EXIT_OK if diagnosis.ok else EXIT_OPERATIONAL)


def subjects_text(subjects: Sequence[str]) -> str:
    shown = list(subjects[:SHOWN_SUBJECTS])
    more = len(subjects) - len(shown)
    if more:
        return f"{', '.join(shown)} and {more} more"
    return ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]


def doctor_lines(diagnosis: Diagnosis) -> list[str]:
    """A header, a line a check, a line a problem (and a check not made), each whole; the summary."""
    lines = [
        f"auditor doctor: {plural(diagnosis.labs, 'lab')} in {plural(diagnosis.accounts, 'account')} on "
        f"{diagnosis.where}, as the daemon will use them ({diagnosis.config_path})"
    ]
    width = max(len(check) for check, _ in diagnosis.facts) if diagnosis.facts else 0
    lines += [f"  {check:<{width}}  {text}" for check, text in diagnosis.facts]
    lines += [
        f"problem: {p.check}: {subjects_text(p.subjects)}: {p.message}; fix: {p.fix}"
        for p in diagnosis.problems
    ]
    lines += [
        f"not checked: {u.check}: {subjects_text(u.subjects)}: {u.reason}; to check: {u.how}"
        for u in diagnosis.unchecked
    ]
    lines.append(diagnosis.summary())
    return lines


def doctor_document(diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "schema": "auditor.doctor/v1",
        "config": diagnosis.config_path,
        "where": diagnosis.where,
        "labs": diagnosis.labs,
        "accounts": diagnosis.accounts,
        "ok": diagnosis.ok,
        "checks": {str(check): text for check, text in diagnosis.facts},
        "problems": [
            {"check": str(p.check), "subjects": list(p.subjects), "message": p.message, "fix": p.fix}
            for p in diagnosis.problems
        ],
        "unchecked": [
            {"check": str(u.check), "subjects": list(u.subjects), "reason": u.reason, "how": u.how}
            for u in diagnosis.unchecked
        ],
        "summary": diagnosis.summary(),
    }
