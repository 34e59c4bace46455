"""The execution role of a lab account's change-event rules ([events]): AWS delivers a rule's events to an
event bus in another Region only through a role (the target's RoleArn), trusted by EventBridge and
allowed to put events on that bus. IAM's events reach EventBridge in us-east-1 only, so when the
operator's bus is elsewhere (in the lab's Region) both lab accounts' rules in us-east-1 need one.

The role is wanted exactly where a rule of the account crosses Regions (EventRuleSpec.crosses_regions);
elsewhere it is only named, so that the teardown still finds one left from before. The audit compares
its trust and its inline policies by meaning, as the lab's roles' are; its findings are low, as the
rule's: without it the scheduled audits still see every change, only later. It is the role the StackSet
template of auditor/resources/rollout.py makes, from the same documents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualEventRole, ActualLab
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step, Subject
from auditor.domain.spec import (
    EVENT_FORWARDING_ROLE,
    EVENT_ROLE_KIND,
    EVENTS_SERVICE,
    EventRoleSpec,
    ExpectedLab,
    LabShape,
    ResourceKey,
    render_event_roles,
)
from auditor.policy import PolicyDiff, PolicyEngine, Setting, compare_permissions, compare_trust
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
    parse_or_none,
)
from auditor.resources.kinds.inline_policy import inline_policy_names, read_inline_policies

KIND_NAME = EVENT_ROLE_KIND
_ROLE_ARN = f"arn:aws:iam::*:role/{EVENT_FORWARDING_ROLE}"
FORWARDING_ROLE = Scope("ChangeEventForwardingRole", (_ROLE_ARN,))
# A rule's target passes the role to EventBridge (events:PutTargets with a RoleArn): only to EventBridge.
FORWARDING_ROLE_TO_EVENTS = Scope(
    "PassForwardingRoleToEvents", (_ROLE_ARN,), {"StringEquals": {"iam:PassedToService": EVENTS_SERVICE}}
)
PASS_FORWARDING_ROLE = Grant("iam:PassRole", FORWARDING_ROLE_TO_EVENTS)


def collect_event_role(iam: Any, spec: EventRoleSpec) -> ActualEventRole:
    """GetRole, then its inline policies: whether the role exists, its trust and its policies."""
    try:
        role = iam.get_role(RoleName=spec.name)["Role"]
    except ClientError as error:
        if is_not_found(error):
            return ActualEventRole(spec.account_id, spec.name, exists=False)
        raise
    return ActualEventRole(
        spec.account_id,
        spec.name,
        exists=True,
        trust_policy=role.get("AssumeRolePolicyDocument"),
        inline_policies=read_inline_policies(iam, spec.name),
    )


def compare_event_role(
    spec: EventRoleSpec, actual: ActualEventRole, engine: PolicyEngine, region: str = ""
) -> list[Finding]:
    """The role's findings: missing, or its trust or its policies other in meaning than the spec's."""
    if not actual.exists:
        return [
            _finding(
                spec,
                "event_role.missing",
                Status.MISSING,
                Effect.NONE,
                f"execution role {spec.name} of the change-event rules is missing: the rules that send to "
                "the operator's bus in another Region deliver nothing, and this account's changes are seen "
                "only at the next scheduled audit",
            )
        ]
    setting = Setting(spec.account_id, region, "aws", (("RoleNameWithPath", spec.name),))
    return [*_trust_findings(spec, actual, engine, setting), *_policy_findings(spec, actual, engine, setting)]


def _trust_findings(
    spec: EventRoleSpec, actual: ActualEventRole, engine: PolicyEngine, setting: Setting
) -> list[Finding]:
    code, what = "event_role.trust_modified", "trust policy"
    trust = parse_or_none(engine, actual.trust_policy)
    if trust is None:
        return [_unreadable(spec, code, what, spec.trust_policy, actual.trust_policy)]
    diff = compare_trust(engine, engine.parse(spec.trust_policy), trust, role_arn=spec.arn, setting=setting)
    return _differs(spec, code, diff, spec.trust_policy, actual.trust_policy)


def _policy_findings(
    spec: EventRoleSpec, actual: ActualEventRole, engine: PolicyEngine, setting: Setting
) -> list[Finding]:
    """Its inline policies together, against the spec's one: what the role may do, whatever their names."""
    code, what = "event_role.policy_modified", "inline policies"
    policies = [parse_or_none(engine, document) for document in actual.inline_policies.values()]
    if any(policy is None for policy in policies):
        return [_unreadable(spec, code, what, spec.inline_policies, actual.inline_policies)]
    expected = [engine.parse(document) for document in spec.inline_policies.values()]
    diff = compare_permissions(engine, expected, [p for p in policies if p is not None], setting=setting)
    return _differs(spec, code, diff, spec.inline_policies, actual.inline_policies)


def _differs(spec: EventRoleSpec, code: str, diff: PolicyDiff, expected: Any, actual: Any) -> list[Finding]:
    if diff.effect is Effect.NONE:
        return []
    message = f"execution role {spec.name} of the change-event rules: {diff.message}"
    return [_finding(spec, code, Status.MODIFIED, diff.effect, message, expected, actual, diff)]


def _unreadable(spec: EventRoleSpec, code: str, what: str, expected: Any, actual: Any) -> Finding:
    message = f"the {what} of execution role {spec.name} cannot be read as an IAM policy"
    return _finding(spec, code, Status.MODIFIED, Effect.CHANGED, message, expected, str(actual)[:2000])


def _finding(
    spec: EventRoleSpec,
    code: str,
    status: Status,
    effect: Effect,
    message: str,
    expected: Any = None,
    actual: Any = None,
    diff: PolicyDiff | None = None,
) -> Finding:
    return finding(
        code,
        Subject(KIND_NAME, spec.account_id, spec.name, spec.name),
        spec.arn,
        status,
        effect,
        Severity.LOW,
        message,
        expected,
        actual,
        witness=diff.witness if diff is not None else None,
    )


def _wanted(expected: ExpectedLab) -> list[EventRoleSpec]:
    return [role for role in expected.event_roles if role.wanted]


class EventRole(Kind):
    name = KIND_NAME
    apply_rank = (3, 1)  # before the rules that send through it (event_rule: stage 4)
    removal_rank = (0, 1)  # after the rules (stage 0, order 0): a rule's target names it until then
    _BOTH = (Part.PROVISION, Part.EVENTS)
    calls: ClassVar = (
        call("iam:GetRole", FORWARDING_ROLE, *READ, Part.EVENTS, used_by="event_role.collect_event_role"),
        call(
            "iam:ListRolePolicies",
            FORWARDING_ROLE,
            *READ,
            Part.EVENTS,
            used_by="event_role.collect_event_role (paginator); event_role.apply; event_role.delete",
        ),
        call(
            "iam:GetRolePolicy", FORWARDING_ROLE, *READ, Part.EVENTS, used_by="event_role.collect_event_role"
        ),
        call(
            "iam:CreateRole",
            FORWARDING_ROLE,
            *_BOTH,
            also=[Grant("iam:TagRole", FORWARDING_ROLE)],
            used_by="event_role.apply (created with tags)",
        ),
        call(
            "iam:UpdateAssumeRolePolicy",
            FORWARDING_ROLE,
            *_BOTH,
            used_by="event_role.apply: restore the trust",
        ),
        call("iam:PutRolePolicy", FORWARDING_ROLE, *_BOTH, used_by="event_role.apply"),
        call(
            "iam:DeleteRolePolicy",
            FORWARDING_ROLE,
            Part.PROVISION,
            Part.TEARDOWN,
            Part.EVENTS,
            used_by="event_role.apply: a policy not in the spec; event_role.delete",
        ),
        call("iam:DeleteRole", FORWARDING_ROLE, Part.TEARDOWN, Part.EVENTS, used_by="event_role.delete"),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_event_roles(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        # The teardown looks in every lab account: a role left from before is named there too.
        roles = list(expected.event_roles) if for_teardown else _wanted(expected)
        collected = clients.each(
            lambda role: collect_event_role(clients.client(role.account_id, "iam"), role), roles
        )
        return {role.key: found for role, found in zip(roles, collected, strict=True)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        collected = actual.of_kind(self.name)
        return [
            found
            for spec in _wanted(expected)
            if (role := collected.get(spec.key)) is not None
            for found in compare_event_role(spec, role, facts.engine, expected.region)
        ]

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, role.account_id, role.name, role.name, Action.NO_CHANGE)
            for role in _wanted(expected)
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec: EventRoleSpec = expected.resources[self.subject(step.account_id, step.owner, step.name)]
        iam = clients.client(step.account_id, "iam")
        trust = json.dumps(spec.trust_policy)
        if step.action is Action.CREATE:
            iam.create_role(
                RoleName=spec.name,
                AssumeRolePolicyDocument=trust,
                Description=f"lab-auditor: the change-event rules of lab {expected.name} send to the "
                "operator's event bus in another Region",
                Tags=expected.tag_list,
            )
        else:
            iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=trust)
            for name in set(inline_policy_names(iam, spec.name)) - set(spec.inline_policies):
                iam.delete_role_policy(RoleName=spec.name, PolicyName=name)
        for name, document in spec.inline_policies.items():
            iam.put_role_policy(RoleName=spec.name, PolicyName=name, PolicyDocument=json.dumps(document))

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, role.account_id, role.name, role.name, Action.DELETE)
            for role in actual.event_roles
            if role.exists
        ]

    def delete(self, step: Step, clients: Clients) -> None:
        iam = clients.client(step.account_id, "iam")
        for name in inline_policy_names(iam, step.name):  # a role with inline policies cannot be deleted
            iam.delete_role_policy(RoleName=step.name, PolicyName=name)
        iam.delete_role(RoleName=step.name)


KIND = EventRole()
