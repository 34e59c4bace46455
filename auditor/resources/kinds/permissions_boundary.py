"""A permissions boundary on one of the lab's roles: the spec has none; the boundary policy stays."""

from __future__ import annotations

from typing import Any, ClassVar

from auditor.domain.actual import ActualRole
from auditor.domain.model import Effect, Finding, Severity, Status, Step, Subject
from auditor.domain.spec import PERMISSIONS_BOUNDARY_KIND, RoleSpec
from auditor.policy import NOWHERE, UNDECIDED, PolicyEngine, Setting, compare_narrowing
from auditor.resources.base import (
    Clients,
    Facts,
    Part,
    call,
    finding,
    parse_or_none,
)
from auditor.resources.kinds.managed_policies import read_policy_document
from auditor.resources.kinds.role import LAB_ROLES, RoleAspect

KIND_NAME = PERMISSIONS_BOUNDARY_KIND


def compare_boundary(
    spec: RoleSpec, actual: ActualRole, engine: PolicyEngine, setting: Setting = NOWHERE
) -> list[Finding]:
    """A boundary the spec does not have, judged by what it takes away from the spec's own access."""
    if not actual.boundary_arn or actual.boundary_arn == spec.permissions_boundary:
        return []
    name = actual.boundary_arn.rsplit("/", 1)[-1]
    subject = f"role {spec.name} has the permissions boundary {name}, the spec has none"
    found = {"PolicyArn": actual.boundary_arn, "Document": actual.boundary_policy}
    boundary = parse_or_none(engine, actual.boundary_policy)
    witness = None
    code = "permissions_boundary.attached"
    if boundary is None:
        code = "permissions_boundary.unreadable"
        effect, severity, message = (
            Effect.NARROWED,
            Severity.MEDIUM,
            f"{subject}; its document could not be read",
        )
    else:
        # What the spec's own policies allow that the boundary does not: the "narrower" side.
        own = [engine.parse(d) for d in spec.inline_policies.values()]
        diff = compare_narrowing(engine, own, [boundary], setting=setting)
        witness = diff.narrower
        effect = diff.effect
        if diff.effect is Effect.NONE:
            severity, message = Severity.LOW, f"{subject}; it takes away none of the spec's access"
        elif not diff.decided:
            severity, message = Severity.HIGH, f"{subject}; what it takes away {UNDECIDED}"
        else:
            severity, message = Severity.MEDIUM, f"{subject}: it {diff.message}"
    return [
        finding(
            code,
            Subject(KIND_NAME, spec.account_id, spec.name, actual.boundary_arn),
            spec.arn,
            Status.UNEXPECTED,
            effect,
            severity,
            message,
            spec.permissions_boundary,
            found,
            witness=witness,
        )
    ]


class PermissionsBoundary(RoleAspect):
    name = KIND_NAME
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

    def read(self, iam: Any, role: ActualRole) -> dict[str, Any]:
        if not role.boundary_arn:
            return {}
        return {role.boundary_arn: read_policy_document(iam, role.boundary_arn)}

    def compare_role(self, spec: RoleSpec, role: ActualRole, facts: Facts, setting: Setting) -> list[Finding]:
        return compare_boundary(spec, role, facts.engine, setting)

    def removals_of(self, role: ActualRole) -> list[str]:
        return [role.boundary_arn] if role.boundary_arn else []

    def delete(self, step: Step, clients: Clients) -> None:
        clients.client(step.account_id, "iam").delete_role_permissions_boundary(RoleName=step.owner)


KIND = PermissionsBoundary()
