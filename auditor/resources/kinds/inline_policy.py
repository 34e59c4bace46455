"""The roles' inline policies: the spec's, by meaning, and any a student added."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.model import Action, Effect, Finding, Severity, Status, Step, Subject
from auditor.domain.spec import INLINE_POLICY_KIND, ExpectedLab, RoleSpec
from auditor.policy import (
    NOWHERE,
    UNDECIDED,
    Policy,
    PolicyDiff,
    PolicyEngine,
    Setting,
    compare_narrowing,
    compare_permissions,
    severity_for,
)
from auditor.resources.base import (
    READ,
    Clients,
    Facts,
    Part,
    Sleep,
    call,
    finding,
    parse_or_none,
    unreadable,
)
from auditor.resources.kinds.role import LAB_ROLES, RoleAspect

KIND_NAME = INLINE_POLICY_KIND
_MODIFIED = {
    Effect.WIDENED: "inline_policy.widened",
    Effect.NARROWED: "inline_policy.narrowed",
    Effect.CHANGED: "inline_policy.changed",
}


def inline_policy_arn(role: RoleSpec, name: str) -> str:
    return f"{role.arn}/inline-policy/{name}"


def inline_policy_subject(role: RoleSpec, name: str) -> Subject:
    return Subject(KIND_NAME, role.account_id, role.name, name)


def inline_policy_names(iam: Any, role_name: str) -> list[str]:
    """ListRolePolicies, every page: the names of the role's inline policies."""
    return [
        name
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name)
        for name in page["PolicyNames"]
    ]


def read_inline_policies(iam: Any, role_name: str) -> dict[str, Any]:
    documents = {}
    for name in inline_policy_names(iam, role_name):
        try:
            documents[name] = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        except ClientError as error:
            if not is_not_found(error):  # deleted between the two calls
                raise
    return documents


def _policy_finding(
    code: str,
    spec: RoleSpec,
    name: str,
    diff: PolicyDiff,
    status: Status,
    expected: Any,
    actual: Any,
    message: str = "",
) -> Finding:
    return finding(
        code,
        inline_policy_subject(spec, name),
        inline_policy_arn(spec, name),
        status,
        diff.effect,
        severity_for(diff, is_trust=False),
        message or diff.message,
        expected,
        actual,
        witness=diff.witness,
    )


def compare_inline_policies(
    spec: RoleSpec, actual: ActualRole, engine: PolicyEngine, setting: Setting = NOWHERE
) -> list[Finding]:
    findings: list[Finding] = []
    for name, document in spec.inline_policies.items():
        if name not in actual.inline_policies:
            findings.append(_deleted_policy_finding(spec, name, actual, engine, setting))
            continue
        have = actual.inline_policies[name]
        policy = parse_or_none(engine, have)
        if policy is None:
            subject, resource = inline_policy_subject(spec, name), inline_policy_arn(spec, name)
            findings.append(unreadable("inline_policy.unreadable", subject, resource, have, document))
            continue
        diff = compare_permissions(engine, [engine.parse(document)], [policy], setting=setting)
        if diff.effect is not Effect.NONE:
            code = _MODIFIED[diff.effect]
            findings.append(_policy_finding(code, spec, name, diff, Status.MODIFIED, document, have))
    expected_policies = [engine.parse(d) for d in spec.inline_policies.values()]
    for name in sorted(set(actual.inline_policies) - set(spec.inline_policies)):
        document = actual.inline_policies[name]
        findings.append(_extra_policy_finding(spec, name, document, expected_policies, engine, setting))
    return findings


def _deleted_policy_finding(
    spec: RoleSpec, name: str, actual: ActualRole, engine: PolicyEngine, setting: Setting
) -> Finding:
    """A deleted policy, told by a request it allowed that the role's remaining policies do not."""
    document = spec.inline_policies[name]
    remaining = _remaining_policies(actual, engine)
    diff = compare_narrowing(engine, [engine.parse(document)], remaining, setting=setting)
    subject = f"inline policy {name} of role {spec.name} was deleted"
    if diff.effect is Effect.NONE:
        severity, message = Severity.LOW, f"{subject}, but the role's other policies still grant what it did"
    elif not diff.decided:
        severity, message = Severity.HIGH, f"{subject}; what that takes away {UNDECIDED}"
    else:
        severity, message = Severity.MEDIUM, f"{subject}: the role {diff.message}"
    return finding(
        "inline_policy.missing",
        inline_policy_subject(spec, name),
        inline_policy_arn(spec, name),
        Status.MISSING,
        diff.effect,
        severity,
        message,
        document,
        None,
        witness=diff.witness,
    )


def _remaining_policies(role: ActualRole, engine: PolicyEngine) -> list[Policy]:
    """What IAM still evaluates for the role: its other inline policies and its managed ones."""
    documents = [*role.inline_policies.values(), *role.managed_policies.values()]
    return [policy for policy in (parse_or_none(engine, d) for d in documents) if policy is not None]


def _extra_policy_finding(
    spec: RoleSpec, name: str, document: Any, expected: list[Policy], engine: PolicyEngine, setting: Setting
) -> Finding:
    subject, resource = inline_policy_subject(spec, name), inline_policy_arn(spec, name)
    policy = parse_or_none(engine, document)
    if policy is None:
        return unreadable("inline_policy.unexpected_unreadable", subject, resource, document, None)
    diff = compare_permissions(engine, expected, [*expected, policy], setting=setting)
    if diff.effect is Effect.NONE:
        return finding(
            "inline_policy.unexpected",
            subject,
            resource,
            Status.UNEXPECTED,
            Effect.NONE,
            Severity.INFO,
            f"extra inline policy {name} on role {spec.name} grants nothing beyond the spec",
            None,
            document,
        )
    return _policy_finding(
        "inline_policy.unexpected",
        spec,
        name,
        diff,
        Status.UNEXPECTED,
        None,
        document,
        f"extra inline policy {name} on role {spec.name}: {diff.message}",
    )


class InlinePolicy(RoleAspect):
    name = KIND_NAME
    apply_rank = (0, 1)
    removal_rank = (4, 0)  # a role with inline policies cannot be deleted
    calls: ClassVar = (
        call(
            "iam:ListRolePolicies", LAB_ROLES, *READ, used_by="inline_policy.read_inline_policies (paginator)"
        ),
        call("iam:GetRolePolicy", LAB_ROLES, *READ, used_by="inline_policy.read_inline_policies"),
        call("iam:PutRolePolicy", LAB_ROLES, Part.PROVISION, used_by="inline_policy.apply"),
        call(
            "iam:DeleteRolePolicy",
            LAB_ROLES,
            Part.PROVISION,
            Part.TEARDOWN,
            used_by="inline_policy.delete: a policy not in the spec; teardown",
        ),
    )

    def read(self, iam: Any, role: ActualRole) -> dict[str, Any]:
        return read_inline_policies(iam, role.name)

    def compare_role(self, spec: RoleSpec, role: ActualRole, facts: Facts, setting: Setting) -> list[Finding]:
        return compare_inline_policies(spec, role, facts.engine, setting)

    def removals_of(self, role: ActualRole) -> list[str]:
        return sorted(role.inline_policies)

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, spec.account_id, spec.name, name, Action.NO_CHANGE)
            for spec in expected.roles
            for name in spec.inline_policies
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        if step.action is Action.DELETE:
            self.delete(step, clients)
            return
        spec = next(role for role in expected.roles if role.name == step.owner)
        clients.client(step.account_id, "iam").put_role_policy(
            RoleName=step.owner,
            PolicyName=step.name,
            PolicyDocument=json.dumps(spec.inline_policies[step.name]),
        )

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "iam").delete_role_policy(RoleName=step.owner, PolicyName=step.name)


KIND = InlinePolicy()
