"""The function's log group, with the retention of `[lab] log_retention_days` (lab.md: it must go at teardown).

Lambda creates it on the function's first run when it is absent, but without a retention: a missing
log group is a finding of severity info (the lab works), a retention other than the spec's one of
severity low (its logs, and their cost, are kept longer than the lab wants).
"""

from __future__ import annotations

from collections.abc import Mapping
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


def compare_log_group(spec: LogGroupSpec, actual: ActualLogGroup) -> list[Finding]:
    resource = spec.arn
    subject = spec.key
    if not actual.exists:
        return [
            finding(
                "log_group.missing",
                subject,
                resource,
                Status.MISSING,
                Effect.NONE,
                Severity.INFO,
                f"log group {spec.name} is missing: Lambda creates it on the next run, with no retention",
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
        return compare_log_group(expected.log_group, actual.log_group)

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


KIND = LogGroup()
