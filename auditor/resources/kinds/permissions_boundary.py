"""A permissions boundary on one of the lab's roles: the spec has none; the boundary policy stays."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from auditor.actual import ActualLab, ActualRole
from auditor.model import Action, Check, Effect, Finding, Severity, Status, Step
from auditor.resources.base import (
    Clients,
    Facts,
    Kind,
    Part,
    Sleep,
    call,
    finding,
    role_rank,
    step_for,
)
from auditor.resources.kinds.managed_policies import read_policy_document
from auditor.resources.kinds.role import LAB_ROLES
from auditor.spec import ExpectedLab, RoleSpec


def compare_boundary(spec: RoleSpec, actual: ActualRole) -> list[Finding]:
    if not actual.boundary_arn or actual.boundary_arn == spec.permissions_boundary:
        return []
    return [
        finding(
            Check.PERMISSIONS_BOUNDARY,
            spec.arn,
            Status.UNEXPECTED,
            Effect.NARROWED,
            Severity.MEDIUM,
            f"role {spec.name} has the permissions boundary {actual.boundary_arn.rsplit('/', 1)[-1]}, the spec has none",
            spec.permissions_boundary,
            {"PolicyArn": actual.boundary_arn, "Document": actual.boundary_policy},
        )
    ]


class PermissionsBoundary(Kind):
    name = "permissions_boundary"
    apply_rank = (0, 3)
    removal_rank = (4, 2)
    # GetRole names the boundary; its document is read with the managed policies' GetPolicy calls.
    calls: ClassVar = (
        call(
            "iam:DeleteRolePermissionsBoundary",
            LAB_ROLES,
            Part.PROVISION,
            Part.TEARDOWN,
            used_by="permissions_boundary.delete: a boundary; teardown",
        ),
    )

    def collect(
        self, clients: Clients, expected: ExpectedLab, actual: ActualLab, *, for_teardown: bool
    ) -> ActualLab:
        for role in actual.roles:
            if role.exists and role.boundary_arn:
                document = read_policy_document(clients.client(role.account_id, "iam"), role.boundary_arn)
                actual = actual.with_role(replace(role, boundary_policy=document))
        return actual

    def compare(self, expected: ExpectedLab, actual: ActualLab, facts: Facts) -> list[Finding]:
        return [
            found
            for spec, role in zip(expected.roles, actual.roles, strict=True)
            if role.exists
            for found in compare_boundary(spec, role)
        ]

    def fixes(self, finding: Finding, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        if finding.check is not Check.PERMISSIONS_BOUNDARY:
            return []
        for spec, role in zip(expected.roles, actual.roles, strict=True):
            if spec.arn == finding.resource and role.boundary_arn:
                return [step_for(self, finding, spec.account_id, spec.name, role.boundary_arn, Action.DELETE)]
        return []

    def apply(self, step: Step, clients: Clients, expected: ExpectedLab, sleep: Sleep) -> None:
        self.delete(step, clients)

    def removals(self, expected: ExpectedLab, actual: ActualLab) -> list[Step]:
        return [
            Step(self.name, role.account_id, role.name, role.boundary_arn, Action.DELETE)
            for role in actual.roles
            if role.exists and role.boundary_arn
        ]

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "iam").delete_role_permissions_boundary(RoleName=step.owner)

    def owner_rank(self, step: Step, expected: ExpectedLab, *, removal: bool) -> int:
        return role_rank(step, expected, removal=removal)


KIND = PermissionsBoundary()
