"""What the commands print of the application's outcomes, and the exit code each comes to (interface.md).

The application (auditor/app/service.py) returns values; here they become terraform-like plans and
summaries, the audit's table or JSON, the status table or JSON, and exit codes 0, 1, 3 and 130.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from auditor.cli.options import EXIT_INTERRUPTED, EXIT_NOT_CONFORMANT, EXIT_OK, EXIT_OPERATIONAL, approval
from auditor.cli.render import (
    emulator_lines,
    fix_command,
    interruption_lines,
    plan_lines,
    plan_summary,
    plural,
    print_audit_table,
    status_document,
    status_table,
    teardown_summary,
)
from auditor.common.clock import utc_now
from auditor.domain.model import AuditRun, Verdict

if TYPE_CHECKING:
    from auditor.app.service import Approve, AuditOutcome, ChangeOutcome, LabChanges
    from auditor.domain.changes import LabChange
    from auditor.domain.config import Config

Echo = Callable[[str], None]

_PLANNED, _PROVISIONED = (
    "{changing} to change, {unchanged} unchanged",
    "{changing} changed, {unchanged} unchanged",
)


def to_stderr(line: str) -> None:
    click.echo(line, err=True)


# ---------------------------------------------------------------------------------------- provision


def deletions_approval(yes: bool, out: Echo, *, diff: bool) -> Approve:
    """Show the plans that delete something, then ask (or take --yes, or refuse without a terminal)."""
    ask = approval(yes, "the plan deletes resources")

    def approve(doomed: LabChanges) -> bool:
        out("The plan deletes what the spec does not have:")
        for name, change in _changes(doomed):
            for line in plan_lines(
                name, change.steps, "{changing} to change", diff=diff, findings=change.findings
            ):
                out(line)
        count = sum(len(change.deletions) for _, change in _changes(doomed))
        return ask(f"Provision and delete {plural(count, 'resource')} in {plural(len(doomed), 'lab')}?")

    return approve


def provisioning_shown(outcome: ChangeOutcome, out: Echo, *, diff: bool) -> int:
    """The provision's plans (or what it did), its failures and summary; the exit code."""
    if outcome.interrupted is not None:
        return _interrupted(outcome, out, "provisioned")
    if outcome.cancelled:
        out("provisioning cancelled: nothing was changed")
        return EXIT_OPERATIONAL
    summary = _PLANNED if outcome.dry_run else _PROVISIONED
    for name, change in _changes(outcome.labs):
        for line in plan_lines(name, change.steps, summary, diff=diff, findings=change.findings):
            out(line)
    code = _failures_shown(outcome, out)
    out(plan_summary(outcome.changes, dry_run=outcome.dry_run))
    return code


# ----------------------------------------------------------------------------------------- teardown


def removal_approval(yes: bool, out: Echo) -> Approve:
    """Show what the teardown removes, then ask (or take --yes, or refuse without a terminal)."""
    ask = approval(yes, "the teardown removes resources")

    def approve(doomed: LabChanges) -> bool:
        out("The teardown removes:")
        _removals_shown(doomed, out, dry_run=True)
        count = sum(len(change.steps) for _, change in _changes(doomed))
        return ask(f"Tear down {plural(len(doomed), 'lab')}, removing {plural(count, 'resource')}?")

    return approve


def teardown_shown(outcome: ChangeOutcome, out: Echo, *, expired_only: bool) -> int:
    """What the teardown removes (or removed), its failures and summary; the exit code."""
    if outcome.interrupted is not None:
        return _interrupted(outcome, out, "torn down")
    if outcome.cancelled:
        out("teardown cancelled: nothing was removed")
        return EXIT_OPERATIONAL
    if expired_only and not outcome.labs:
        out("no expired labs")
        return EXIT_OK
    _removals_shown(outcome.labs, out, dry_run=outcome.dry_run)
    code = _failures_shown(outcome, out)
    out(teardown_summary(outcome.changes, dry_run=outcome.dry_run))
    return code


def _removals_shown(outcomes: LabChanges, out: Echo, *, dry_run: bool) -> None:
    summary = "{changing} to remove" if dry_run else "{changing} removed"
    for name, change in _changes(outcomes):
        for line in plan_lines(name, change.steps, summary):
            out(line)


# ------------------------------------------------------------------------------------------- shared


def _changes(outcomes: LabChanges) -> list[tuple[str, LabChange]]:
    """(lab, change) of each outcome that has one, planned or done (a failed lab has none)."""
    return [(outcome.name, outcome.result) for outcome in outcomes if outcome.result is not None]


def _failures_shown(outcome: ChangeOutcome, out: Echo) -> int:
    for failed in outcome.failed:
        out(f"{failed.name}: FAILED: {failed.error}")
    return EXIT_OPERATIONAL if outcome.failed else EXIT_OK


def _interrupted(outcome: ChangeOutcome, out: Echo, done: str) -> int:
    assert outcome.interrupted is not None
    for line in interruption_lines(outcome.interrupted, done):
        out(line)
    return EXIT_INTERRUPTED


# -------------------------------------------------------------------------------------------- audit


def audit_exit_code(run: AuditRun) -> int:
    verdicts = {lab.verdict for lab in run.labs}
    if Verdict.ERROR in verdicts:
        return EXIT_OPERATIONAL
    return EXIT_OK if verdicts <= {Verdict.CONFORMANT} else EXIT_NOT_CONFORMANT


def audit_shown(outcome: AuditOutcome, output_format: str, config_path: str) -> int:
    """The audit's table (or JSON) on standard output; an unrecorded run is said and exits 1."""
    if output_format == "json":
        sys.stdout.write(json.dumps(outcome.run.to_json(), indent=2) + "\n")
    else:
        print_audit_table(outcome.run, fix=lambda lab: fix_command(lab, config_path))
    if outcome.not_recorded is not None:
        to_stderr(f"error: the audit ran but could not be recorded: {outcome.not_recorded}")
        return EXIT_OPERATIONAL
    return audit_exit_code(outcome.run)


# ------------------------------------------------------------------------------------------- status


def status_output(config: Config, names: Sequence[str], output_format: str) -> str:
    """The table under a line naming the database it read (and the embedded emulator's state, when the
    configuration uses it), or the JSON document with both."""
    from auditor.app.reading import lab_status
    from auditor.store import safe_url

    status = lab_status(config, names)
    database = safe_url(config.database.url)
    if output_format == "json":
        document = status_document(status.rows, utc_now(), database, status.emulator)
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    header = [f"database: {database}", *emulator_lines(status.emulator, config.path)]
    return "\n".join([*header, *status_table(status.rows)]) + "\n"
