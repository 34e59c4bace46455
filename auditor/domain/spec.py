"""The lab of lab.md as data: one declarative description, rendered per lab.

The provisioner builds from it, the auditor compares with it, the teardown removes exactly what it
names. No resource name or policy document is written anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from auditor.domain.config import LabConfig, LabSettings
from auditor.domain.declarations import SHIPPED
from auditor.domain.model import Subject

PROJECT_TAG = "lab-auditor:managed"
LAB_TAG = "lab-auditor:lab"

DESTINATION_ROLE = "LambdaS3ListBuckets"
DESTINATION_POLICY = "LambdaS3ListBucketsPolicy"
ORIGIN_ROLE = "Lambda-Assume-Roles"
ORIGIN_POLICY = "Lambda-Assume-Roles-Policy"
FUNCTION = "Lambda-Assume-Roles"
HANDLER = "handler.lambda_handler"
ROLE_ARN_VARIABLE = "DESTINATION_ROLE_ARN"
LAMBDA_USER_AGENT_PATTERN = "*AWS_Lambda_python*"
EVENT_RULE = "lab-auditor-changes"
# IAM is a global service: its CloudTrail events reach EventBridge (and its event history) in us-east-1 only.
IAM_EVENTS_REGION = "us-east-1"
LAMBDA_SERVICE = "lambda.amazonaws.com"
EVENTS_SERVICE = "events.amazonaws.com"
# The execution role of a lab account's change-event rules, and its one inline policy: AWS delivers to an
# event bus in another Region only through a role (the target's RoleArn). The StackSet template of
# auditor/resources/rollout.py makes the same role, from the same documents.
EVENT_FORWARDING_ROLE = "lab-auditor-change-events"
EVENT_FORWARDING_POLICY = "forward-to-operator-bus"

# The id of the project's target on a change-event rule (the lab accounts' rules and the operator's).
EVENT_TARGET_ID = "lab-auditor-queue"

# The API calls that can change a lab, as CloudTrail names them on the default event bus: every call a
# kind of resource declares as changing one of its findings (auditor/resources/kinds/*.toml).
WATCHED_CALLS: dict[str, tuple[str, ...]] = SHIPPED.watched_calls()


def change_event_pattern(
    sources: Iterable[str] = WATCHED_CALLS, watched: Mapping[str, tuple[str, ...]] = WATCHED_CALLS
) -> dict[str, Any]:
    """The pattern of the watched calls of these sources (all of them by default)."""
    chosen = sorted(set(sources))
    return {
        "source": chosen,
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventName": sorted(name for source in chosen for name in watched[source])},
    }


# The templates below use <origin>, <destination> and <region>; render() fills them in.
_DESTINATION_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::<origin>:root"}, "Action": "sts:AssumeRole"}
    ],
}
_DESTINATION_INLINE: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "S3ListAllMyBuckets", "Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"}
    ],
}
_ORIGIN_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": LAMBDA_SERVICE}, "Action": "sts:AssumeRole"}],
}
_ORIGIN_INLINE: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "stsassumerole",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": f"arn:aws:iam::<destination>:role/{DESTINATION_ROLE}",
            "Condition": {"StringLike": {"aws:UserAgent": LAMBDA_USER_AGENT_PATTERN}},
        },
        {
            "Sid": "logsstreamevent",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:<region>:<origin>:log-group:/aws/lambda/{FUNCTION}*/*",
        },
        {"Sid": "logsgroup", "Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"},
    ],
}


def event_forwarding_trust(account: Any) -> dict[str, Any]:
    """The execution role's trust: EventBridge, for the rules of the role's own account only. `account`
    is the account's id (a CloudFormation reference in the StackSet template)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ThisAccountsRules",
                "Effect": "Allow",
                "Principal": {"Service": EVENTS_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        ],
    }


def event_forwarding_policy(bus_arn: Any) -> dict[str, Any]:
    """The execution role's inline policy: put events on the operator's bus, and nothing else. `bus_arn`
    is the bus's ARN (a CloudFormation reference in the StackSet template)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "OperatorEventBus", "Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn}
        ],
    }


def event_forwarding_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{EVENT_FORWARDING_ROLE}"


# The kinds of resource the lab's spec names (auditor/resources/kinds/), as a resource's key names them.
ROLE_KIND = "role"
INLINE_POLICY_KIND = "inline_policy"
MANAGED_POLICY_KIND = "managed_policy"
PERMISSIONS_BOUNDARY_KIND = "permissions_boundary"
FUNCTION_KIND = "function"
LOG_GROUP_KIND = "log_group"
MARKER_BUCKET_KIND = "marker_bucket"
EVENT_RULE_KIND = "event_rule"
EVENT_ROLE_KIND = "event_role"
TRAIL_KIND = "trail"

# A resource of the lab by the same key as a finding's subject and a provisioner's step: its kind, its
# account, its owner (the role of a policy; the rule's region; the resource's own name otherwise), its name.
ResourceKey: TypeAlias = Subject


@dataclass(frozen=True)
class RoleSpec:
    """A role with its trust policy and its inline policies: a role is created whole."""

    account_id: str
    name: str
    trust_policy: dict[str, Any]
    inline_policies: dict[str, dict[str, Any]]
    # The lab wants none of these; the auditor reports any it finds, the teardown detaches them.
    managed_policy_arns: tuple[str, ...] = ()
    permissions_boundary: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.name}"

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(ROLE_KIND, self.account_id, self.name, self.name)


@dataclass(frozen=True)
class FunctionSpec:
    account_id: str
    region: str
    name: str
    role_arn: str
    runtime: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int = 15
    memory_mb: int = 128

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @property
    def log_group(self) -> str:
        """The name of the log group Lambda writes the function's logs to."""
        return f"/aws/lambda/{self.name}"

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(FUNCTION_KIND, self.account_id, self.name, self.name)


@dataclass(frozen=True)
class LogGroupSpec:
    """The function's log group, with the retention of `[lab] log_retention_days`."""

    account_id: str
    region: str
    name: str
    retention_days: int

    @property
    def arn(self) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{self.name}"

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(LOG_GROUP_KIND, self.account_id, self.name, self.name)


@dataclass(frozen=True)
class BucketSpec:
    account_id: str
    region: str
    name: str

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(MARKER_BUCKET_KIND, self.account_id, self.name, self.name)


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule in a lab account that sends the lab's change events to the operator's queue."""

    account_id: str
    region: str  # us-east-1 for IAM's events, the lab's region for Lambda's (one rule where both meet)
    name: str
    pattern: dict[str, Any]
    # None when change events are off: the rule is then only named, so that teardown can find it.
    target_arn: str | None

    @property
    def target_region(self) -> str | None:
        """The Region of the bus it sends to (None: it sends nowhere)."""
        return self.target_arn.split(":")[3] if self.target_arn else None

    @property
    def crosses_regions(self) -> bool:
        """Whether it sends to a bus in another Region: AWS delivers there only through an execution role."""
        return self.target_region is not None and self.target_region != self.region

    @property
    def role_arn(self) -> str | None:
        """Its target's execution role: the account's forwarding role when it crosses Regions, else none."""
        return event_forwarding_role_arn(self.account_id) if self.crosses_regions else None

    @property
    def key(self) -> ResourceKey:
        # Its owner is its region: the same rule name lives in each region it is needed in.
        return ResourceKey(EVENT_RULE_KIND, self.account_id, self.region, self.name)


@dataclass(frozen=True)
class EventRoleSpec:
    """The execution role of a lab account's change-event rules (EVENT_FORWARDING_ROLE), with its trust and
    its one inline policy: wanted where a rule of the account sends to the operator's bus in another Region."""

    account_id: str
    name: str
    # None when no rule of the account crosses Regions: the role is then only named, so that teardown can
    # find one left from before (a class once in another Region, or rolled out with the StackSet template).
    bus_arn: str | None

    @property
    def wanted(self) -> bool:
        return self.bus_arn is not None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.name}"

    @property
    def trust_policy(self) -> dict[str, Any]:
        return event_forwarding_trust(self.account_id)

    @property
    def inline_policies(self) -> dict[str, dict[str, Any]]:
        """Its inline policy by name (none when it is only named)."""
        return {EVENT_FORWARDING_POLICY: event_forwarding_policy(self.bus_arn)} if self.wanted else {}

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(EVENT_ROLE_KIND, self.account_id, self.name, self.name)


class Keyed(Protocol):
    @property
    def key(self) -> ResourceKey: ...


@dataclass(frozen=True)
class LabShape:
    """What rendering a lab takes, with nothing left to look up: its configuration, the class's settings
    and the values resolved beforehand (the operator's event bus, None without [events] or while unknown)."""

    lab: LabConfig
    settings: LabSettings
    events_target_arn: str | None = None

    @property
    def origin(self) -> str:
        return self.lab.origin.account_id

    @property
    def destination(self) -> str:
        return self.lab.destination.account_id

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def placeholders(self) -> dict[str, str]:
        return {"origin": self.origin, "destination": self.destination, "region": self.region}


# A kind of resource's expected entries of one lab (pure).
Renderer = Callable[[LabShape], Mapping[ResourceKey, Any]]


@dataclass(frozen=True)
class ExpectedLab:
    """Everything one lab instance must consist of, with account ids and region filled in: its resources
    by key, as the kinds of resource render them; the accessors name the lab's own resources."""

    name: str
    region: str
    origin_account: str
    destination_account: str
    resources: Mapping[ResourceKey, Any]
    tags: dict[str, str] = field(default_factory=dict)
    # Each kind's resources, worked out once (`resources` never changes): a judgement asks many times.
    _by_kind: dict[str, list[Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def tag_list(self) -> list[dict[str, str]]:
        """The lab's tags as IAM, S3 and EventBridge take them: `[{"Key": ..., "Value": ...}]`."""
        return [{"Key": key, "Value": value} for key, value in self.tags.items()]

    def of_kind(self, kind: str) -> list[Any]:
        """The expected resources of one kind, in the order they were rendered."""
        if kind not in self._by_kind:
            self._by_kind[kind] = [value for key, value in self.resources.items() if key.kind == kind]
        return list(self._by_kind[kind])

    @property
    def destination_role(self) -> RoleSpec:
        return self._role(self.destination_account, DESTINATION_ROLE)

    @property
    def origin_role(self) -> RoleSpec:
        return self._role(self.origin_account, ORIGIN_ROLE)

    @property
    def roles(self) -> tuple[RoleSpec, RoleSpec]:
        """The destination role first: the origin role's policy names it."""
        return (self.destination_role, self.origin_role)

    @property
    def function(self) -> FunctionSpec:
        return self._only(FUNCTION_KIND)

    @property
    def log_group(self) -> LogGroupSpec:
        return self._only(LOG_GROUP_KIND)

    @property
    def marker_bucket(self) -> BucketSpec:
        return self._only(MARKER_BUCKET_KIND)

    @property
    def event_rules(self) -> tuple[EventRuleSpec, ...]:
        return tuple(self.of_kind(EVENT_RULE_KIND))

    @property
    def event_roles(self) -> tuple[EventRoleSpec, ...]:
        return tuple(self.of_kind(EVENT_ROLE_KIND))

    def _role(self, account_id: str, name: str) -> RoleSpec:
        return self.resources[ResourceKey(ROLE_KIND, account_id, name, name)]

    def _only(self, kind: str) -> Any:
        [value] = self.of_kind(kind)
        return value


def marker_bucket_name(destination_account: str, region: str) -> str:
    # Bucket names are global: the account and region make it unique and recognisable.
    return f"lab-auditor-marker-{destination_account}-{region}"


def _fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        for placeholder, value in values.items():
            template = template.replace(f"<{placeholder}>", value)
        return template
    if isinstance(template, list):
        return [_fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    return template


def keyed(*specs: Keyed) -> dict[ResourceKey, Any]:
    return {spec.key: spec for spec in specs}


# ------------------------------------------------------------------- each kind's expected resources


def destination_role_spec(shape: LabShape) -> RoleSpec:
    values = shape.placeholders
    return RoleSpec(
        account_id=shape.destination,
        name=DESTINATION_ROLE,
        trust_policy=_fill(_DESTINATION_TRUST, values),
        inline_policies={DESTINATION_POLICY: _fill(_DESTINATION_INLINE, values)},
    )


def origin_role_spec(shape: LabShape) -> RoleSpec:
    values = shape.placeholders
    return RoleSpec(
        account_id=shape.origin,
        name=ORIGIN_ROLE,
        trust_policy=_fill(_ORIGIN_TRUST, values),
        inline_policies={ORIGIN_POLICY: _fill(_ORIGIN_INLINE, values)},
    )


def function_spec(shape: LabShape) -> FunctionSpec:
    return FunctionSpec(
        account_id=shape.origin,
        region=shape.region,
        name=FUNCTION,
        role_arn=origin_role_spec(shape).arn,
        runtime=shape.settings.runtime,
        handler=HANDLER,
        environment={ROLE_ARN_VARIABLE: destination_role_spec(shape).arn},
    )


def log_group_spec(shape: LabShape) -> LogGroupSpec:
    return LogGroupSpec(
        shape.origin, shape.region, function_spec(shape).log_group, shape.settings.log_retention_days
    )


def marker_bucket_spec(shape: LabShape) -> BucketSpec:
    return BucketSpec(shape.destination, shape.region, marker_bucket_name(shape.destination, shape.region))


def event_rule_specs(shape: LabShape) -> tuple[EventRuleSpec, ...]:
    """One rule per (account, region) that sees the lab's changes: IAM's calls in us-east-1 for both
    accounts (both hold a role), Lambda's in the lab's region for the origin (it holds the function)."""
    sources: dict[tuple[str, str], list[str]] = {}
    for account in dict.fromkeys((shape.origin, shape.destination)):
        sources.setdefault((account, IAM_EVENTS_REGION), []).append("aws.iam")
    sources.setdefault((shape.origin, shape.region), []).append("aws.lambda")
    return tuple(
        EventRuleSpec(account, rule_region, EVENT_RULE, change_event_pattern(chosen), shape.events_target_arn)
        for (account, rule_region), chosen in sources.items()
    )


def event_role_specs(shape: LabShape) -> tuple[EventRoleSpec, ...]:
    """The forwarding role of each lab account: wanted (with the operator's bus) where a rule of the
    account crosses Regions, only named elsewhere."""
    crossing = {rule.account_id for rule in event_rule_specs(shape) if rule.crosses_regions}
    return tuple(
        EventRoleSpec(
            account, EVENT_FORWARDING_ROLE, shape.events_target_arn if account in crossing else None
        )
        for account in dict.fromkeys((shape.origin, shape.destination))
    )


def render_roles(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(destination_role_spec(shape), origin_role_spec(shape))


def render_function(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(function_spec(shape))


def render_log_group(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(log_group_spec(shape))


def render_marker_bucket(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(marker_bucket_spec(shape))


def render_event_rules(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(*event_rule_specs(shape))


def render_event_roles(shape: LabShape) -> dict[ResourceKey, Any]:
    return keyed(*event_role_specs(shape))


# The shipped kinds' renderers, in the kinds' order (the registry's `render` assembles the same map from
# its kinds, each of which renders with one of these; a test keeps the two equal).
SHIPPED_RENDERERS: tuple[Renderer, ...] = (
    render_roles,
    render_function,
    render_log_group,
    render_marker_bucket,
    render_event_roles,
    render_event_rules,
)


def assemble(shape: LabShape, renderers: Iterable[Renderer]) -> ExpectedLab:
    """The lab of this shape with the resources each renderer gives (pure)."""
    resources: dict[ResourceKey, Any] = {}
    for render_kind in renderers:
        resources.update(render_kind(shape))
    return ExpectedLab(
        name=shape.lab.name,
        region=shape.region,
        origin_account=shape.origin,
        destination_account=shape.destination,
        resources=resources,
        tags={PROJECT_TAG: "true", LAB_TAG: shape.lab.name},
    )


def render(lab: LabConfig, settings: LabSettings, events_target_arn: str | None = None) -> ExpectedLab:
    """The lab spec for one account pair (pure): the shipped kinds' resources."""
    return assemble(LabShape(lab, settings, events_target_arn), SHIPPED_RENDERERS)
