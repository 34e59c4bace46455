"""Whether the lab still works: its access path, hop by hop, as IAM would decide it (pure).

One entry point, `judge_access`: it marks the findings that break a hop of the path, and adds one
where no finding explains a broken hop (an emulator may let through what IAM would refuse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from auditor.actual import ActualLab, ActualRole
from auditor.model import Check, Effect, Finding, Severity, Status
from auditor.policy import Policy, is_allowed, permission_boundary_allows
from auditor.resources.base import finding, parse_or_none
from auditor.spec import LAMBDA_SERVICE, ExpectedLab

LAMBDA_PRINCIPAL = f"service:{LAMBDA_SERVICE}"


def lambda_user_agent(runtime: str) -> str:
    """What botocore sends from inside the Lambda Python runtime: exec-env carries AWS_EXECUTION_ENV."""
    version = runtime.removeprefix("python")
    return (
        f"Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#{version} "
        f"exec-env/AWS_Lambda_python{version} cfg/retry-mode#legacy Botocore/1.34.0"
    )


@dataclass(frozen=True)
class Link:
    """One step the lab's call must take, and the resource to blame when it cannot."""

    description: str  # what it means when the step fails
    works: bool
    check: Check
    resource: str


def _documents(role: ActualRole) -> list[Policy]:
    documents = [
        *role.inline_policies.values(),
        *(d for d in role.managed_policies.values() if d is not None),
    ]
    return [policy for policy in map(parse_or_none, documents) if policy is not None]


def _role_may(role: ActualRole, action: str, resource: str, context: dict[str, str]) -> bool:
    boundary = parse_or_none(role.boundary_policy) if role.boundary_arn else None
    if role.boundary_arn and boundary is None:
        return False  # a boundary we cannot read lets nothing through that we can vouch for
    return is_allowed(_documents(role), action, resource, context) and permission_boundary_allows(
        boundary, action, resource, context
    )


def _trust_admits(role: ActualRole, principal: str, context: dict[str, str]) -> bool:
    policy = parse_or_none(role.trust_policy)
    return policy is not None and is_allowed(
        [policy], "sts:AssumeRole", role.arn, context, principal=principal
    )


def access_path(expected: ExpectedLab, actual: ActualLab) -> list[Link]:
    """The lab's call, step by step, as IAM would decide it (only for resources that exist)."""
    origin, destination, function = actual.origin_role, actual.destination_role, actual.function
    runtime = function.runtime or expected.function.runtime
    context = {"aws:UserAgent": lambda_user_agent(runtime)}
    session = f"arn:aws:sts::{expected.origin_account}:assumed-role/{expected.origin_role.name}/{expected.function.name}"
    dest_arn, origin_arn = expected.destination_role.arn, expected.origin_role.arn
    links = []
    if origin.exists:
        links.append(
            Link(
                "Lambda can no longer assume the origin role",
                _trust_admits(origin, LAMBDA_PRINCIPAL, {}),
                Check.TRUST_POLICY,
                origin_arn,
            )
        )
        links.append(
            Link(
                "the origin role can no longer assume the destination role",
                _role_may(origin, "sts:AssumeRole", dest_arn, context),
                Check.INLINE_POLICY,
                origin_arn,
            )
        )
    if destination.exists:
        links.append(
            Link(
                "the destination role no longer trusts the origin role",
                _trust_admits(destination, session, context),
                Check.TRUST_POLICY,
                dest_arn,
            )
        )
        links.append(
            Link(
                "the destination role can no longer list buckets",
                _role_may(destination, "s3:ListAllMyBuckets", "*", {}),
                Check.INLINE_POLICY,
                dest_arn,
            )
        )
    return links


def _blame(findings: list[Finding], link: Link) -> list[Finding]:
    """Mark the findings that explain a broken link; add one when none does (e.g. an emulator let it pass)."""
    role_checks = (
        {Check.TRUST_POLICY}
        if link.check is Check.TRUST_POLICY
        else {Check.INLINE_POLICY, Check.MANAGED_POLICIES, Check.PERMISSIONS_BOUNDARY}
    )
    blamed = False
    marked = []
    for found in findings:
        if (
            found.check in role_checks
            and found.resource.startswith(link.resource)
            and found.effect is not Effect.WIDENED
        ):
            found = replace(found, breaks_lab=True, message=f"{found.message}; so {link.description}")
            blamed = True
        marked.append(found)
    if not blamed:
        marked.append(
            finding(
                link.check,
                link.resource,
                Status.MODIFIED,
                Effect.NARROWED,
                Severity.MEDIUM,
                f"the lab cannot work: {link.description}",
                breaks_lab=True,
            )
        )
    return marked


def judge_access(expected: ExpectedLab, actual: ActualLab, findings: Sequence[Finding]) -> list[Finding]:
    """The findings, with those that break the lab's access path marked (and added where none explains it)."""
    judged = list(findings)
    for link in access_path(expected, actual):
        if not link.works:
            judged = _blame(judged, link)
    return judged
