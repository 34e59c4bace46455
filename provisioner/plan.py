"""The provisioner's plan is the audit: the fixes of the findings of the audit's own comparison.

Every finding the provisioner can fix becomes a step that answers it (each kind of resource says how,
in auditor/resources/kinds/); the resources nothing needs to change are listed as `no change`. The
findings are the audit's judgement (auditor.resources.compare.judge_lab) with the context's policy engine, so
its configured time limit too. When students build the lab, the plan keeps only the project's own parts
(provisioner/scope.py): their resources are read and judged, never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from auditor.app.collect import collect_lab
from auditor.app.context import Context
from auditor.app.target import LabTarget
from auditor.common.clock import utc_now
from auditor.domain.actual import ActualLab
from auditor.domain.model import Finding, Step
from auditor.domain.package import packaged
from auditor.domain.spec import ExpectedLab
from auditor.policy import PolicyEngine
from auditor.resources.base import provisioned_kinds
from auditor.resources.compare import judge_lab
from auditor.resources.registry import REGISTRY
from provisioner.scope import findings_of, steps_of


def plan_lab(expected: ExpectedLab, actual: ActualLab, findings: Sequence[Finding]) -> list[Step]:
    """Steps in the order they must be applied (pure): roles before the function that runs as one."""
    return REGISTRY.plan(expected, actual, findings)


def audit_findings(
    expected: ExpectedLab, actual: ActualLab, now: datetime, engine: PolicyEngine
) -> tuple[Finding, ...]:
    """The audit's findings of a lab as collected at `now`, without a run of the function (no fix
    answers one)."""
    return judge_lab(expected, actual, packaged()[1], now.date(), engine=engine, now=now).findings


def plan(context: Context, target: LabTarget) -> list[Step]:
    return plan_with_findings(context, target)[0]


def plan_with_findings(context: Context, target: LabTarget) -> tuple[list[Step], tuple[Finding, ...]]:
    """The plan and the findings it answers (whose expected and actual values `--diff` shows), of the
    kinds the configuration lets the project build."""
    actual = collect_lab(context.sessions, target)
    findings = audit_findings(target.expected, actual, utc_now(), context.policy_engine)
    kinds = provisioned_kinds(context.config)
    return steps_of(kinds, plan_lab(target.expected, actual, findings)), findings_of(kinds, findings)
