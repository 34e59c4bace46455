"""Worst first: the one order in which every screen lists labs (interface.md, "Worst first"), pure.

`auditor audit`'s table, `auditor status`, the HTML and Markdown reports and the daemon's live page all
sort by `urgency`, so a lab stands at the same place on each: the labs that need someone now at the top.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.domain.model import Finding, Severity, Verdict

# A broken lab (or one with a critical finding) first; then drifted; then error (the audit could not
# finish: nothing is known of the lab); then a lab never audited; conformant last of those standing.
_GROUP: dict[Verdict | None, int] = {
    Verdict.BROKEN: 0,
    Verdict.DRIFTED: 1,
    Verdict.ERROR: 2,
    None: 3,
    Verdict.CONFORMANT: 4,
}
_CRITICAL_GROUP = 0
_GONE_GROUP = 5  # torn down: its verdict is history


def urgency(
    name: str, verdict: Verdict | None, worst: Severity | None = None, *, gone: bool = False
) -> tuple[int, int, str]:
    """Sort key, worst first: the verdict's group, then the most severe finding, then the lab's name."""
    if gone:
        return (_GONE_GROUP, 0, name)
    group = _CRITICAL_GROUP if worst is Severity.CRITICAL else _GROUP[verdict]
    return (group, -(worst.rank if worst is not None else -1), name)


def worst_of(findings: Iterable[Finding]) -> Severity | None:
    """The most severe finding's severity; None without findings."""
    return max((finding.severity for finding in findings), key=lambda s: s.rank, default=None)
