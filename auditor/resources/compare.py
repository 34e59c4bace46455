"""Expected against actual state, by meaning: findings and the verdict (pure: no clients, no clock).

Each kind of resource compares its own part (auditor/resources/kinds/, with the policy semantics of
auditor/policy.py); auditor/resources/access.py then follows the lab's access path as IAM would to decide whether
the lab still works; a failed run of the function is a finding of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from auditor.domain.actual import ActualLab
from auditor.domain.model import Effect, Finding, InvokeResult, Severity, Status, Step, Verdict, verdict_of
from auditor.domain.spec import ExpectedLab
from auditor.policy import PolicyEngine
from auditor.resources.access import judge_access
from auditor.resources.base import Facts, finding
from auditor.resources.kinds.function import function_subject
from auditor.resources.registry import REGISTRY, Registry


@dataclass(frozen=True)
class Judgement:
    findings: tuple[Finding, ...]
    verdict: Verdict


def invoke_finding(expected: ExpectedLab, result: InvokeResult) -> Finding | None:
    """A failed run: no provisioning fixes it as such (what caused it is a finding of its own, if any)."""
    if result.ok:
        return None
    return finding(
        "invoke.failed",
        function_subject(expected.function),
        expected.function.arn,
        Status.FAILED,
        Effect.NONE,
        Severity.MEDIUM,
        f"invoke failed ({result.cause.replace('_', ' ')}): {result.detail}",
        {"destination_account": expected.destination_account, "marker_bucket": expected.marker_bucket.name},
        result.answer,
        breaks_lab=True,
    )


def _fixed_by_provisioning(steps: Sequence[Step], provisioned: Collection[str] | None) -> bool:
    return bool(steps) and (provisioned is None or all(step.kind in provisioned for step in steps))


def judge_lab(
    expected: ExpectedLab,
    actual: ActualLab,
    code_sha256: str | None,
    today: date,
    invoke: InvokeResult | None = None,
    registry: Registry = REGISTRY,
    *,
    engine: PolicyEngine,
    now: datetime | None = None,
    log_group_expected: bool = True,
    provisioned: Collection[str] | None = None,
) -> Judgement:
    """All findings of one lab, and its verdict: the audit's and the provisioner's plan's, with their
    context's policy engine; `now`, the audit's moment, answers aws:CurrentTime. `code_sha256` None:
    the function is a student's, judged by its run rather than against the packaged code.
    `log_group_expected` False: the function's log group is not known to have existed (Facts).
    `provisioned`: the kinds `auditor provision` may change (None: all); a finding is `fixable` when
    provisioning fixes it with those alone (a student's role is the student's to fix)."""
    lab = engine.for_one_lab()  # one share of the time limit for all the lab's questions
    facts = Facts(code_sha256, today, lab, log_group_expected)
    findings = judge_access(expected, actual, registry.compare(expected, actual, facts), lab, now)
    if invoke is not None and (failure := invoke_finding(expected, invoke)) is not None:
        findings.append(failure)
    fixable = [
        replace(f, fixable=_fixed_by_provisioning(registry.fixes(f, expected, actual), provisioned))
        for f in findings
    ]
    ordered = tuple(sorted(fixable, key=lambda f: (-f.severity.rank, f.check, f.resource)))
    return Judgement(ordered, verdict_of(ordered))
