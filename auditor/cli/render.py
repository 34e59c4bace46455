"""What the commands print: for a person on a terminal (rich), or plain lines for a pipe, never wrapped.

Pure where it can be: each function turns values into lines; only `print_audit_table` writes.
"""

from __future__ import annotations

import difflib
import json
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from auditor.app.emulated import EmulatorState
from auditor.common.clock import iso
from auditor.domain.config import DEFAULT_CONFIG_PATH
from auditor.domain.explain import actor_line, explanation
from auditor.domain.model import Action, AuditRun, Finding, LabAudit, Severity, Step, Verdict
from auditor.domain.urgency import urgency, worst_of
from auditor.report.text import student_label

if TYPE_CHECKING:
    from auditor.app.fleet import Interrupted
    from auditor.app.status import LabStatusRow
    from auditor.domain.changes import LabChange

VERDICT_STYLE = {
    Verdict.CONFORMANT: "green",
    Verdict.DRIFTED: "yellow",
    Verdict.BROKEN: "red",
    Verdict.ERROR: "magenta",
}
SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
# The title's counts, worst first.
_VERDICT_GROUP = {Verdict.BROKEN: 0, Verdict.DRIFTED: 1, Verdict.ERROR: 2, Verdict.CONFORMANT: 3}
FixCommand = Callable[[str], str]


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 bucket`, `2 buckets`, `0 buckets`."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


# ------------------------------------------------------------------------------------------- audit


def worst_severity(lab: LabAudit) -> Severity | None:
    return worst_of(lab.findings)


def worst_first(labs: Iterable[LabAudit]) -> list[LabAudit]:
    """auditor/domain/urgency.py's order: broken or critical, then drifted, error, conformant."""
    return sorted(labs, key=lambda lab: urgency(lab.lab, lab.verdict, worst_severity(lab)))


def resource_label(resource: str) -> str:
    """`account 222222222222, role/LambdaS3ListBuckets` for an ARN; anything else as it is."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return resource
    service, account, name = parts[2], parts[4], parts[5]
    if service == "s3" and not account:
        return f"bucket {name}"
    return f"account {account}, {name}" if account else name


def fix_command(lab: str, config_path: str = DEFAULT_CONFIG_PATH) -> str:
    """The command that resets the lab to the spec, runnable as shown."""
    config = "" if config_path == DEFAULT_CONFIG_PATH else f" --config {shlex.quote(config_path)}"
    return f"auditor provision{config} --lab {shlex.quote(lab)}"


def finding_text(lab: str, finding: Finding, fix: FixCommand | None) -> str:
    """What was found, on what, and what fixes it (the provision command when a step of the plan answers
    the finding, else the remediation its code declares): one line that grep keeps whole."""
    text = f"{finding.message} ({resource_label(finding.resource)})"
    if fix is None:
        return text
    from auditor.resources.registry import REGISTRY  # the kinds' remedies: only an audit's findings

    remedy = fix(lab) if finding.fixable else REGISTRY.remediation(finding, by_provisioning=False)
    return f"{text}; fix: {remedy}" if remedy else text


def audit_rows(run: AuditRun) -> list[list[str]]:
    rows = []
    for lab in worst_first(run.labs):
        worst = worst_severity(lab)
        rows.append(
            [
                lab.lab,
                lab.origin_account,
                lab.destination_account,
                lab.verdict.value,
                worst.value if worst is not None else "-",
                str(len(lab.findings)),
            ]
        )
    return rows


AUDIT_COLUMNS = ("lab", "origin", "destination", "verdict", "worst", "findings")


def audit_title(run: AuditRun) -> str:
    counts = {verdict: 0 for verdict in _VERDICT_GROUP}
    for lab in run.labs:
        counts[lab.verdict] += 1
    shown = ", ".join(f"{count} {verdict.value}" for verdict, count in counts.items() if count)
    return f"Audit {iso(run.started_at)}: {plural(len(run.labs), 'lab')}" + (f" ({shown})" if shown else "")


def finding_lines(run: AuditRun, fix: FixCommand | None) -> Iterator[tuple[LabAudit, Finding | None, str]]:
    """(lab, finding, text) worst lab first; an audit that could not finish has no finding."""
    for lab in worst_first(run.labs):
        if lab.error:
            yield lab, None, f"could not finish: {lab.error}"
        for finding in lab.findings:
            if finding.severity is not Severity.INFO:
                yield lab, finding, finding_text(lab.lab, finding, fix)


def print_audit_table(
    run: AuditRun, out: IO[str] | None = None, fix: FixCommand | None = None, terminal: bool | None = None
) -> None:
    stream = out or sys.stdout
    if terminal is None:
        terminal = stream.isatty()
    if terminal:
        _print_rich(run, stream, fix)
        return
    for line in plain_audit_lines(run, fix):
        stream.write(line + "\n")
    stream.flush()


def plain_audit_lines(run: AuditRun, fix: FixCommand | None) -> list[str]:
    """For a pipe: aligned columns, one finding a line, never wrapped."""
    lines = [audit_title(run), *aligned([list(AUDIT_COLUMNS), *audit_rows(run)])]
    for lab, finding, text in finding_lines(run, fix):
        if finding is None:
            lines.append(f"{lab.lab} error    {text}")
            continue
        lines.append(
            f"{lab.lab} {finding.severity.value:<8} {finding.check:<20} {finding.effect.value:<9} {text}"
        )
        if explained := explanation(finding):
            lines.append(f"    {explained}")
    return lines


def _print_rich(run: AuditRun, stream: IO[str], fix: FixCommand | None) -> None:
    from rich.console import Console
    from rich.table import Table

    # Soft wrap: a finding line is never broken by a newline, so its fix command stays whole (the terminal
    # folds a long line on screen, and a copy of it is the line as printed).
    console = Console(file=stream, soft_wrap=True)
    table = Table(title=audit_title(run), show_lines=False)
    for column in AUDIT_COLUMNS:
        table.add_column(column)
    for row in audit_rows(run):
        verdict, worst = Verdict(row[3]), row[4]
        row[3] = f"[{VERDICT_STYLE[verdict]}]{row[3]}[/]"
        if worst != "-":
            row[4] = f"[{SEVERITY_STYLE[Severity(worst)]}]{worst}[/]"
        table.add_row(*row)
    console.print(table, soft_wrap=False)  # the table is drawn to the terminal's width
    for lab, finding, text in finding_lines(run, fix):
        if finding is None:
            console.print(f"[magenta]{lab.lab}[/]: ", end="", highlight=False)
            console.print(text, markup=False, highlight=False)
            continue
        style = SEVERITY_STYLE[finding.severity]
        console.print(
            f"[bold]{lab.lab}[/] [{style}]{finding.severity.value:<8}[/] {finding.check:<20} "
            f"{finding.effect.value:<9} ",
            end="",
            highlight=False,
        )
        console.print(text, markup=False, highlight=False)
        if explained := explanation(finding):
            console.print(f"    {explained}", markup=False, highlight=False)


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


# -------------------------------------------------------------------------------------------- plans


def plan_lines(
    name: str,
    steps: Sequence[Step],
    summary: str,
    *,
    diff: bool = False,
    findings: Sequence[Finding] = (),
) -> list[str]:
    """A lab's header (`summary` formats {changing} and {unchanged}), then its changing steps only."""
    changing = [step for step in steps if step.changes]
    lines = [f"{name}: " + summary.format(changing=len(changing), unchanged=len(steps) - len(changing))]
    for step in changing:
        lines.append(f"  {step.describe()}")
        if diff:
            lines += [f"      {line}" for line in step_diff(step, findings)]
    return lines


def step_diff(step: Step, findings: Sequence[Finding]) -> list[str]:
    """What the step changes, as a diff from the account's value (-) to the spec's (+): the findings of
    its resource that the plan answers."""
    lines: list[str] = []
    for finding in findings:
        if finding.subject is None or finding.subject.key != step.key or not finding.fixable:
            continue
        if finding.expected is None and finding.actual is None:
            continue
        if step.action is Action.DELETE and finding.expected is not None and finding.actual is None:
            continue
        lines += attribute_diff(finding.actual, finding.expected)
    return lines


def attribute_diff(actual: Any, expected: Any, context: int = 2) -> list[str]:
    """`- ` lines only in the account, `+ ` lines only in the spec, and `context` same lines around
    each change (`...` between the groups); the documents as written, not canonical (pure)."""
    before, after = _json_lines(actual), _json_lines(expected)
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for number, group in enumerate(matcher.get_grouped_opcodes(context)):
        if number:
            lines.append("  ...")
        for tag, low_a, high_a, low_b, high_b in group:
            if tag == "equal":
                lines += [f"  {line}" for line in before[low_a:high_a]]
                continue
            lines += [f"- {line}" for line in before[low_a:high_a]]
            lines += [f"+ {line}" for line in after[low_b:high_b]]
    return lines


def _json_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value.splitlines() or [""]
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).splitlines()


def _action_counts(changes: Iterable[LabChange]) -> dict[Action, int]:
    counts = {Action.CREATE: 0, Action.UPDATE: 0, Action.DELETE: 0}
    for change in changes:
        for step in change.changed:
            counts[step.action] += 1
    return counts


def plan_summary(changes: Sequence[LabChange], *, dry_run: bool) -> str:
    """terraform's last line: `Plan: 3 to create, 1 to update, 0 to delete.`, and the labs it touches."""
    counts = _action_counts(changes)
    touched = sum(1 for change in changes if change.changed)
    labs = f"{plural(touched, 'lab')} to change, {len(changes) - touched} unchanged"
    if not touched:
        return f"No changes: {plural(len(changes), 'lab')} as the spec says."
    if dry_run:
        return (
            f"Plan: {counts[Action.CREATE]} to create, {counts[Action.UPDATE]} to update, "
            f"{counts[Action.DELETE]} to delete ({labs})."
        )
    return (
        f"Provisioned: {counts[Action.CREATE]} created, {counts[Action.UPDATE]} updated, "
        f"{counts[Action.DELETE]} deleted ({plural(touched, 'lab')} changed, {len(changes) - touched} unchanged)."
    )


def teardown_summary(changes: Sequence[LabChange], *, dry_run: bool) -> str:
    removed = sum(len(change.steps) for change in changes)
    labs = sum(1 for change in changes if change.steps)
    if not removed:
        return f"Nothing to remove: {plural(len(changes), 'lab')} already gone."
    verb = "to remove" if dry_run else "removed"
    return f"Teardown: {plural(removed, 'resource')} {verb} in {plural(labs, 'lab')}."


def interruption_lines(stop: Interrupted, done: str) -> list[str]:
    """What a Ctrl-C left: which labs were finished (or failed), which were not started."""
    lines = [f"Interrupted while {stop.label}."]
    if stop.label.startswith("planning"):
        lines.append("Nothing was changed: the labs were still being planned.")
    else:
        finished = [o.name for o in stop.finished if o.ok]
        failed = [f"{o.name} ({o.error})" for o in stop.finished if not o.ok]
        lines.append(f"Done ({done}): {', '.join(finished) or 'none'}")
        if failed:
            lines.append(f"Failed: {', '.join(failed)}")
    lines.append(f"Not started: {', '.join(stop.not_started) or 'none'}")
    return lines


# ------------------------------------------------------------------------------------------- status

STATUS_COLUMNS = ("lab", "state", "expires", "verdict", "audited", "origin", "destination")


def status_table(rows: Sequence[LabStatusRow]) -> list[str]:
    """A header, then one line a lab (kubectl get's manner)."""
    student = any(row.info for row in rows)
    changes = any(row.changed_by for row in rows)
    header = [*STATUS_COLUMNS, *(["student"] if student else []), *(["change"] if changes else [])]
    table = [
        [
            row.name,
            row.state,
            _when(row.expires_at),
            row.verdict.value if row.verdict else "-",
            _when(row.last_audit_at),
            row.origin_account,
            row.destination_account,
            *([student_label(row.info) or "-"] if student else []),
            *([actor_line(row.changed_by) if row.changed_by else "-"] if changes else []),
        ]
        for row in rows
    ]
    return aligned([[column.upper() for column in header], *table])


def emulator_lines(state: EmulatorState | None, config_path: str) -> list[str]:
    """The embedded emulator's state over the status table; nothing when the configuration uses none."""
    if state is None:
        return []
    config = "" if config_path == DEFAULT_CONFIG_PATH else f" --config {shlex.quote(config_path)}"
    if state is EmulatorState.RUNNING:
        return ["emulator: running"]
    if state is EmulatorState.DAEMON:
        return ["emulator: the daemon's own (no `auditor emulator start` one runs; the daemon answers)"]
    return [
        "emulator: not running: everything built in it is gone "
        f"(start it: auditor emulator start{config}, then auditor provision{config})"
    ]


def status_document(
    rows: Sequence[LabStatusRow], now: datetime, database: str, emulator: EmulatorState | None = None
) -> dict[str, Any]:
    """`database`: the URL of the history read, without its password; `emulator`: the embedded
    emulator's state (`running`, `daemon`, `stopped`), null when the configuration uses none."""
    return {
        "schema": "auditor.status/v1",
        "generated_at": iso(now),
        "database": database,
        "emulator": emulator.value if emulator is not None else None,
        "labs": [
            {
                "lab": row.name,
                "state": row.state,
                "expires_at": _stamp(row.expires_at),
                "verdict": row.verdict.value if row.verdict else None,
                "last_audit_at": _stamp(row.last_audit_at),
                "origin_account": row.origin_account,
                "destination_account": row.destination_account,
                "info": dict(row.info),
                "changed_by": row.changed_by.to_json() if row.changed_by else None,
            }
            for row in rows
        ],
    }


def _when(moment: datetime | None) -> str:
    return iso(moment) if moment else "-"


def _stamp(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None
