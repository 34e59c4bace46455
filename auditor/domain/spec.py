"""The lab of lab.md as data: one declarative description, rendered per lab.

The provisioner builds from it, the auditor compares with it, the teardown removes exactly what it
names. No resource name or policy document is written anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.domain.config import LabConfig, LabSettings
from auditor.domain.declarations import SHIPPED

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


@dataclass(frozen=True)
class RoleSpec:
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
    log_retention_days: int = 7

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True)
class BucketSpec:
    account_id: str
    region: str
    name: str


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule in a lab account that sends the lab's change events to the operator's queue."""

    account_id: str
    region: str  # us-east-1 for IAM's events, the lab's region for Lambda's (one rule where both meet)
    name: str
    pattern: dict[str, Any]
    # None when change events are off: the rule is then only named, so that teardown can find it.
    target_arn: str | None


@dataclass(frozen=True)
class ExpectedLab:
    """Everything one lab instance must consist of, with account ids and region filled in."""

    name: str
    region: str
    origin_account: str
    destination_account: str
    destination_role: RoleSpec
    origin_role: RoleSpec
    function: FunctionSpec
    marker_bucket: BucketSpec
    tags: dict[str, str] = field(default_factory=dict)
    event_rules: tuple[EventRuleSpec, ...] = ()

    @property
    def roles(self) -> tuple[RoleSpec, RoleSpec]:
        return (self.destination_role, self.origin_role)


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


def render(lab: LabConfig, settings: LabSettings, events_target_arn: str | None = None) -> ExpectedLab:
    """The lab spec for one account pair (pure)."""
    origin, destination, region = lab.origin.account_id, lab.destination.account_id, settings.region
    values = {"origin": origin, "destination": destination, "region": region}
    destination_role = RoleSpec(
        account_id=destination,
        name=DESTINATION_ROLE,
        trust_policy=_fill(_DESTINATION_TRUST, values),
        inline_policies={DESTINATION_POLICY: _fill(_DESTINATION_INLINE, values)},
    )
    origin_role = RoleSpec(
        account_id=origin,
        name=ORIGIN_ROLE,
        trust_policy=_fill(_ORIGIN_TRUST, values),
        inline_policies={ORIGIN_POLICY: _fill(_ORIGIN_INLINE, values)},
    )
    function = FunctionSpec(
        account_id=origin,
        region=region,
        name=FUNCTION,
        role_arn=origin_role.arn,
        runtime=settings.runtime,
        handler=HANDLER,
        environment={ROLE_ARN_VARIABLE: destination_role.arn},
        log_retention_days=settings.log_retention_days,
    )
    return ExpectedLab(
        name=lab.name,
        region=region,
        origin_account=origin,
        destination_account=destination,
        destination_role=destination_role,
        origin_role=origin_role,
        function=function,
        marker_bucket=BucketSpec(destination, region, marker_bucket_name(destination, region)),
        tags={PROJECT_TAG: "true", LAB_TAG: lab.name},
        event_rules=_event_rules(origin, destination, region, events_target_arn),
    )


def _event_rules(
    origin: str, destination: str, region: str, target_arn: str | None
) -> tuple[EventRuleSpec, ...]:
    """One rule per (account, region) that sees the lab's changes: IAM's calls in us-east-1 for both
    accounts (both hold a role), Lambda's in the lab's region for the origin (it holds the function)."""
    sources: dict[tuple[str, str], list[str]] = {}
    for account in dict.fromkeys((origin, destination)):
        sources.setdefault((account, IAM_EVENTS_REGION), []).append("aws.iam")
    sources.setdefault((origin, region), []).append("aws.lambda")
    return tuple(
        EventRuleSpec(account, rule_region, EVENT_RULE, change_event_pattern(chosen), target_arn)
        for (account, rule_region), chosen in sources.items()
    )
