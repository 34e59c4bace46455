"""How `auditor audit` shows its result on a terminal (rich) or in a pipe (plain lines)."""

from __future__ import annotations

import sys
from typing import IO

from auditor.clock import iso
from auditor.explain import explanation
from auditor.model import AuditRun, Severity, Verdict

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


def print_audit_table(run: AuditRun, out: IO[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out or sys.stdout, soft_wrap=False)
    table = Table(title=f"Audit {iso(run.started_at)}", show_lines=False)
    for column in ("lab", "origin", "destination", "verdict", "findings"):
        table.add_column(column)
    for lab in run.labs:
        style = VERDICT_STYLE[lab.verdict]
        table.add_row(
            lab.lab,
            lab.origin_account,
            lab.destination_account,
            f"[{style}]{lab.verdict.value}[/]",
            str(len(lab.findings)),
        )
    console.print(table)
    for lab in run.labs:
        if lab.error:
            console.print(
                f"[magenta]{lab.lab}[/]: could not finish: {lab.error}", markup=True, highlight=False
            )
        for finding in lab.findings:
            if finding.severity is Severity.INFO:
                continue
            style = SEVERITY_STYLE[finding.severity]
            console.print(
                f"[bold]{lab.lab}[/] [{style}]{finding.severity.value:<8}[/] {finding.check.value:<20} "
                f"{finding.effect.value:<9} ",
                end="",
                markup=True,
                highlight=False,
            )
            console.print(finding.message, markup=False, highlight=False)
            if explained := explanation(finding):
                console.print(f"    {explained}", markup=False, highlight=False)
