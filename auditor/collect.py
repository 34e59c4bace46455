"""Fetch the actual state of a lab into plain values. The only part of the audit that talks to AWS.

Missing resources are values (`exists=False`), not errors. Few requests: a role costs GetRole,
ListRolePolicies, one GetRolePolicy per inline policy and ListAttachedRolePolicies; managed policy
and boundary documents are fetched only when something is attached (which is drift anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from auditor.accounts import AccountSessions
from auditor.config import AccountAccess
from auditor.spec import EventRuleSpec, ExpectedLab, FunctionSpec, RoleSpec

_NOT_FOUND = {"NoSuchEntity", "ResourceNotFoundException", "404", "NoSuchBucket", "NotFound"}


def is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _NOT_FOUND


@dataclass(frozen=True)
class ActualRole:
    account_id: str
    name: str
    exists: bool
    arn: str = ""
    unique_id: str = ""
    trust_policy: Any = None
    inline_policies: dict[str, Any] = field(default_factory=dict)
    # ARN -> default version document (None when it could not be read)
    managed_policies: dict[str, Any] = field(default_factory=dict)
    boundary_arn: str | None = None
    boundary_policy: Any = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActualFunction:
    name: str
    exists: bool
    arn: str = ""
    role: str = ""
    runtime: str = ""
    handler: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    code_sha256: str = ""
    state: str = ""
    timeout: int = 0
    memory: int = 0
    code_location: str = ""


@dataclass(frozen=True)
class ActualBucket:
    name: str
    exists: bool


@dataclass(frozen=True)
class ActualLogGroup:
    name: str
    exists: bool
    retention_days: int | None = None


@dataclass(frozen=True)
class ActualEventRule:
    account_id: str
    name: str
    exists: bool
    pattern: Any = None
    target_arns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActualLab:
    destination_role: ActualRole
    origin_role: ActualRole
    function: ActualFunction
    marker_bucket: ActualBucket
    log_group: ActualLogGroup | None = None
    event_rules: tuple[ActualEventRule, ...] = ()

    @property
    def roles(self) -> tuple[ActualRole, ActualRole]:
        return (self.destination_role, self.origin_role)


def collect_role(iam: Any, spec: RoleSpec) -> ActualRole:
    try:
        role = iam.get_role(RoleName=spec.name)["Role"]
    except ClientError as error:
        if is_not_found(error):
            return ActualRole(spec.account_id, spec.name, exists=False)
        raise
    boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    return ActualRole(
        account_id=spec.account_id,
        name=spec.name,
        exists=True,
        arn=role["Arn"],
        unique_id=role.get("RoleId", ""),
        trust_policy=role.get("AssumeRolePolicyDocument"),
        inline_policies=_inline_policies(iam, spec.name),
        managed_policies={arn: _policy_document(iam, arn) for arn in _attached_policy_arns(iam, spec.name)},
        boundary_arn=boundary_arn,
        boundary_policy=_policy_document(iam, boundary_arn) if boundary_arn else None,
        tags={tag["Key"]: tag["Value"] for tag in role.get("Tags", [])},
    )


def _inline_policies(iam: Any, role_name: str) -> dict[str, Any]:
    names: list[str] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        names.extend(page["PolicyNames"])
    documents = {}
    for name in names:
        try:
            documents[name] = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        except ClientError as error:
            if not is_not_found(error):  # deleted between the two calls
                raise
    return documents


def _attached_policy_arns(iam: Any, role_name: str) -> list[str]:
    arns: list[str] = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        arns.extend(policy["PolicyArn"] for policy in page["AttachedPolicies"])
    return arns


def _policy_document(iam: Any, arn: str) -> Any:
    try:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def collect_function(lambda_client: Any, spec: FunctionSpec) -> ActualFunction:
    try:
        answer = lambda_client.get_function(FunctionName=spec.name)
    except ClientError as error:
        if is_not_found(error):
            return ActualFunction(spec.name, exists=False)
        raise
    config = answer["Configuration"]
    return ActualFunction(
        name=spec.name,
        exists=True,
        arn=config.get("FunctionArn", ""),
        role=config.get("Role", ""),
        runtime=config.get("Runtime", ""),
        handler=config.get("Handler", ""),
        environment=dict((config.get("Environment") or {}).get("Variables") or {}),
        code_sha256=config.get("CodeSha256", ""),
        state=config.get("State", ""),
        timeout=int(config.get("Timeout", 0)),
        memory=int(config.get("MemorySize", 0)),
        code_location=(answer.get("Code") or {}).get("Location", ""),
    )


def collect_bucket(s3: Any, name: str) -> ActualBucket:
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if is_not_found(error):
            return ActualBucket(name, exists=False)
        raise
    return ActualBucket(name, exists=True)


def collect_log_group(logs: Any, name: str) -> ActualLogGroup:
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    for group in groups:
        if group["logGroupName"] == name:
            return ActualLogGroup(name, True, group.get("retentionInDays"))
    return ActualLogGroup(name, exists=False)


def collect_event_rule(events: Any, spec: EventRuleSpec) -> ActualEventRule:
    try:
        rule = events.describe_rule(Name=spec.name)
    except ClientError as error:
        if is_not_found(error):
            return ActualEventRule(spec.account_id, spec.name, exists=False)
        raise
    targets = events.list_targets_by_rule(Rule=spec.name).get("Targets", [])
    return ActualEventRule(
        spec.account_id,
        spec.name,
        exists=True,
        pattern=json.loads(rule.get("EventPattern") or "null"),
        target_arns=tuple(sorted(target["Arn"] for target in targets)),
    )


def collect_lab(
    sessions: AccountSessions,
    expected: ExpectedLab,
    origin: AccountAccess,
    destination: AccountAccess,
    *,
    with_log_group: bool = False,
    with_event_rules: bool = False,
) -> ActualLab:
    """Everything the spec names, as it is now (the log group and event rules only for the provisioner)."""
    origin_iam = sessions.client(origin, "iam")

    def account(account_id: str) -> AccountAccess:
        return origin if account_id == origin.account_id else destination

    return ActualLab(
        destination_role=collect_role(sessions.client(destination, "iam"), expected.destination_role),
        origin_role=collect_role(origin_iam, expected.origin_role),
        function=collect_function(sessions.client(origin, "lambda"), expected.function),
        marker_bucket=collect_bucket(sessions.client(destination, "s3"), expected.marker_bucket.name),
        log_group=(
            collect_log_group(sessions.client(origin, "logs"), expected.function.log_group)
            if with_log_group
            else None
        ),
        event_rules=tuple(
            collect_event_rule(sessions.client(account(rule.account_id), "events"), rule)
            for rule in expected.event_rules
        )
        if with_event_rules
        else (),
    )
