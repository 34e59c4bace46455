"""The grade sheet: one row a lab, for a spreadsheet.

Every configured lab has its row, also one the history has never seen; the roster's own columns
(student_name, student_email, ...) follow the lab's name. The rows stay in the order of the labs' names
(a sheet to sort as one likes, unlike the reports that list the worst first).
"""

from __future__ import annotations

import csv
import io

from auditor.domain.explain import who
from auditor.domain.model import Finding, Severity
from auditor.report.model import SEVERITIES, ClassReport, LabReport, RosterEntry
from auditor.report.text import iso

COLUMNS = (
    "lab",
    "origin_account",
    "destination_account",
    "state",
    "latest_verdict",
    "worst_finding",
    *(severity.value for severity in SEVERITIES),
    "first_conformant_at",
    "conformant_share",
    "conformant_time_share",
    "audits",
    "changed_by",  # who made the changes behind the open findings, when CloudTrail said so
)

BOM = "\ufeff"  # a spreadsheet (Excel) then reads the file as UTF-8: students' names come out right

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); tab and
# carriage return can smuggle one past a leading-character check in some spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: ClassReport) -> str:
    """The sheet, with a UTF-8 byte-order mark, as `auditor grade --format csv` writes its own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    info_columns = report.info_columns()
    writer.writerow([COLUMNS[0], *(safe_cell(column) for column in info_columns), *COLUMNS[1:]])
    for lab in report.labs:
        writer.writerow(_with_info(_row(lab), report, lab.name, info_columns))
    for name in report.unrecorded:
        entry = report.roster.get(name, RosterEntry("", ""))
        writer.writerow(_with_info(_unrecorded_row(name, entry), report, name, info_columns))
    return BOM + buffer.getvalue()


def _with_info(row: list[str], report: ClassReport, lab: str, columns: tuple[str, ...]) -> list[str]:
    info = report.info_of(lab)
    return [row[0], *(safe_cell(info.get(column, "")) for column in columns), *row[1:]]


def _row(lab: LabReport) -> list[str]:
    return [
        safe_cell(lab.name),
        safe_cell(lab.origin_account),
        safe_cell(lab.destination_account),
        lab.state.value,
        lab.verdict.value if lab.verdict else "",
        safe_cell(worst_finding(tuple(item.finding for item in lab.findings))),
        *(str(count) for _, count in lab.severity_counts.items()),
        iso(lab.first_conformant_at) or "",
        _share(lab.conformant_share),
        _share(lab.conformant_time_share),
        str(lab.audits),
        safe_cell(
            " ".join(
                dict.fromkeys(who(r.finding.changed_by.arn) for r in lab.findings if r.finding.changed_by)
            )
        ),
    ]


def _unrecorded_row(name: str, entry: RosterEntry) -> list[str]:
    """A configured lab the history has never seen: never provisioned, never audited."""
    empty_counts = ["0"] * len(SEVERITIES)
    return [
        safe_cell(name),
        safe_cell(entry.origin_account),
        safe_cell(entry.destination_account),
        "planned",
        "",
        "",
        *empty_counts,
        "",
        "",
        "",
        "0",
        "",
    ]


def worst_finding(findings: tuple[Finding, ...]) -> str:
    """The most severe finding above info, in words: `critical: trust policy lets any principal ...`."""
    significant = [finding for finding in findings if finding.severity is not Severity.INFO]
    if not significant:
        return ""
    worst = max(significant, key=lambda finding: finding.severity.rank)
    return f"{worst.severity.value}: {worst.message}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def safe_cell(text: str) -> str:
    """Text a spreadsheet shows as text: a would-be formula gets a leading apostrophe."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
