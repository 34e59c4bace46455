"""The change-event rule in each lab account ([events]): it forwards the lab's IAM and Lambda API calls
to the operator's event bus. Without [events] it is only named, so that the teardown still finds a rule
left from before; the audit reports a missing or altered rule (severity low: the scheduled audits still
see every change, only later).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.actual import ActualEventRule, ActualLab
from auditor.errors import is_not_found
from auditor.model import Action, Check, Effect, Finding, Severity, Status, Step
from auditor.resources.base import (
    READ,
    Clients,
    Facts,
    Grant,
    Kind,
    Part,
    Scope,
    Sleep,
    call,
    finding,
    is_about,
    step_for,
)
from auditor.spec import EVENT_RULE, EventRuleSpec, ExpectedLab

LAB_EVENT_RULE = Scope("ChangeEventRule", (f"arn:aws:events:*:*:rule/{EVENT_RULE}",))
TARGET_ID = "lab-auditor-queue"


def event_rule_arn(region: str, spec: EventRuleSpec) -> str:
    return f"arn:aws:events:{region}:{spec.account_id}:rule/{spec.name}"


def collect_event_rule(events: Any, spec: EventRuleSpec) -> ActualEventRule:
    try:
        rule = events.describe_rule(Name=spec.name)
    except ClientError as error:
        if is_not_found(error):
            return ActualEventRule(spec.account_id, spec.name, exists=False)
        raise
    targets = events.list_targets_by_rule(Rule=spec.name).get("Targets", [])
    return ActualEventRule(
        spec.account_id,
        spec.name,
        exists=True,
        pattern=json.loads(rule.get("EventPattern") or "null"),
        target_arns=tuple(sorted(target["Arn"] for target in targets)),
    )


def compare_event_rule(region: str, spec: EventRuleSpec, actual: ActualEventRule) -> list[Finding]:
    resource = event_rule_arn(region, spec)
    wanted = {"pattern": spec.pattern, "targets": [spec.target_arn]}
    if not actual.exists:
        message = f"change-event rule {spec.name} is missing: this account's changes are seen only at the next scheduled audit"
        return [
            finding(Check.EVENT_RULE, resource, Status.MISSING, Effect.NONE, Severity.LOW, message, wanted)
        ]
    if actual.pattern != spec.pattern or actual.target_arns != (spec.target_arn,):
        return [
            finding(
                Check.EVENT_RULE,
                resource,
                Status.MODIFIED,
                Effect.NONE,
                Severity.LOW,
                f"change-event rule {spec.name} no longer sends this account's changes as the spec says",
                wanted,
                {"pattern": actual.pattern, "targets": list(actual.target_arns)},
            )
        ]
    return []


def _wired(expected: ExpectedLab) -> list[EventRuleSpec]:
    return [rule for rule in expected.event_rules if rule.target_arn is not None]


class EventRule(Kind):
    name = "event_rule"
    apply_rank = (4, 0)
    removal_rank = (0, 0)  # first: no change event about the teardown itself
    _BOTH = (Part.PROVISION, Part.EVENTS)
    calls: ClassVar = (
        call(
            "events:DescribeRule", LAB_EVENT_RULE, *READ, Part.EVENTS, used_by="event_rule.collect_event_rule"
        ),
        call(
            "events:ListTargetsByRule",
            LAB_EVENT_RULE,
            *READ,
            Part.EVENTS,
            used_by="event_rule.collect_event_rule; event_rule.delete",
        ),
        call(
            "events:PutRule",
            LAB_EVENT_RULE,
            *_BOTH,
            also=[Grant("events:TagResource", LAB_EVENT_RULE)],
            used_by="event_rule.apply (created with tags)",
        ),
        call("events:PutTargets", LAB_EVENT_RULE, *_BOTH, used_by="event_rule.apply"),
        call("events:RemoveTargets", LAB_EVENT_RULE, Part.TEARDOWN, Part.EVENTS, used_by="event_rule.delete"),
        call("events:DeleteRule", LAB_EVENT_RULE, Part.TEARDOWN, Part.EVENTS, used_by="event_rule.delete"),
    )

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> ActualLab:
        rules = expected.event_rules if for_teardown else tuple(_wired(expected))
        collected = tuple(
            collect_event_rule(clients.client(rule.account_id, "events"), rule) for rule in rules
        )
        return replace(actual, event_rules=collected)

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        collected = {(rule.account_id, rule.name): rule for rule in actual.event_rules}
        return [
            found
            for spec in _wired(expected)
            if (rule := collected.get((spec.account_id, spec.name))) is not None
            for found in compare_event_rule(expected.region, spec, rule)
        ]

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, rule.account_id, rule.name, rule.name, Action.NO_CHANGE)
            for rule in _wired(expected)
        ]

    def fixes(self, finding: Finding, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        for spec in _wired(expected):
            if is_about(finding, Check.EVENT_RULE, event_rule_arn(expected.region, spec)):
                action = Action.CREATE if finding.status is Status.MISSING else Action.UPDATE
                reason = "" if action is Action.CREATE else None
                return [step_for(self, finding, spec.account_id, spec.name, spec.name, action, reason)]
        return []

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec = next(rule for rule in expected.event_rules if rule.account_id == step.account_id)
        events = clients.client(step.account_id, "events")
        events.put_rule(
            Name=spec.name,
            EventPattern=json.dumps(spec.pattern),
            State="ENABLED",
            Description=f"lab-auditor: change events of lab {expected.name}",
            Tags=[{"Key": key, "Value": value} for key, value in expected.tags.items()],
        )
        events.put_targets(Rule=spec.name, Targets=[{"Id": TARGET_ID, "Arn": spec.target_arn}])

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, rule.account_id, rule.name, rule.name, Action.DELETE)
            for rule in actual.event_rules
            if rule.exists
        ]

    def delete(self, step: Step, clients: Clients) -> None:
        events = clients.client(step.account_id, "events")
        targets = [target["Id"] for target in events.list_targets_by_rule(Rule=step.name).get("Targets", [])]
        if targets:
            events.remove_targets(Rule=step.name, Ids=targets)
        events.delete_rule(Name=step.name)


KIND = EventRule()
