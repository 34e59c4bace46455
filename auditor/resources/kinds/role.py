"""The lab's two IAM roles and their trust policies (lab.md, "Resources").

The trust policy is the role's own attribute (CreateRole takes it, GetRole returns it,
UpdateAssumeRolePolicy replaces it), so one kind declares both: a drifted trust policy is planned as
"update role".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualLab, ActualRole
from auditor.domain.lab_context import witness_setting
from auditor.domain.model import Action, Effect, Finding, Status, Step, Subject
from auditor.domain.near_names import near_name
from auditor.domain.spec import ROLE_KIND, ExpectedLab, LabShape, ResourceKey, RoleSpec, render_roles
from auditor.policy import NOWHERE, PolicyEngine, Setting, compare_trust, severity_for
from auditor.resources.base import (
    ANY_LAB,
    READ,
    UNSCOPED,
    Clients,
    Coverage,
    Facts,
    Grant,
    Kind,
    Part,
    Scope,
    Sleep,
    call,
    finding,
    missing,
    parse_or_none,
    role_rank,
    unreadable,
)

LAB_ROLES = Scope("LabRoles", tuple(role.arn for role in ANY_LAB.roles))
KIND_NAME = ROLE_KIND
_TRUST_CODES = {
    Effect.WIDENED: "trust_policy.widened",
    Effect.NARROWED: "trust_policy.narrowed",
    Effect.CHANGED: "trust_policy.changed",
}


def role_subject(account_id: str, name: str) -> Subject:
    """A role, as its own findings and the access path's findings about it name it."""
    return Subject(KIND_NAME, account_id, name, name)


def collect_role(iam: Any, spec: RoleSpec) -> ActualRole:
    """GetRole: whether the role exists, its trust policy, its boundary's ARN, its tags."""
    try:
        role = iam.get_role(RoleName=spec.name)["Role"]
    except ClientError as error:
        if is_not_found(error):
            return ActualRole(spec.account_id, spec.name, exists=False)
        raise
    return ActualRole(
        account_id=spec.account_id,
        name=spec.name,
        exists=True,
        arn=role["Arn"],
        unique_id=role.get("RoleId", ""),
        trust_policy=role.get("AssumeRolePolicyDocument"),
        boundary_arn=(role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
        tags={tag["Key"]: tag["Value"] for tag in role.get("Tags", [])},
    )


def near_role_name(iam: Any, spec: RoleSpec) -> str | None:
    """A near name of the role among the account's roles (ListRoles)."""
    names = (
        role["RoleName"] for page in iam.get_paginator("list_roles").paginate() for role in page["Roles"]
    )
    return near_name(spec.name, names)


def compare_trust_policy(
    spec: RoleSpec,
    actual: ActualRole,
    hardening_principals: Sequence[str],
    engine: PolicyEngine,
    setting: Setting = NOWHERE,
) -> list[Finding]:
    subject = role_subject(spec.account_id, spec.name)
    policy = parse_or_none(engine, actual.trust_policy)
    if policy is None:
        return [
            unreadable("trust_policy.unreadable", subject, spec.arn, actual.trust_policy, spec.trust_policy)
        ]
    diff = compare_trust(
        engine,
        engine.parse(spec.trust_policy),
        policy,
        hardening_principals=hardening_principals,
        role_arn=spec.arn,
        setting=setting,
    )
    if diff.effect is Effect.NONE:
        return []
    return [
        finding(
            _TRUST_CODES[diff.effect],
            subject,
            spec.arn,
            Status.MODIFIED,
            diff.effect,
            severity_for(diff, is_trust=True),
            diff.message,
            spec.trust_policy,
            actual.trust_policy,
            witness=diff.witness,
        )
    ]


class Role(Kind):
    name = KIND_NAME
    apply_rank = (0, 0)
    removal_rank = (4, 3)  # after the role's policies, attachments and boundary
    calls: ClassVar = (
        call("iam:GetRole", LAB_ROLES, *READ, used_by="role.collect_role"),
        call(
            "iam:ListRoles",
            UNSCOPED,
            Part.AUDIT,
            used_by="role.near_role_name: a missing role's near name",
            coverage=Coverage.STUDENTS,
        ),
        call(
            "iam:CreateRole",
            LAB_ROLES,
            Part.PROVISION,
            also=[Grant("iam:TagRole", LAB_ROLES)],
            used_by="role.apply (created with tags)",
        ),
        call(
            "iam:UpdateAssumeRolePolicy", LAB_ROLES, Part.PROVISION, used_by="role.apply: restore the trust"
        ),
        call("iam:DeleteRole", LAB_ROLES, Part.TEARDOWN, used_by="role.delete"),
    )

    def render(self, shape: LabShape) -> Mapping[ResourceKey, Any]:
        return render_roles(shape)

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        roles = clients.each(
            lambda spec: collect_role(clients.client(spec.account_id, "iam"), spec), expected.roles
        )
        return {spec.key: role for spec, role in zip(expected.roles, roles, strict=True)}

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        # A trust narrowed to exactly the origin's role is a hardening of the destination's trust.
        hardening = {expected.destination_role.name: [expected.origin_role.arn]}
        findings = []
        for spec, role in zip(expected.roles, actual.roles, strict=True):
            if not role.exists:
                findings.append(
                    missing(
                        role_subject(spec.account_id, spec.name),
                        spec.arn,
                        f"role {spec.name} in account {spec.account_id}",
                    )
                )
            else:
                setting = witness_setting(expected, actual, spec)
                principals = hardening.get(spec.name, ())
                findings += compare_trust_policy(spec, role, principals, facts.engine, setting)
        return findings

    def managed(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, spec.account_id, spec.name, spec.name, Action.NO_CHANGE)
            for spec in expected.roles
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        spec = next(role for role in expected.roles if role.name == step.owner)
        iam = clients.client(step.account_id, "iam")
        trust = json.dumps(spec.trust_policy)
        if step.action is Action.CREATE:
            iam.create_role(
                RoleName=spec.name,
                AssumeRolePolicyDocument=trust,
                Description=f"lab-auditor lab {expected.name}",
                Tags=expected.tag_list,
            )
        else:
            iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=trust)

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, role.account_id, role.name, role.name, Action.DELETE)
            for role in actual.roles
            if role.exists
        ]

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "iam").delete_role(RoleName=step.name)

    def owner_rank(self, step: Step, expected: ExpectedLab, *, removal: bool) -> int:
        return role_rank(step, expected, removal=removal)


class RoleAspect(Kind):
    """What is attached to an existing role (inline policies, managed policies, a boundary): read and
    compared role by role, changed with the role's own IAM calls, removed before the role. Its entries
    have the role as their owner (the lab's role accessors put them back into the role)."""

    collects_after = ("role",)

    def read(self, iam: Any, role: ActualRole) -> dict[str, Any]:
        """This aspect of the role: each document by its name in the entry's key."""
        return {}

    def compare_role(self, spec: RoleSpec, role: ActualRole, facts: Facts, setting: Setting) -> list[Finding]:
        """This aspect's findings on one role; `setting`: where its documents apply, for witnesses."""
        return []

    def removals_of(self, role: ActualRole) -> list[str]:
        """The names of this aspect's steps that remove it from an existing role."""
        return []

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> Mapping[ResourceKey, Any]:
        existing = [role for role in actual.roles if role.exists]
        read = clients.each(lambda role: self.read(clients.client(role.account_id, "iam"), role), existing)
        return {
            self.subject(role.account_id, role.name, name): document
            for role, documents in zip(existing, read, strict=True)
            for name, document in documents.items()
        }

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        return [
            found
            for spec, role in zip(expected.roles, actual.roles, strict=True)
            if role.exists
            for found in self.compare_role(spec, role, facts, witness_setting(expected, actual, spec))
        ]

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        self.delete(step, clients)  # what the spec does not want is removed; subclasses that add override

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, role.account_id, role.name, name, Action.DELETE)
            for role in actual.roles
            if role.exists
            for name in self.removals_of(role)
        ]

    def owner_rank(self, step: Step, expected: ExpectedLab, *, removal: bool) -> int:
        return role_rank(step, expected, removal=removal)


KIND = Role()
