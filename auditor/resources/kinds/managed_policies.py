"""Managed policies attached to the lab's roles: the spec wants none; they are detached, never deleted
(they belong to the account, not to the lab)."""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualRole
from auditor.domain.model import Effect, Finding, Severity, Status, Step, Subject
from auditor.domain.spec import MANAGED_POLICY_KIND, RoleSpec
from auditor.policy import (
    NOWHERE,
    Policy,
    PolicyEngine,
    Setting,
    compare_permissions,
    severity_for,
)
from auditor.resources.base import (
    READ,
    Clients,
    Facts,
    Part,
    Scope,
    call,
    finding,
    parse_or_none,
)
from auditor.resources.kinds.role import LAB_ROLES, RoleAspect

KIND_NAME = MANAGED_POLICY_KIND

# Documents of whatever managed policy or boundary a student attached (customer or AWS managed).
ATTACHED_POLICIES = Scope("ReadAttachedPolicies", ("arn:aws:iam::*:policy/*",))


def read_policy_document(iam: Any, arn: str) -> Any:
    """The default version of a managed policy (None when it is gone or unreadable as such)."""
    try:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def attached_policy_arns(iam: Any, role_name: str) -> list[str]:
    arns: list[str] = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        arns.extend(policy["PolicyArn"] for policy in page["AttachedPolicies"])
    return arns


def compare_managed_policies(
    spec: RoleSpec, actual: ActualRole, engine: PolicyEngine, setting: Setting = NOWHERE
) -> list[Finding]:
    expected = [engine.parse(d) for d in spec.inline_policies.values()]
    return [
        _attached_policy_finding(spec, arn, document, expected, engine, setting)
        for arn, document in sorted(actual.managed_policies.items())
        if arn not in spec.managed_policy_arns
    ]


def _attached_policy_finding(
    spec: RoleSpec, arn: str, document: Any, expected: list[Policy], engine: PolicyEngine, setting: Setting
) -> Finding:
    """An attached managed policy, judged by what it grants beyond the spec's own policies."""
    name = arn.rsplit("/", 1)[-1]
    attachment = Subject(KIND_NAME, spec.account_id, spec.name, arn)
    found = {"PolicyArn": arn, "Document": document}
    subject = f"managed policy {name} is attached to role {spec.name}"
    policy = parse_or_none(engine, document) if document is not None else None
    if policy is None:
        message = f"{subject}; its document could not be read"
        return finding(
            "managed_policies.unreadable",
            attachment,
            spec.arn,
            Status.UNEXPECTED,
            Effect.CHANGED,
            Severity.HIGH,
            message,
            None,
            found,
        )
    diff = compare_permissions(engine, expected, [*expected, policy], setting=setting)
    if diff.effect is Effect.NONE:
        message = f"{subject} but grants nothing beyond the spec"
        return finding(
            "managed_policies.attached",
            attachment,
            spec.arn,
            Status.UNEXPECTED,
            Effect.NONE,
            Severity.LOW,
            message,
            None,
            found,
        )
    return finding(
        "managed_policies.attached",
        attachment,
        spec.arn,
        Status.UNEXPECTED,
        diff.effect,
        severity_for(diff, is_trust=False),
        f"{subject}: {diff.message}",
        None,
        found,
        witness=diff.witness,
    )


class ManagedPolicies(RoleAspect):
    name = KIND_NAME
    apply_rank = (0, 2)
    removal_rank = (4, 1)
    calls: ClassVar = (
        call(
            "iam:ListAttachedRolePolicies",
            LAB_ROLES,
            *READ,
            used_by="managed_policies.attached_policy_arns (paginator)",
        ),
        call(
            "iam:GetPolicy",
            ATTACHED_POLICIES,
            *READ,
            used_by="managed_policies.read_policy_document: an attached policy or boundary",
        ),
        call(
            "iam:GetPolicyVersion",
            ATTACHED_POLICIES,
            *READ,
            used_by="managed_policies.read_policy_document: an attached policy or boundary",
        ),
        call(
            "iam:DetachRolePolicy",
            LAB_ROLES,
            Part.PROVISION,
            Part.TEARDOWN,
            used_by="managed_policies.delete: an attached managed policy; teardown",
        ),
    )

    def read(self, iam: Any, role: ActualRole) -> dict[str, Any]:
        return {arn: read_policy_document(iam, arn) for arn in attached_policy_arns(iam, role.name)}

    def compare_role(self, spec: RoleSpec, role: ActualRole, facts: Facts, setting: Setting) -> list[Finding]:
        return compare_managed_policies(spec, role, facts.engine, setting)

    def removals_of(self, role: ActualRole) -> list[str]:
        return sorted(role.managed_policies)

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "iam").detach_role_policy(RoleName=step.owner, PolicyArn=step.name)


KIND = ManagedPolicies()
