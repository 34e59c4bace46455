"""The report for a chat or a ticket: an overview table, then each lab's findings (GitHub-flavoured Markdown).

Everything that came from AWS or the store is escaped: Markdown renderers also render inline HTML,
so a policy holding `<script>` must reach them as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from auditor.domain.explain import explanation
from auditor.domain.model import Effect, Severity, Verdict
from auditor.report.diff import unified_lines
from auditor.report.model import SEVERITIES, ClassReport, FindingReport, LabReport
from auditor.report.text import last_conformant, percent, period, student_label, verdict_summary, when

VERDICT_MARK = {
    Verdict.CONFORMANT: "🟢",
    Verdict.DRIFTED: "🟠",
    Verdict.BROKEN: "🔴",
    Verdict.ERROR: "🟣",
}
# CommonMark lets a backslash make any ASCII punctuation literal; these are the ones that start markup
# (emphasis, code, links, HTML, tables, strikethrough, entities).
_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#|~&!])")
_BACKTICKS = re.compile(r"`+")


def render_markdown(report: ClassReport) -> str:
    return "\n".join(_document(report)) + "\n"


def _document(report: ClassReport) -> Iterator[str]:
    yield "# Lab audit report"
    yield ""
    yield f"{verdict_summary(report)} · {period(report)} · generated {when(report.generated_at)}"
    if report.database:
        yield ""
        yield f"From the history in `{report.database}`."
    yield ""
    yield from _overview(report)
    if report.unrecorded:
        yield ""
        yield "Not in the history (never provisioned or audited): " + ", ".join(map(text, report.unrecorded))
    labs = report.worst_first()
    quiet = [lab for lab in labs if not _has_news(lab)]
    if quiet:
        yield ""
        yield "Conformant, nothing above info: " + ", ".join(_named(lab.name, report) for lab in quiet)
    for lab in labs:
        if _has_news(lab):
            yield ""
            yield from _lab_section(lab, report)


def _overview(report: ClassReport) -> Iterator[str]:
    """A row a lab, worst first; with a roster's names, a column of them after the lab's."""
    severities = [severity.value for severity in SEVERITIES]
    students = any(report.student_name(lab.name) for lab in report.labs)
    named = ["Lab", *(["Student"] if students else [])]
    header = [*named, "Origin", "Destination", "State", "Expires", "Verdict", *severities, "Last conformant"]
    yield _table_row(header)
    yield _table_row(["---"] * (len(named) + 5) + ["--:"] * len(severities) + ["---"])
    for lab in report.worst_first():
        yield _table_row(
            [
                text(lab.name),
                *([text(report.student_name(lab.name)) or "–"] if students else []),
                text(lab.origin_account),
                text(lab.destination_account),
                _state(lab),
                when(lab.expires_at),
                _verdict(lab.verdict),
                *(str(count) if count else "·" for _, count in lab.severity_counts.items()),
                last_conformant(lab, report.generated_at),
            ]
        )


def _named(lab: str, report: ClassReport) -> str:
    """`pair-07 (Ada Lovelace)`, or the lab's name alone without a roster's name."""
    student = report.student_name(lab)
    return f"{text(lab)} ({text(student)})" if student else text(lab)


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(verdict: Verdict | None) -> str:
    return f"{VERDICT_MARK[verdict]} {verdict.value}" if verdict else "not audited"


def _state(lab: LabReport) -> str:
    return lab.state.value.replace("_", " ")


def _has_news(lab: LabReport) -> bool:
    """Worth a section in a chat: not conformant, or a finding above info, or a failed invoke."""
    significant = any(item.finding.severity is not Severity.INFO for item in lab.findings)
    failed_invoke = lab.invoke is not None and not lab.invoke.ok
    return lab.verdict is not Verdict.CONFORMANT or significant or failed_invoke or bool(lab.error)


def _lab_section(lab: LabReport, report: ClassReport) -> Iterator[str]:
    yield f"## {_named(lab.name, report)} — {_verdict(lab.verdict)}"
    yield ""
    if student := student_label(report.info_of(lab.name)):
        yield f"Student {text(student)}"
        yield ""
    yield (
        f"Accounts {text(lab.origin_account)} → {text(lab.destination_account)} · state {_state(lab)}"
        f" · last audit {when(lab.latest.started_at if lab.latest else None)}"
        f" · conformant audits {percent(lab.conformant_share)} of {lab.audits}"
        f" · last conformant {last_conformant(lab, report.generated_at)}"
    )
    yield ""
    if lab.error:
        yield f"- **The audit could not finish:** {text(lab.error)}"
    for finding in lab.findings:
        yield from _finding(finding)
    if lab.invoke:
        outcome = "passed" if lab.invoke.ok else f"**failed**: {code(lab.invoke.cause)}"
        detail = f" — {text(lab.invoke.detail)}" if lab.invoke.detail else ""
        yield f"- Invoke check {outcome}{detail} ({lab.invoke.duration_ms} ms)"
    for entry in lab.lifecycle:
        detail = f": {text(entry.detail)}" if entry.detail else ""
        yield f"- {when(entry.at)} {entry.event.value.replace('_', ' ')} ({entry.outcome.value}){detail}"


def _finding(report: FindingReport) -> Iterator[str]:
    finding = report.finding
    effect = f" ({finding.effect.value})" if finding.effect is not Effect.NONE else ""
    yield (
        f"- **{finding.severity.value}** {code(finding.check)} {finding.status.value}{effect}:"
        f" {text(finding.message)}"
    )
    yield f"  - resource: {code(finding.resource)}"
    if explained := explanation(finding):
        yield f"  - {text(explained)}"
    if report.diff and report.diff.changed:
        yield from _indented(fenced("diff", list(unified_lines(report.diff))))


def _indented(lines: list[str]) -> Iterator[str]:
    for line in lines:
        yield f"  {line}"


def text(value: str) -> str:
    """Plain text, literal in Markdown: markup characters backslash-escaped, lines joined."""
    return _MARKUP.sub(r"\\\1", " ".join(value.splitlines()))


def code(value: str) -> str:
    """An inline code span that no backtick in the value can close early."""
    value = " ".join(value.splitlines())
    ticks = "`" * (max((len(run) for run in _BACKTICKS.findall(value)), default=0) + 1)
    padding = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{padding}{value}{padding}{ticks}"


def fenced(language: str, lines: list[str]) -> list[str]:
    """A code block whose fence is longer than any backtick run inside, so nothing inside can end it."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", *lines, fence]
