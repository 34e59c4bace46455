"""The change-event rules of the lab accounts ([events]): they forward the lab's IAM and Lambda API calls
to the operator's event bus. One rule per (account, region) that sees the lab's changes: IAM's CloudTrail
events reach EventBridge in us-east-1 only, whatever the lab's region, so both accounts have a rule there;
the origin account has one in the lab's region for Lambda's (the same rule when that is us-east-1). A
rule whose bus is in another Region sends through the account's execution role (its target's RoleArn,
the role of event_role.py), as AWS requires; a rule in the bus's Region sends without one.

Without [events] they are only named, so that the teardown still finds a rule left from before; the audit
reports a missing or altered rule (severity low: the scheduled audits still see every change, only later).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualEventRule, ActualLab
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step
from auditor.domain.spec import (
    EVENT_RULE,
    EVENT_RULE_KIND,
    EVENT_TARGET_ID,
    IAM_EVENTS_REGION,
    EventRuleSpec,
    ExpectedLab,
    LabShape,
    ResourceKey,
    render_event_rules,
)
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
)
from auditor.resources.kinds.event_role import PASS_FORWARDING_ROLE

LAB_EVENT_RULE = Scope("ChangeEventRule", (f"arn:aws:events:*:*:rule/{EVENT_RULE}",))
KIND_NAME = EVENT_RULE_KIND


def event_rule_arn(spec: EventRuleSpec) -> str:
    return f"arn:aws:events:{spec.region}:{spec.account_id}:rule/{spec.name}"


def collect_event_rule(events: Any, spec: EventRuleSpec) -> ActualEventRule:
    try:
        rule = events.describe_rule(Name=spec.name)
    except ClientError as error:
        if is_not_found(error):
            return ActualEventRule(spec.account_id, spec.region, spec.name, exists=False)
        raise
    targets = events.list_targets_by_rule(Rule=spec.name).get("Targets", [])
    return ActualEventRule(
        spec.account_id,
        spec.region,
        spec.name,
        exists=True,
        pattern=json.loads(rule.get("EventPattern") or "null"),
        targets=tuple(sorted((target["Arn"], target.get("RoleArn")) for target in targets)),
    )


def compare_event_rule(spec: EventRuleSpec, actual: ActualEventRule) -> list[Finding]:
    resource = event_rule_arn(spec)
    # A rule's owner is its region, as its steps and its key have it: the same rule name lives in each region.
    subject = spec.key
    wanted = {"pattern": spec.pattern, "targets": [_target(spec.target_arn, spec.role_arn)]}
    if not actual.exists:
        message = f"change-event rule {spec.name} is missing: this account's changes are seen only at the next scheduled audit"
        return [
            finding(
                "event_rule.missing",
                subject,
                resource,
                Status.MISSING,
                Effect.NONE,
                Severity.LOW,
                message,
                wanted,
            )
        ]
    if actual.pattern != spec.pattern or actual.targets != ((spec.target_arn, spec.role_arn),):
        return [
            finding(
                "event_rule.modified",
                subject,
                resource,
                Status.MODIFIED,
                Effect.NONE,
                Severity.LOW,
                _modified_message(spec, actual),
                wanted,
                {"pattern": actual.pattern, "targets": [_target(*target) for target in actual.targets]},
            )
        ]
    return []


def _modified_message(spec: EventRuleSpec, actual: ActualEventRule) -> str:
    """What is wrong with the rule: its execution role named when only that is (a bus in another Region
    receives nothing without it)."""
    wanted_role = spec.role_arn
    if actual.pattern == spec.pattern and [arn for arn, _ in actual.targets] == [spec.target_arn]:
        [(_, role)] = actual.targets
        if wanted_role is not None and role is None:
            return (
                f"change-event rule {spec.name} sends to the operator's bus in {spec.target_region} without "
                f"its execution role {wanted_role.rsplit('/', 1)[-1]}: AWS delivers none of its events there"
            )
        return (
            f"change-event rule {spec.name} sends to the operator's bus through {role or 'no role'}, "
            f"not {wanted_role or 'no role'} as the spec says"
        )
    return f"change-event rule {spec.name} no longer sends this account's changes as the spec says"


def _target(arn: str | None, role_arn: str | None) -> dict[str, str | None]:
    """A target as a finding shows it: its ARN and its execution role's (None: it has none)."""
    return {"arn": arn, "role_arn": role_arn}


def _wired(expected: ExpectedLab) -> list[EventRuleSpec]:
    return [rule for rule in expected.event_rules if rule.target_arn is not None]


def _anywhere(expected: ExpectedLab) -> list[EventRuleSpec]:
    """Where the teardown looks: every lab account in us-east-1 and in the lab's region, whatever the spec
    wires now (an earlier version put every rule in the lab's region)."""
    accounts = dict.fromkeys((expected.origin_account, expected.destination_account))
    regions = dict.fromkeys((IAM_EVENTS_REGION, expected.region))
    return [
        EventRuleSpec(account, region, EVENT_RULE, {}, None) for account in accounts for region in regions
    ]


class EventRule(Kind):
    name = KIND_NAME
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
        call(
            "events:PutTargets",
            LAB_EVENT_RULE,
            *_BOTH,
            also=[PASS_FORWARDING_ROLE],
            used_by="event_rule.apply (a target in another Region passes the forwarding role)",
        ),
        call("events:RemoveTargets", LAB_EVENT_RULE, Part.TEARDOWN, Part.EVENTS, used_by="event_rule.delete"),
        call("events:DeleteRule", LAB_EVENT_RULE, Part.TEARDOWN, Part.EVENTS, used_by="event_rule.delete"),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_event_rules(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        rules = _anywhere(expected) if for_teardown else _wired(expected)
        collected = clients.each(
            lambda rule: collect_event_rule(clients.client(rule.account_id, "events", rule.region), rule),
            rules,
        )
        return {rule.key: found for rule, found in zip(rules, collected, strict=True)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        collected = actual.of_kind(self.name)
        return [
            found
            for spec in _wired(expected)
            if (rule := collected.get(spec.key)) is not None
            for found in compare_event_rule(spec, rule)
        ]

    # A step's owner is the rule's region: the same rule name lives in each region it is needed in.

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, rule.account_id, rule.region, rule.name, Action.NO_CHANGE)
            for rule in _wired(expected)
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec = expected.resources[self.subject(step.account_id, step.owner, step.name)]
        events = clients.client(step.account_id, "events", spec.region)
        events.put_rule(
            Name=spec.name,
            EventPattern=json.dumps(spec.pattern),
            State="ENABLED",
            Description=f"lab-auditor: change events of lab {expected.name}",
            Tags=expected.tag_list,
        )
        target = {"Id": EVENT_TARGET_ID, "Arn": spec.target_arn}
        if spec.role_arn is not None:
            target["RoleArn"] = spec.role_arn
        events.put_targets(Rule=spec.name, Targets=[target])

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, rule.account_id, rule.region, rule.name, Action.DELETE)
            for rule in actual.event_rules
            if rule.exists
        ]

    def delete(self, step: Step, clients: Clients) -> None:
        events = clients.client(step.account_id, "events", step.owner)
        targets = [target["Id"] for target in events.list_targets_by_rule(Rule=step.name).get("Targets", [])]
        if targets:
            events.remove_targets(Rule=step.name, Ids=targets)
        events.delete_rule(Name=step.name)


KIND = EventRule()
