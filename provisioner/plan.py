"""What it takes to make a lab match its spec (pure: expected and actual state in, steps out)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from auditor.collect import ActualEventRule, ActualFunction, ActualLab, ActualLogGroup, ActualRole
from auditor.policy import PolicyError, compare_permissions, compare_trust, parse_policy
from auditor.spec import EventRuleSpec, ExpectedLab, FunctionSpec, RoleSpec


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_CHANGE = "no change"


class Kind(StrEnum):
    ROLE = "role"
    INLINE_POLICY = "inline_policy"
    MANAGED_POLICY = "managed_policy"
    PERMISSIONS_BOUNDARY = "permissions_boundary"
    FUNCTION = "function"
    FUNCTION_CODE = "function_code"
    LOG_GROUP = "log_group"
    MARKER_BUCKET = "marker_bucket"
    EVENT_RULE = "event_rule"


@dataclass(frozen=True)
class Step:
    kind: Kind
    account_id: str
    role: str  # the role a policy step belongs to; the resource name otherwise
    name: str
    action: Action
    reason: str = ""

    @property
    def changes(self) -> bool:
        return self.action is not Action.NO_CHANGE

    def describe(self) -> str:
        target = f"{self.role}/{self.name}" if self.role != self.name else self.name
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.action.value:<9} {self.kind.value:<20} {self.account_id} {target}{reason}"


def same_permissions(expected: object, actual: object) -> bool:
    try:
        diff = compare_permissions([parse_policy(expected)], [parse_policy(actual)])  # type: ignore[arg-type]
    except PolicyError:
        return False
    return diff.effect.value == "none"


def same_trust(expected: object, actual: object) -> bool:
    try:
        diff = compare_trust(parse_policy(expected), parse_policy(actual))  # type: ignore[arg-type]
    except PolicyError:
        return False
    return diff.effect.value == "none" and not diff.hardening


def plan_role(spec: RoleSpec, actual: ActualRole) -> list[Step]:
    def step(kind: Kind, name: str, action: Action, reason: str = "") -> Step:
        return Step(kind, spec.account_id, spec.name, name, action, reason)

    if not actual.exists:
        role_step = step(Kind.ROLE, spec.name, Action.CREATE)
    elif not same_trust(spec.trust_policy, actual.trust_policy):
        role_step = step(Kind.ROLE, spec.name, Action.UPDATE, "trust policy differs")
    else:
        role_step = step(Kind.ROLE, spec.name, Action.NO_CHANGE)
    steps = [role_step]
    for name, document in spec.inline_policies.items():
        if name not in actual.inline_policies:
            steps.append(step(Kind.INLINE_POLICY, name, Action.CREATE))
        elif not same_permissions(document, actual.inline_policies[name]):
            steps.append(step(Kind.INLINE_POLICY, name, Action.UPDATE, "document differs"))
        else:
            steps.append(step(Kind.INLINE_POLICY, name, Action.NO_CHANGE))
    steps += [
        step(Kind.INLINE_POLICY, name, Action.DELETE, "not in the spec")
        for name in sorted(set(actual.inline_policies) - set(spec.inline_policies))
    ]
    steps += [
        step(Kind.MANAGED_POLICY, arn, Action.DELETE, "detach; the policy itself stays")
        for arn in sorted(set(actual.managed_policies) - set(spec.managed_policy_arns))
    ]
    if actual.boundary_arn and actual.boundary_arn != spec.permissions_boundary:
        steps.append(step(Kind.PERMISSIONS_BOUNDARY, actual.boundary_arn, Action.DELETE, "not in the spec"))
    return steps


def function_config_differences(spec: FunctionSpec, actual: ActualFunction) -> list[str]:
    wanted = {
        "role": (spec.role_arn, actual.role),
        "runtime": (spec.runtime, actual.runtime),
        "handler": (spec.handler, actual.handler),
        "environment": (spec.environment, actual.environment),
        "timeout": (spec.timeout_seconds, actual.timeout),
        "memory": (spec.memory_mb, actual.memory),
    }
    return [name for name, (want, have) in wanted.items() if want != have]


def plan_function(spec: FunctionSpec, actual: ActualFunction, code_sha256: str) -> list[Step]:
    def step(kind: Kind, action: Action, reason: str = "") -> Step:
        return Step(kind, spec.account_id, spec.name, spec.name, action, reason)

    if not actual.exists:
        return [step(Kind.FUNCTION, Action.CREATE)]
    differences = function_config_differences(spec, actual)
    config = step(Kind.FUNCTION, Action.UPDATE, ", ".join(differences)) if differences else None
    code = (
        step(Kind.FUNCTION_CODE, Action.UPDATE, "code differs from lambda_src/")
        if actual.code_sha256 != code_sha256
        else None
    )
    return [config or step(Kind.FUNCTION, Action.NO_CHANGE), *([code] if code else [])]


def plan_log_group(spec: FunctionSpec, actual: ActualLogGroup | None) -> Step:
    def step(action: Action, reason: str = "") -> Step:
        return Step(Kind.LOG_GROUP, spec.account_id, spec.log_group, spec.log_group, action, reason)

    if actual is None or not actual.exists:
        return step(Action.CREATE)
    if actual.retention_days != spec.log_retention_days:
        return step(Action.UPDATE, f"retention {actual.retention_days} -> {spec.log_retention_days} days")
    return step(Action.NO_CHANGE)


def plan_event_rule(spec: EventRuleSpec, actual: ActualEventRule) -> Step | None:
    if spec.target_arn is None:
        return None  # change events are off; teardown still finds a rule left from before

    def step(action: Action, reason: str = "") -> Step:
        return Step(Kind.EVENT_RULE, spec.account_id, spec.name, spec.name, action, reason)

    if not actual.exists:
        return step(Action.CREATE)
    if actual.pattern != spec.pattern or actual.target_arns != (spec.target_arn,):
        return step(Action.UPDATE, "pattern or target differs")
    return step(Action.NO_CHANGE)


def plan_lab(expected: ExpectedLab, actual: ActualLab, code_sha256: str) -> list[Step]:
    """Steps in the order they must be applied: roles before the function that runs as one."""
    bucket = expected.marker_bucket
    return [
        *plan_role(expected.destination_role, actual.destination_role),
        *plan_role(expected.origin_role, actual.origin_role),
        *plan_function(expected.function, actual.function, code_sha256),
        plan_log_group(expected.function, actual.log_group),
        Step(
            Kind.MARKER_BUCKET,
            bucket.account_id,
            bucket.name,
            bucket.name,
            Action.NO_CHANGE if actual.marker_bucket.exists else Action.CREATE,
        ),
        *(
            step
            for spec, rule in zip(expected.event_rules, actual.event_rules, strict=False)
            if (step := plan_event_rule(spec, rule)) is not None
        ),
    ]
