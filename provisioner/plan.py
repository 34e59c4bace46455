"""The provisioner's plan is the audit: the fixes of the findings of the audit's own comparison.

Every finding the provisioner can fix becomes a step that answers it (each kind of resource says how,
in auditor/resources/kinds/); the resources nothing needs to change are listed as `no change`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from auditor.accounts import AccountSessions
from auditor.actual import ActualLab
from auditor.clock import utc_now
from auditor.collect import collect_lab
from auditor.compare import judge_lab
from auditor.model import Finding, Step
from auditor.package import packaged
from auditor.resources.registry import REGISTRY
from auditor.spec import ExpectedLab
from auditor.target import LabTarget


def plan_lab(expected: ExpectedLab, actual: ActualLab, findings: Sequence[Finding]) -> list[Step]:
    """Steps in the order they must be applied (pure): roles before the function that runs as one."""
    return REGISTRY.plan(expected, actual, findings)


def audit_findings(expected: ExpectedLab, actual: ActualLab, now: datetime) -> tuple[Finding, ...]:
    """The audit's findings of a lab as collected at `now`, without a run of the function (no fix
    answers one)."""
    return judge_lab(expected, actual, packaged()[1], now.date(), now=now).findings


def plan(sessions: AccountSessions, target: LabTarget) -> list[Step]:
    return plan_with_findings(sessions, target)[0]


def plan_with_findings(
    sessions: AccountSessions, target: LabTarget
) -> tuple[list[Step], tuple[Finding, ...]]:
    """The plan and the findings it answers (whose expected and actual values `--diff` shows)."""
    actual = collect_lab(sessions, target)
    findings = audit_findings(target.expected, actual, utc_now())
    return plan_lab(target.expected, actual, findings), findings
