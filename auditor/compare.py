"""Expected against actual state, by meaning: findings and the verdict (pure: no clients, no clock).

The policy semantics live in auditor.policy; this module applies them to the lab's resources, then
follows the lab's access path as IAM would to decide whether the lab still works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from auditor.collect import ActualFunction, ActualLab, ActualRole
from auditor.model import Check, Effect, Finding, InvokeResult, Severity, Status, Verdict, verdict_of
from auditor.policy import (
    Policy,
    PolicyDiff,
    PolicyError,
    compare_permissions,
    compare_trust,
    is_allowed,
    parse_policy,
    permission_boundary_allows,
    severity_for,
)
from auditor.spec import ROLE_ARN_VARIABLE, ExpectedLab, FunctionSpec, RoleSpec

LAMBDA_SERVICE = "service:lambda.amazonaws.com"

# When AWS stops accepting new functions in a runtime (Lambda runtime deprecation schedule).
RUNTIME_DEPRECATED_ON = {
    "python2.7": date(2021, 7, 15),
    "python3.6": date(2022, 7, 18),
    "python3.7": date(2023, 12, 4),
    "python3.8": date(2024, 10, 14),
    "python3.9": date(2025, 12, 15),
    "python3.10": date(2026, 10, 31),
    "python3.11": date(2027, 6, 30),
    "python3.12": date(2028, 10, 31),
    "python3.13": date(2029, 6, 30),
}


def lambda_user_agent(runtime: str) -> str:
    """What botocore sends from inside the Lambda Python runtime: exec-env carries AWS_EXECUTION_ENV."""
    version = runtime.removeprefix("python")
    return (
        f"Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#{version} "
        f"exec-env/AWS_Lambda_python{version} cfg/retry-mode#legacy Botocore/1.34.0"
    )


def _finding(
    check: Check,
    resource: str,
    status: Status,
    effect: Effect,
    severity: Severity,
    message: str,
    expected: Any = None,
    actual: Any = None,
    breaks_lab: bool = False,
) -> Finding:
    return Finding(check, resource, status, effect, severity, message, expected, actual, breaks_lab)


def _parse(document: Any) -> Policy | None:
    try:
        return parse_policy(document)
    except PolicyError:
        return None


# ------------------------------------------------------------------------------------------- roles


def inline_policy_arn(role: RoleSpec, name: str) -> str:
    return f"{role.arn}/inline-policy/{name}"


def _unreadable(check: Check, resource: str, document: Any, expected: Any) -> Finding:
    return _finding(
        check,
        resource,
        Status.MODIFIED,
        Effect.CHANGED,
        Severity.HIGH,
        f"{check.value.replace('_', ' ')} cannot be read as an IAM policy",
        expected,
        str(document)[:2000],
    )


def compare_trust_policy(
    spec: RoleSpec, actual: ActualRole, hardening_principals: Sequence[str]
) -> list[Finding]:
    policy = _parse(actual.trust_policy)
    if policy is None:
        return [_unreadable(Check.TRUST_POLICY, spec.arn, actual.trust_policy, spec.trust_policy)]
    diff = compare_trust(parse_policy(spec.trust_policy), policy, hardening_principals=hardening_principals)
    if diff.effect is Effect.NONE and not diff.hardening:
        return []
    return [
        _finding(
            Check.TRUST_POLICY,
            spec.arn,
            Status.MODIFIED,
            diff.effect,
            severity_for(diff, is_trust=True),
            diff.message,
            spec.trust_policy,
            actual.trust_policy,
        )
    ]


def _policy_finding(
    diff: PolicyDiff, resource: str, status: Status, expected: Any, actual: Any, message: str = ""
) -> Finding:
    return _finding(
        Check.INLINE_POLICY,
        resource,
        status,
        diff.effect,
        severity_for(diff, is_trust=False),
        message or diff.message,
        expected,
        actual,
    )


def compare_inline_policies(spec: RoleSpec, actual: ActualRole) -> list[Finding]:
    findings: list[Finding] = []
    for name, document in spec.inline_policies.items():
        resource = inline_policy_arn(spec, name)
        if name not in actual.inline_policies:
            findings.append(
                _finding(
                    Check.INLINE_POLICY,
                    resource,
                    Status.MISSING,
                    Effect.NARROWED,
                    Severity.MEDIUM,
                    f"inline policy {name} of role {spec.name} was deleted",
                    document,
                    None,
                )
            )
            continue
        have = actual.inline_policies[name]
        policy = _parse(have)
        if policy is None:
            findings.append(_unreadable(Check.INLINE_POLICY, resource, have, document))
            continue
        diff = compare_permissions([parse_policy(document)], [policy])
        if diff.effect is not Effect.NONE:
            findings.append(_policy_finding(diff, resource, Status.MODIFIED, document, have))
    expected_policies = [parse_policy(d) for d in spec.inline_policies.values()]
    for name in sorted(set(actual.inline_policies) - set(spec.inline_policies)):
        findings.append(_extra_policy_finding(spec, name, actual.inline_policies[name], expected_policies))
    return findings


def _extra_policy_finding(spec: RoleSpec, name: str, document: Any, expected: list[Policy]) -> Finding:
    resource = inline_policy_arn(spec, name)
    policy = _parse(document)
    if policy is None:
        return _unreadable(Check.INLINE_POLICY, resource, document, None)
    diff = compare_permissions(expected, [*expected, policy])
    if diff.effect is Effect.NONE:
        return _finding(
            Check.INLINE_POLICY,
            resource,
            Status.UNEXPECTED,
            Effect.NONE,
            Severity.INFO,
            f"extra inline policy {name} on role {spec.name} grants nothing beyond the spec",
            None,
            document,
        )
    return _policy_finding(
        diff,
        resource,
        Status.UNEXPECTED,
        None,
        document,
        f"extra inline policy {name} on role {spec.name}: {diff.message}",
    )


def compare_managed_policies(spec: RoleSpec, actual: ActualRole) -> list[Finding]:
    expected = [parse_policy(d) for d in spec.inline_policies.values()]
    findings = []
    for arn, document in sorted(actual.managed_policies.items()):
        if arn in spec.managed_policy_arns:
            continue
        policy = _parse(document) if document is not None else None
        diff = compare_permissions(expected, [*expected, policy]) if policy else None
        severity = Severity.CRITICAL if diff and diff.grants_everything else Severity.HIGH
        grants = f": {diff.message}" if diff and diff.effect is not Effect.NONE else ""
        findings.append(
            _finding(
                Check.MANAGED_POLICIES,
                spec.arn,
                Status.UNEXPECTED,
                Effect.WIDENED,
                severity,
                f"managed policy {arn.rsplit('/', 1)[-1]} is attached to role {spec.name}{grants}",
                None,
                {"PolicyArn": arn, "Document": document},
            )
        )
    return findings


def compare_boundary(spec: RoleSpec, actual: ActualRole) -> list[Finding]:
    if not actual.boundary_arn or actual.boundary_arn == spec.permissions_boundary:
        return []
    return [
        _finding(
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


def _missing(check: Check, resource: str, what: str) -> Finding:
    return _finding(
        check,
        resource,
        Status.MISSING,
        Effect.NARROWED,
        Severity.MEDIUM,
        f"{what} is missing",
        breaks_lab=True,
    )


def compare_role(
    spec: RoleSpec, actual: ActualRole, hardening_principals: Sequence[str] = ()
) -> list[Finding]:
    if not actual.exists:
        return [_missing(Check.RESOURCE, spec.arn, f"role {spec.name} in account {spec.account_id}")]
    return [
        *compare_trust_policy(spec, actual, hardening_principals),
        *compare_inline_policies(spec, actual),
        *compare_managed_policies(spec, actual),
        *compare_boundary(spec, actual),
    ]


# ---------------------------------------------------------------------------------------- function


def _config_finding(
    spec: FunctionSpec,
    severity: Severity,
    message: str,
    expected: Any,
    actual: Any,
    *,
    effect: Effect = Effect.CHANGED,
    breaks: bool = False,
) -> Finding:
    return _finding(
        Check.LAMBDA_CONFIG, spec.arn, Status.MODIFIED, effect, severity, message, expected, actual, breaks
    )


def compare_runtime(spec: FunctionSpec, actual: ActualFunction, today: date) -> list[Finding]:
    deprecated_on = RUNTIME_DEPRECATED_ON.get(actual.runtime)
    if deprecated_on is not None and deprecated_on <= today:
        return [
            _config_finding(
                spec,
                Severity.MEDIUM,
                f"runtime {actual.runtime} is deprecated since {deprecated_on.isoformat()}; the spec has {spec.runtime}",
                spec.runtime,
                actual.runtime,
                effect=Effect.NONE,
            )
        ]
    if actual.runtime != spec.runtime:
        return [
            _config_finding(
                spec,
                Severity.LOW,
                f"runtime is {actual.runtime}, the spec has {spec.runtime}",
                spec.runtime,
                actual.runtime,
                effect=Effect.NONE,
            )
        ]
    return []


def compare_environment(spec: FunctionSpec, actual: ActualFunction) -> list[Finding]:
    want = spec.environment.get(ROLE_ARN_VARIABLE)
    have = actual.environment.get(ROLE_ARN_VARIABLE)
    findings = []
    if have != want:
        message = (
            f"{ROLE_ARN_VARIABLE} is not set: the function cannot know which role to assume"
            if have is None
            else f"{ROLE_ARN_VARIABLE} points to {have}, not to the destination role {want}"
        )
        findings.append(
            _config_finding(
                spec,
                Severity.HIGH if have else Severity.MEDIUM,
                message,
                spec.environment,
                actual.environment,
                breaks=True,
            )
        )
    extra = sorted(set(actual.environment) - set(spec.environment))
    if extra:
        findings.append(
            _config_finding(
                spec,
                Severity.LOW,
                f"extra environment variables: {', '.join(extra)}",
                sorted(spec.environment),
                sorted(actual.environment),
            )
        )
    return findings


def compare_function(
    spec: FunctionSpec, actual: ActualFunction, code_sha256: str, today: date
) -> list[Finding]:
    if not actual.exists:
        return [_missing(Check.RESOURCE, spec.arn, f"function {spec.name} in account {spec.account_id}")]
    findings = []
    if actual.role != spec.role_arn:
        findings.append(
            _config_finding(
                spec,
                Severity.HIGH,
                f"the function runs as {actual.role}, not as {spec.role_arn}",
                spec.role_arn,
                actual.role,
                breaks=True,
            )
        )
    if actual.handler != spec.handler:
        findings.append(
            _config_finding(
                spec,
                Severity.MEDIUM,
                f"handler is {actual.handler}, the code's handler is {spec.handler}",
                spec.handler,
                actual.handler,
                breaks=True,
            )
        )
    if actual.state and actual.state != "Active":
        findings.append(
            _finding(
                Check.RESOURCE,
                spec.arn,
                Status.FAILED,
                Effect.NONE,
                Severity.MEDIUM,
                f"the function is {actual.state}, not Active",
                "Active",
                actual.state,
                breaks_lab=True,
            )
        )
    findings += compare_runtime(spec, actual, today) + compare_environment(spec, actual)
    if actual.code_sha256 != code_sha256:
        findings.append(
            _finding(
                Check.LAMBDA_CODE,
                spec.arn,
                Status.MODIFIED,
                Effect.CHANGED,
                Severity.HIGH,
                "the function's code is not the packaged lambda_src: it was replaced",
                {"CodeSha256": code_sha256},
                {"CodeSha256": actual.code_sha256},
            )
        )
    return findings


# -------------------------------------------------------------------------------------- access path


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
    return [policy for policy in map(_parse, documents) if policy is not None]


def _role_may(role: ActualRole, action: str, resource: str, context: dict[str, str]) -> bool:
    boundary = _parse(role.boundary_policy) if role.boundary_arn else None
    if role.boundary_arn and boundary is None:
        return False  # a boundary we cannot read lets nothing through that we can vouch for
    return is_allowed(_documents(role), action, resource, context) and permission_boundary_allows(
        boundary, action, resource, context
    )


def _trust_admits(role: ActualRole, principal: str, context: dict[str, str]) -> bool:
    policy = _parse(role.trust_policy)
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
                _trust_admits(origin, LAMBDA_SERVICE, {}),
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
    for finding in findings:
        if (
            finding.check in role_checks
            and finding.resource.startswith(link.resource)
            and finding.effect is not Effect.WIDENED
        ):
            finding = replace(finding, breaks_lab=True, message=f"{finding.message}; so {link.description}")
            blamed = True
        marked.append(finding)
    if not blamed:
        marked.append(
            _finding(
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


# -------------------------------------------------------------------------------------------- lab


@dataclass(frozen=True)
class Judgement:
    findings: tuple[Finding, ...]
    verdict: Verdict


def invoke_finding(expected: ExpectedLab, result: InvokeResult) -> Finding | None:
    if result.ok:
        return None
    return _finding(
        Check.INVOKE,
        expected.function.arn,
        Status.FAILED,
        Effect.NONE,
        Severity.MEDIUM,
        f"invoke failed ({result.cause.replace('_', ' ')}): {result.detail}",
        {"destination_account": expected.destination_account, "marker_bucket": expected.marker_bucket.name},
        result.answer,
        breaks_lab=True,
    )


def judge_lab(
    expected: ExpectedLab,
    actual: ActualLab,
    code_sha256: str,
    today: date,
    invoke: InvokeResult | None = None,
) -> Judgement:
    """All findings of one lab, and its verdict."""
    hardening = [expected.origin_role.arn]
    findings = [
        *compare_role(expected.destination_role, actual.destination_role, hardening),
        *compare_role(expected.origin_role, actual.origin_role),
        *compare_function(expected.function, actual.function, code_sha256, today),
    ]
    if not actual.marker_bucket.exists:
        findings.append(
            _missing(
                Check.RESOURCE,
                f"arn:aws:s3:::{expected.marker_bucket.name}",
                f"marker bucket {expected.marker_bucket.name}",
            )
        )
    for link in access_path(expected, actual):
        if not link.works:
            findings = _blame(findings, link)
    if invoke is not None and (failure := invoke_finding(expected, invoke)) is not None:
        findings.append(failure)
    ordered = tuple(sorted(findings, key=lambda f: (-f.severity.rank, f.check.value, f.resource)))
    return Judgement(ordered, verdict_of(ordered))
