"""The function's log group, with the retention of `[lab] log_retention_days` (lab.md: it must go at teardown).

The log group holds the function's logs, the evidence of what its runs did: one deleted hides them (an
attacker's way to cover their tracks), so a missing log group is a finding of severity medium, though
the lab still works (Lambda makes a new one on the next run, without a retention). When students build
the lab, Lambda makes it on the function's first run: until an audit has found it once, its absence is
only `info` (it does not exist yet) and changes no verdict. A retention other than the spec's is of
severity low (its logs, and their cost, are kept longer than the lab wants).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.domain.actual import ActualLab, ActualLogGroup
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step
from auditor.domain.spec import (
    LOG_GROUP_KIND,
    ExpectedLab,
    LabShape,
    LogGroupSpec,
    ResourceKey,
    render_log_group,
)
from auditor.resources.base import (
    ANY_LAB,
    READ,
    UNSCOPED,
    Clients,
    Facts,
    Grant,
    Kind,
    Part,
    Scope,
    Sleep,
    call,
    finding,
)

_LOG_GROUP_ARN = f"arn:aws:logs:*:*:log-group:{ANY_LAB.log_group.name}"
LAB_LOG_GROUP = Scope("LabLogGroup", (_LOG_GROUP_ARN, f"{_LOG_GROUP_ARN}:*"))
KIND_NAME = LOG_GROUP_KIND


def collect_log_group(logs: Any, name: str) -> ActualLogGroup:
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    for group in groups:
        if group["logGroupName"] == name:
            return ActualLogGroup(name, True, group.get("retentionInDays"))
    return ActualLogGroup(name, exists=False)


def compare_log_group(spec: LogGroupSpec, actual: ActualLogGroup, expected: bool = True) -> list[Finding]:
    """`expected` False: the log group is not known to have existed yet (Facts.log_group_expected)."""
    resource = spec.arn
    subject = spec.key
    if not actual.exists:
        severity, message = (
            (
                Severity.MEDIUM,
                f"log group {spec.name} is gone, and the function's logs with it: the evidence of its runs "
                "(Lambda makes a new one on the next run, with no retention)",
            )
            if expected
            else (
                Severity.INFO,
                f"log group {spec.name} does not exist yet: Lambda creates it on the function's first run",
            )
        )
        return [
            finding(
                "log_group.missing",
                subject,
                resource,
                Status.MISSING,
                Effect.NONE,
                severity,
                message,
                {"retentionInDays": spec.retention_days},
                None,
            )
        ]
    if actual.retention_days != spec.retention_days:
        kept = f"{actual.retention_days} days" if actual.retention_days else "forever"
        return [
            finding(
                "log_group.retention",
                subject,
                resource,
                Status.MODIFIED,
                Effect.NONE,
                Severity.LOW,
                f"log group {spec.name} keeps its logs {kept}, the spec {spec.retention_days} days",
                {"retentionInDays": spec.retention_days},
                {"retentionInDays": actual.retention_days},
            )
        ]
    return []


class LogGroup(Kind):
    name = KIND_NAME
    apply_rank = (2, 0)
    removal_rank = (2, 0)
    calls: ClassVar = (
        call("logs:DescribeLogGroups", UNSCOPED, *READ, used_by="log_group.collect_log_group"),
        call(
            "logs:CreateLogGroup",
            LAB_LOG_GROUP,
            Part.PROVISION,
            also=[Grant("logs:TagResource", LAB_LOG_GROUP)],
            used_by="log_group.apply (created with tags)",
        ),
        call("logs:PutRetentionPolicy", LAB_LOG_GROUP, Part.PROVISION, used_by="log_group.apply"),
        call("logs:DeleteLogGroup", LAB_LOG_GROUP, Part.TEARDOWN, used_by="log_group.delete"),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_log_group(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        spec = expected.log_group
        return {spec.key: collect_log_group(clients.client(spec.account_id, "logs"), spec.name)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        if actual.log_group is None:
            return []  # not collected
        return compare_log_group(expected.log_group, actual.log_group, facts.log_group_expected)

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.log_group
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.NO_CHANGE)]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec = expected.log_group
        logs = clients.client(spec.account_id, "logs")
        if step.action is Action.CREATE:
            try:
                logs.create_log_group(logGroupName=spec.name, tags=expected.tags)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                    raise
        logs.put_retention_policy(logGroupName=spec.name, retentionInDays=spec.retention_days)

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        spec = expected.log_group
        if actual.log_group is not None and not actual.log_group.exists:
            return []
        return [Step(self.name, spec.account_id, spec.name, spec.name, Action.DELETE)]

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "logs").delete_log_group(logGroupName=step.name)


def log_group_seen(findings: Iterable[Finding]) -> bool:
    """Whether an audit with these findings (one that finished) found the log group, or found it gone
    after it had existed: then a later audit that misses it finds it deleted."""
    return not any(f.code == "log_group.missing" and f.severity is Severity.INFO for f in findings)


KIND = LogGroup()
