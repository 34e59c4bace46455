"""Whether the lab still works: IAM's evaluation of each request of its access path (pure).

The requests are the lab's hops with the context AWS sets (auditor/domain/lab_context.py, lab.md's table);
each is decided by IAM's evaluation logic for every value the auditor cannot know (auditor.iam):
it works, it does not, or it cannot be told. One entry point, `judge_access`: the findings that
break a hop are marked (one is added where none explains it: an emulator may let through what IAM
would refuse); a hop that cannot be told adds a finding that says what could not be proven; a
narrowed policy that the lab's requests still get through is a hardening (low).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from auditor.domain.actual import ActualLab
from auditor.domain.lab_context import LabHop, Suspect, lab_hops
from auditor.domain.model import Check, Effect, Finding, Severity, Status, Subject
from auditor.domain.spec import ExpectedLab
from auditor.policy import Decision, PolicyEngine, display_key
from auditor.resources.base import finding
from auditor.resources.kinds.role import role_subject

# The access path's own findings about a role, by the check of the documents suspected (trust, or the
# role's permissions): a refused hop that no finding explains, and a hop that cannot be proven to work.
_DENIES = {Check.TRUST_POLICY: "trust_policy.denies_lab", Check.INLINE_POLICY: "inline_policy.denies_lab"}
_UNPROVEN = {Check.TRUST_POLICY: "trust_policy.unproven", Check.INLINE_POLICY: "inline_policy.unproven"}


@dataclass(frozen=True)
class Link:
    """One hop of the lab's call as IAM decides it: works (True), does not (False) or cannot tell (None)."""

    description: str  # what it means when the hop fails
    works: bool | None
    check: str
    resource: str
    subject: Subject
    suspects: tuple[Suspect, ...] = ()
    unknown_keys: tuple[str, ...] = ()
    in_time: bool = True


def access_path(
    expected: ExpectedLab,
    actual: ActualLab,
    engine: PolicyEngine,
    now: datetime | None = None,
) -> list[Link]:
    """The lab's call, hop by hop, as IAM would decide it (only for resources that exist)."""
    return [_link(hop, engine) for hop in lab_hops(expected, actual, engine.parse, now)]


def _link(hop: LabHop, engine: PolicyEngine) -> Link:
    verdicts = [engine.decide(request, hop.policies) for request in hop.requests]
    decisions = {v.decision for v in verdicts}
    works = False if Decision.FAILS in decisions else None if Decision.UNKNOWN in decisions else True
    unknown = tuple(sorted({k for v in verdicts for k in v.unknown_keys}))
    suspects = hop.suspects
    if works is not True and hop.sides:
        suspects = _sides_deciding(hop, Decision.FAILS if works is False else Decision.UNKNOWN, engine)
    first = suspects[0]
    return Link(
        hop.failure,
        works,
        next(iter(sorted(first.checks))),
        first.role_arn,
        role_subject(first.account_id, first.role_name),
        suspects,
        unknown if works is None else (),
        all(v.in_time for v in verdicts),
    )


def _sides_deciding(hop: LabHop, decision: Decision, engine: PolicyEngine) -> tuple[Suspect, ...]:
    """Of the documents on both sides of a hop, those that refuse it (or leave it in doubt) on their own."""
    deciding = tuple(
        suspect
        for policies, suspect in hop.sides
        if any(engine.decide(request, policies).decision is decision for request in hop.requests)
    )
    return deciding or hop.suspects


def _blame(findings: list[Finding], link: Link) -> list[Finding]:
    """Mark the findings that explain a broken link; add one when none does (e.g. an emulator let it pass)."""
    blamed = False
    marked = []
    for found in findings:
        if _suspected(found, link) and found.effect is not Effect.WIDENED:
            found = replace(found, breaks_lab=True, message=f"{found.message}; so {link.description}")
            blamed = True
        marked.append(found)
    if not blamed:
        marked.append(
            finding(
                _DENIES[link.check],
                link.subject,
                link.resource,
                Status.MODIFIED,
                Effect.NARROWED,
                Severity.MEDIUM,
                f"the lab cannot work: {link.description}",
                breaks_lab=True,
            )
        )
    return marked


def _suspected(found: Finding, link: Link) -> bool:
    """A finding of the suspected checks about the suspected role (the role itself or what is on it)."""
    subject = found.subject
    return subject is not None and any(
        found.check in suspect.checks
        and (subject.account, subject.owner) == (suspect.account_id, suspect.role_name)
        for suspect in link.suspects
    )


def _undecided_finding(link: Link) -> Finding:
    """A hop that may or may not work: say what could not be proven (lab.md: broken needs proof)."""
    what = link.description.replace("can no longer", "can still").replace("no longer", "still")
    if not link.in_time:
        reason = "IAM's evaluation of it could not be decided in time"
    else:
        keys = ", ".join(display_key(k) for k in link.unknown_keys) or "values the auditor cannot know"
        reason = f"it depends on {keys}, which the auditor cannot know"
    return finding(
        _UNPROVEN[link.check],
        link.subject,
        link.resource,
        Status.MODIFIED,
        Effect.NONE,
        Severity.MEDIUM,
        f"cannot prove that {what}: {reason}",
    )


def _as_hardening(findings: list[Finding], links: list[Link]) -> list[Finding]:
    """A narrowed policy the lab's requests still get through is a hardening: low, not medium."""
    doubtful = [link for link in links if link.works is not True]
    hardened = []
    for found in findings:
        narrowed_policy = (
            found.check in (Check.TRUST_POLICY, Check.INLINE_POLICY)
            and found.effect is Effect.NARROWED
            and found.status is not Status.MISSING
            and not found.breaks_lab
            and found.severity is not Severity.LOW
        )
        if narrowed_policy and not any(_suspected(found, link) for link in doubtful):
            found = replace(
                found,
                severity=Severity.LOW,
                message=f"{found.message}; the lab's own requests still get through: a hardening",
            )
        hardened.append(found)
    return hardened


def judge_access(
    expected: ExpectedLab,
    actual: ActualLab,
    findings: Sequence[Finding],
    engine: PolicyEngine,
    now: datetime | None = None,
) -> list[Finding]:
    """The findings, with those that break the lab's access path marked (and added where none
    explains it), what could not be proven said, and hardenings lowered to low."""
    judged = list(findings)
    links = access_path(expected, actual, engine, now)
    for link in links:
        if link.works is False:
            judged = _blame(judged, link)
        elif link.works is None:
            judged.append(_undecided_finding(link))
    return _as_hardening(judged, links)
