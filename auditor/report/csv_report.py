"""The grade sheet: one row a lab, for a spreadsheet."""

from __future__ import annotations

import csv
import io

from auditor.explain import who
from auditor.report.model import SEVERITIES, ClassReport, LabReport
from auditor.report.text import iso

COLUMNS = (
    "lab",
    "origin_account",
    "destination_account",
    "state",
    "latest_verdict",
    *(severity.value for severity in SEVERITIES),
    "first_conformant_at",
    "conformant_share",
    "audits",
    "changed_by",  # who made the changes behind the open findings, when CloudTrail said so
)

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); tab and
# carriage return can smuggle one past a leading-character check in some spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: ClassReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(lab) for lab in report.labs)
    return buffer.getvalue()


def _row(lab: LabReport) -> list[str]:
    return [
        safe_cell(lab.name),
        safe_cell(lab.origin_account),
        safe_cell(lab.destination_account),
        lab.state.value,
        lab.verdict.value if lab.verdict else "",
        *(str(count) for _, count in lab.severity_counts.items()),
        iso(lab.first_conformant_at) or "",
        "" if lab.conformant_share is None else f"{lab.conformant_share:.4f}",
        str(lab.audits),
        safe_cell(
            " ".join(
                dict.fromkeys(who(r.finding.changed_by.arn) for r in lab.findings if r.finding.changed_by)
            )
        ),
    ]


def safe_cell(text: str) -> str:
    """Text a spreadsheet shows as text: a would-be formula gets a leading apostrophe."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
