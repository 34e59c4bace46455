"""The AWS permissions the auditor needs, declared call by call, and the least-privilege policies built from them.

`API_CALLS` names every AWS API operation the code makes (service and operation as botocore names them:
what `AccountSessions.calls` counts), the IAM actions each one needs, on which resources, who makes it
(the role in a lab account, or the operator's own credentials) and which part of the program makes it.
The policies printed by `auditor permissions` are built from this table and nothing else.

tests/test_permissions.py keeps the table true: it provisions, drifts, audits and tears down labs on moto
and fails on a call the table does not declare, or on a declared call the code no longer makes.

Resources come from the lab spec rendered with wildcards for the account ids and the region, so that the
policies name exactly what the spec names (auditor/spec.py) and no name is written twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import click

from auditor.config import (
    ACCOUNT_ID_PATTERN,
    EXTERNAL_ID_PATTERN,
    AccountAccess,
    LabConfig,
    LabSettings,
    unvalidated,
)
from auditor.spec import EVENT_RULE, render

__all__ = [
    "ACCESS_ROLE",
    "ACCESS_ROLES",
    "API_CALLS",
    "ATTACHED_POLICIES",
    "EVENT_QUEUE",
    "EXECUTION_ROLE",
    "EXECUTION_ROLE_TO_LAMBDA",
    "LAB_EVENT_RULE",
    "LAB_FUNCTION",
    "LAB_LOG_GROUP",
    "LAB_ROLES",
    "MARKER_BUCKET",
    "MARKER_OBJECTS",
    "OPERATOR_EVENT_RULE",
    "OPERATOR_UNSCOPED",
    "UNSCOPED",
    "ApiCall",
    "Caller",
    "Coverage",
    "Grant",
    "Part",
    "Scope",
    "calls_by",
    "check_account_id",
    "check_external_id",
    "check_role_name",
    "lab_account_policy",
    "lab_account_trust_policy",
    "operator_policy",
    "permission_documents",
    "permissions_command",
    "queue_arn_from_url",
]

# The role the auditor assumes in each lab account (the role_arn of each account in the configuration):
# a dedicated role holding lab_account_policy(), rather than an administrator role such as
# OrganizationAccountAccessRole.
ACCESS_ROLE = "LabAuditorAccess"
LAMBDA_SERVICE = "lambda.amazonaws.com"

POLICY_VERSION = "2012-10-17"
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_QUEUE_NAME = re.compile(r"^[\w-]{1,80}(\.fifo)?$")


class Part(StrEnum):
    """The part of the program that makes a call."""

    PROVISION = "provision"
    AUDIT = "audit"
    TEARDOWN = "teardown"
    INVOKE = "invoke"  # the audit's run of the lab's function
    EVENTS = "events"  # the daemon's change events: EventBridge rules in the labs, the operator's SQS queue


class Caller(StrEnum):
    """Whose credentials make the call."""

    LAB_ACCOUNT = "lab account"  # the role assumed in a lab account (or a profile of that account)
    OPERATOR = "operator"  # the operator's own credentials


class Coverage(StrEnum):
    """Where the permissions test sees the call made."""

    MOTO = "moto"  # tests/test_permissions.py runs it on moto: it must be called there
    REAL_AWS = "real AWS"  # only on real AWS (moto cannot run a function here)
    EMULATOR = "emulator"  # only against an emulator endpoint: left out of the real-AWS policies
    DAEMON = "daemon"  # only the daemon's listener makes it


@dataclass(frozen=True)
class Scope:
    """Resources (and a condition) that one policy statement grants its actions on."""

    sid: str
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Grant:
    action: str
    scope: Scope


@dataclass(frozen=True)
class ApiCall:
    """One AWS API operation the code calls, and what it takes to be allowed to."""

    operation: str  # "service:OperationName" as botocore names it, e.g. "s3:HeadBucket"
    grants: tuple[Grant, ...]
    parts: frozenset[Part]
    used_by: str
    caller: Caller = Caller.LAB_ACCOUNT
    coverage: Coverage = Coverage.MOTO

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(grant.action for grant in self.grants)


# ------------------------------------------------------------------------------------------- resources

# The lab spec rendered for any account and any region: its names, with "*" where a lab's own values go.
_ANY_ACCOUNT = unvalidated(AccountAccess, account_id="*")
_ANY_LAB = render(LabConfig("any", _ANY_ACCOUNT, _ANY_ACCOUNT), unvalidated(LabSettings, region="*"))
_FUNCTION = _ANY_LAB.function
_LOG_GROUP_ARN = f"arn:aws:logs:*:*:log-group:{_FUNCTION.log_group}"
_MARKER_BUCKET_ARN = f"arn:aws:s3:::{_ANY_LAB.marker_bucket.name}"

LAB_ROLES = Scope("LabRoles", tuple(role.arn for role in _ANY_LAB.roles))
EXECUTION_ROLE_TO_LAMBDA = Scope(
    "PassExecutionRoleToLambda",
    (_ANY_LAB.origin_role.arn,),
    {"StringEquals": {"iam:PassedToService": LAMBDA_SERVICE}},
)
# Documents of whatever managed policy or boundary a student attached (customer or AWS managed).
ATTACHED_POLICIES = Scope("ReadAttachedPolicies", ("arn:aws:iam::*:policy/*",))
LAB_FUNCTION = Scope("LabFunction", (_FUNCTION.arn,))
LAB_LOG_GROUP = Scope("LabLogGroup", (_LOG_GROUP_ARN, f"{_LOG_GROUP_ARN}:*"))
MARKER_BUCKET = Scope("MarkerBucket", (_MARKER_BUCKET_ARN,))
MARKER_OBJECTS = Scope("MarkerBucketObjects", (f"{_MARKER_BUCKET_ARN}/*",))
LAB_EVENT_RULE = Scope("ChangeEventRule", (f"arn:aws:events:*:*:rule/{EVENT_RULE}",))
# These actions take no resource narrower than "*".
UNSCOPED = Scope("NoResourceLevelPermissions", ("*",))
# Only against an emulator (the local stand-in for the Lambda runtime); never in a real-AWS policy.
EXECUTION_ROLE = Scope("AssumeExecutionRole", (_ANY_LAB.origin_role.arn,))

# Operator scopes: filled in by operator_policy().
ACCESS_ROLES = Scope("AssumeLabAccessRole", ("arn:aws:iam::*:role/{access_role}",))
EVENT_QUEUE = Scope("ChangeEventQueue", ("{queue_arn}",))
OPERATOR_EVENT_RULE = Scope(
    "OperatorChangeEventRule", ("arn:aws:events:*:{operator_account}:rule/" + EVENT_RULE,)
)
OPERATOR_UNSCOPED = Scope("OperatorNoResourceLevelPermissions", ("*",))


def _call(
    operation: str,
    scope: Scope,
    *parts: Part,
    used_by: str,
    also: Iterable[Grant] = (),
    action: str | None = None,
    caller: Caller = Caller.LAB_ACCOUNT,
    coverage: Coverage = Coverage.MOTO,
) -> ApiCall:
    """A call whose IAM action is named like the operation (unless `action` says otherwise)."""
    service, _, name = operation.partition(":")
    grant = Grant(action or f"{service}:{name}", scope)
    return ApiCall(operation, (grant, *also), frozenset(parts), used_by, caller, coverage)


_P, _A, _T, _I, _E = Part.PROVISION, Part.AUDIT, Part.TEARDOWN, Part.INVOKE, Part.EVENTS
_READ = (_P, _A, _T)  # collect_lab: the provisioner and the teardown plan from what the audit reads
_PASS_ROLE = Grant("iam:PassRole", EXECUTION_ROLE_TO_LAMBDA)

API_CALLS: tuple[ApiCall, ...] = (
    # Reaching the accounts ------------------------------------------------------------------------
    _call(
        "sts:AssumeRole",
        ACCESS_ROLES,
        _P,
        _A,
        _T,
        _E,
        caller=Caller.OPERATOR,
        used_by="auditor/accounts.py: refreshable credentials of each lab account's role_arn",
    ),
    _call(
        "sts:GetCallerIdentity",
        UNSCOPED,
        *_READ,
        used_by="auditor/accounts.py verify(): profiles and the operator's own credentials",
    ),
    # Collecting a lab (auditor/collect.py) --------------------------------------------------------
    _call("iam:GetRole", LAB_ROLES, *_READ, used_by="collect_role"),
    _call("iam:ListRolePolicies", LAB_ROLES, *_READ, used_by="collect_role (paginator)"),
    _call("iam:GetRolePolicy", LAB_ROLES, *_READ, used_by="collect_role"),
    _call("iam:ListAttachedRolePolicies", LAB_ROLES, *_READ, used_by="collect_role (paginator)"),
    _call("iam:GetPolicy", ATTACHED_POLICIES, *_READ, used_by="collect_role: an attached policy or boundary"),
    _call(
        "iam:GetPolicyVersion",
        ATTACHED_POLICIES,
        *_READ,
        used_by="collect_role: an attached policy or boundary",
    ),
    _call(
        "lambda:GetFunction",
        LAB_FUNCTION,
        *_READ,
        used_by="collect_function; the provisioner's function_active_v2 and function_updated_v2 waiters",
    ),
    _call("s3:HeadBucket", MARKER_BUCKET, *_READ, action="s3:ListBucket", used_by="collect_bucket"),
    _call("logs:DescribeLogGroups", UNSCOPED, _P, _T, used_by="collect_log_group (provision, teardown)"),
    # Provisioning (provisioner/apply.py) ----------------------------------------------------------
    _call(
        "iam:CreateRole",
        LAB_ROLES,
        _P,
        also=[Grant("iam:TagRole", LAB_ROLES)],
        used_by="_Applier.role (created with tags)",
    ),
    _call("iam:UpdateAssumeRolePolicy", LAB_ROLES, _P, used_by="_Applier.role: restore the trust policy"),
    _call("iam:PutRolePolicy", LAB_ROLES, _P, used_by="_Applier.inline_policy"),
    _call("iam:DeleteRolePolicy", LAB_ROLES, _P, _T, used_by="an inline policy not in the spec; teardown"),
    _call("iam:DetachRolePolicy", LAB_ROLES, _P, _T, used_by="an attached managed policy; teardown"),
    _call(
        "iam:DeleteRolePermissionsBoundary",
        LAB_ROLES,
        _P,
        _T,
        used_by="a permissions boundary; teardown",
    ),
    _call(
        "lambda:CreateFunction",
        LAB_FUNCTION,
        _P,
        also=[Grant("lambda:TagResource", LAB_FUNCTION), _PASS_ROLE],
        used_by="_Applier.function (created with tags, passing the execution role)",
    ),
    _call(
        "lambda:UpdateFunctionConfiguration",
        LAB_FUNCTION,
        _P,
        also=[_PASS_ROLE],
        used_by="_Applier.function (passes the execution role again)",
    ),
    _call("lambda:UpdateFunctionCode", LAB_FUNCTION, _P, used_by="_Applier.function_code"),
    _call(
        "logs:CreateLogGroup",
        LAB_LOG_GROUP,
        _P,
        also=[Grant("logs:TagResource", LAB_LOG_GROUP)],
        used_by="_Applier.log_group (created with tags)",
    ),
    _call("logs:PutRetentionPolicy", LAB_LOG_GROUP, _P, used_by="_Applier.log_group"),
    _call("s3:CreateBucket", MARKER_BUCKET, _P, used_by="_Applier.marker_bucket"),
    _call("s3:PutBucketTagging", MARKER_BUCKET, _P, used_by="_Applier.marker_bucket"),
    # Teardown (provisioner/teardown.py) -----------------------------------------------------------
    _call("lambda:DeleteFunction", LAB_FUNCTION, _T, used_by="_delete"),
    _call("logs:DeleteLogGroup", LAB_LOG_GROUP, _T, used_by="_delete"),
    _call(
        "s3:ListObjectVersions",
        MARKER_BUCKET,
        _T,
        action="s3:ListBucketVersions",
        used_by="_delete_bucket (paginator)",
    ),
    _call(
        "s3:DeleteObjects",
        MARKER_OBJECTS,
        _T,
        action="s3:DeleteObject",
        also=[Grant("s3:DeleteObjectVersion", MARKER_OBJECTS)],
        used_by="_delete_bucket: whatever a student put into the marker bucket, by version",
    ),
    _call("s3:DeleteBucket", MARKER_BUCKET, _T, used_by="_delete_bucket"),
    _call("iam:DeleteRole", LAB_ROLES, _T, used_by="_delete"),
    # Invoking the function (auditor/invoke.py) ----------------------------------------------------
    _call(
        "lambda:Invoke",
        LAB_FUNCTION,
        _I,
        action="lambda:InvokeFunction",
        coverage=Coverage.REAL_AWS,
        used_by="invoke_lambda (moto needs Docker to run a function)",
    ),
    _call(
        "sts:AssumeRole",
        EXECUTION_ROLE,
        _I,
        coverage=Coverage.EMULATOR,
        used_by="invoke_local: the local stand-in runs as the execution role (emulators only)",
    ),
    # Change events: a rule in each lab account forwards to the operator's bus, whose rule fills the queue
    _call(
        "events:DescribeRule",
        LAB_EVENT_RULE,
        _P,
        _T,
        _E,
        used_by="collect_event_rule",
    ),
    _call(
        "events:ListTargetsByRule",
        LAB_EVENT_RULE,
        _P,
        _T,
        _E,
        used_by="collect_event_rule; teardown's _delete_rule",
    ),
    _call(
        "events:PutRule",
        LAB_EVENT_RULE,
        _P,
        _E,
        also=[Grant("events:TagResource", LAB_EVENT_RULE)],
        used_by="_Applier.event_rule (created with tags)",
    ),
    _call("events:PutTargets", LAB_EVENT_RULE, _P, _E, used_by="_Applier.event_rule"),
    _call("events:RemoveTargets", LAB_EVENT_RULE, _T, _E, used_by="_delete_rule"),
    _call("events:DeleteRule", LAB_EVENT_RULE, _T, _E, used_by="_delete_rule"),
    _call(
        "sts:GetCallerIdentity",
        OPERATOR_UNSCOPED,
        _P,
        _E,
        caller=Caller.OPERATOR,
        used_by="auditor/events.py wire_operator_bus: the operator's bus ARN",
    ),
    _call(
        "sqs:GetQueueAttributes",
        EVENT_QUEUE,
        _P,
        _E,
        caller=Caller.OPERATOR,
        used_by="auditor/events.py queue_arn",
    ),
    _call(
        "events:PutRule",
        OPERATOR_EVENT_RULE,
        _P,
        _E,
        caller=Caller.OPERATOR,
        used_by="auditor/events.py wire_operator_bus: the operator's rule",
    ),
    _call(
        "events:PutTargets",
        OPERATOR_EVENT_RULE,
        _P,
        _E,
        caller=Caller.OPERATOR,
        used_by="auditor/events.py wire_operator_bus: the queue as its target",
    ),
    _call(
        "sqs:CreateQueue",
        EVENT_QUEUE,
        _E,
        caller=Caller.OPERATOR,
        coverage=Coverage.EMULATOR,
        used_by="auditor/events.py queue_url: a queue of its own on an emulator",
    ),
    _call(
        "sqs:ReceiveMessage",
        EVENT_QUEUE,
        _E,
        caller=Caller.OPERATOR,
        coverage=Coverage.DAEMON,
        used_by="auditor/events.py EventListener.poll_once",
    ),
    _call(
        "sqs:DeleteMessage",
        EVENT_QUEUE,
        _E,
        caller=Caller.OPERATOR,
        coverage=Coverage.DAEMON,
        used_by="auditor/events.py EventListener.handle",
    ),
)


def calls_by(caller: Caller, *, on_real_aws: bool = True) -> tuple[ApiCall, ...]:
    """The calls made with `caller`'s credentials; on real AWS, without the emulator-only ones."""
    return tuple(
        call
        for call in API_CALLS
        if call.caller is caller and not (on_real_aws and call.coverage is Coverage.EMULATOR)
    )


# -------------------------------------------------------------------------------------------- policies


def _fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _policy(calls: Iterable[ApiCall], values: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One statement per scope, in the order the table first names it; actions sorted, de-duplicated."""
    scopes: dict[str, Scope] = {}
    actions: dict[str, set[str]] = {}
    for call in calls:
        for grant in call.grants:
            scopes.setdefault(grant.scope.sid, grant.scope)
            actions.setdefault(grant.scope.sid, set()).add(grant.action)
    statements: list[dict[str, Any]] = []
    for sid, scope in scopes.items():
        resources = [_fill(resource, values or {}) for resource in scope.resources]
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Allow",
            "Action": sorted(actions[sid]),
            "Resource": resources[0] if len(resources) == 1 else resources,
        }
        if scope.condition:
            statement["Condition"] = {op: dict(keys) for op, keys in scope.condition.items()}
        statements.append(statement)
    return {"Version": POLICY_VERSION, "Statement": statements}


def lab_account_policy() -> dict[str, Any]:
    """The permissions policy of the role the auditor assumes in every lab account."""
    return _policy(calls_by(Caller.LAB_ACCOUNT))


def operator_policy(
    operator_account_id: str | None = None, *, access_role: str = ACCESS_ROLE, queue_arn: str | None = None
) -> dict[str, Any]:
    """What the operator's own credentials need: assume the access role, wire and read the change events.

    Without `queue_arn`, any queue of the operator's account (of any account, without an account id).
    """
    if operator_account_id is not None:
        check_account_id(operator_account_id)
    check_role_name(access_role)
    account = operator_account_id or "*"
    values = {
        "access_role": access_role,
        "queue_arn": queue_arn or f"arn:aws:sqs:*:{account}:*",
        "operator_account": account,
    }
    return _policy(calls_by(Caller.OPERATOR), values)


def lab_account_trust_policy(operator_account_id: str, external_id: str | None) -> dict[str, Any]:
    """The trust policy of the access role in each lab account: the operator's account may assume it."""
    check_account_id(operator_account_id)
    statement: dict[str, Any] = {
        "Sid": "LabAuditorOperator",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{operator_account_id}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        check_external_id(external_id)
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def check_account_id(account_id: str) -> None:
    if not ACCOUNT_ID_PATTERN.match(account_id):
        raise ValueError(f"{account_id!r} is not an AWS account id (12 digits)")


def check_external_id(external_id: str) -> None:
    if not EXTERNAL_ID_PATTERN.match(external_id):
        raise ValueError("an external id is 2 to 1224 characters of letters, digits and +=,.@:/-")


def check_role_name(name: str) -> None:
    if not _ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not an IAM role name (1 to 64 letters, digits and +=,.@_-)")


def queue_arn_from_url(url: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of an SQS queue URL (region "*" when the host names none)."""
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme not in ("http", "https") or len(segments) != 2:
        raise ValueError(
            f"{url!r} is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
        )
    account, name = segments
    check_account_id(account)
    if not _QUEUE_NAME.match(name):
        raise ValueError(f"{name!r} is not an SQS queue name")
    host = (parts.hostname or "").split(".")
    region = "*"
    if len(host) >= 4 and host[0] == "sqs" and host[-2:] == ["amazonaws", "com"]:
        region = host[1]  # sqs.<region>.amazonaws.com
    elif len(host) >= 4 and host[1] == "queue" and host[-2:] == ["amazonaws", "com"]:
        region = host[0]  # the legacy <region>.queue.amazonaws.com
    return f"arn:aws:sqs:{region}:{account}:{name}"


# ---------------------------------------------------------------------------------------------- command


@dataclass(frozen=True)
class _Document:
    name: str
    title: str
    explanation: str
    document: dict[str, Any]


def permission_documents(
    operator_account_id: str,
    external_id: str | None,
    *,
    access_role: str = ACCESS_ROLE,
    queue_arn: str | None = None,
) -> list[_Document]:
    scoped = "the queue given" if queue_arn else f"any queue of account {operator_account_id}"
    return [
        _Document(
            "lab_account_policy",
            "Lab account permissions",
            f"Attach to the role {access_role} in every lab account: what provision, audit, invoke, "
            "teardown and the change events call there, on the lab's own resources only.",
            lab_account_policy(),
        ),
        _Document(
            "lab_account_trust_policy",
            "Lab account trust",
            f"The trust policy of {access_role} in every lab account: account {operator_account_id} may "
            + ("assume it with the external id." if external_id else "assume it (no external id)."),
            lab_account_trust_policy(operator_account_id, external_id),
        ),
        _Document(
            "operator_policy",
            "Operator permissions",
            f"For the operator's own credentials in account {operator_account_id}: assume {access_role} "
            f"in the lab accounts, wire the change-event rule and read change events from {scoped} "
            "(accounts reached with the operator's credentials directly need the lab account permissions too).",
            operator_policy(operator_account_id, access_role=access_role, queue_arn=queue_arn),
        ),
    ]


def _validated(
    check: Callable[[str], object],
) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback from a check: a bad value is a usage error (exit 2); a returned string replaces it."""

    def callback(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            result = check(value)
        except ValueError as error:
            raise click.BadParameter(str(error), context, parameter) from None
        return value if result is None else str(result)

    return callback


@click.command("permissions")
@click.option(
    "--operator-account",
    required=True,
    metavar="ID",
    callback=_validated(check_account_id),
    help="The operator's AWS account id (12 digits): the account trusted to assume the access role.",
)
@click.option(
    "--external-id",
    metavar="TEXT",
    callback=_validated(check_external_id),
    help="Require this external id in the trust policy (the external_id of the configuration).",
)
@click.option(
    "--access-role",
    default=ACCESS_ROLE,
    show_default=True,
    metavar="NAME",
    callback=_validated(check_role_name),
    help="The name of the role the auditor assumes in each lab account.",
)
@click.option(
    "--queue-url",
    "queue_arn",
    metavar="URL",
    callback=_validated(queue_arn_from_url),
    help="The change-event queue ([events] queue_url); default: any queue of the operator's account.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: each document under a one-line explanation; json: one document for scripts.",
)
def permissions_command(
    operator_account: str,
    external_id: str | None,
    access_role: str,
    queue_arn: str | None,
    output_format: str,
) -> None:
    """Print the least-privilege IAM policies the auditor needs, derived from the calls its code makes.

    Three documents: the permissions of the role assumed in each lab account, that role's trust
    policy, and the permissions of the operator's own credentials.

    \b
    Example:
      auditor permissions --operator-account 123456789012 --external-id classroom-2026
      auditor permissions --operator-account 123456789012 --format json > policies.json
    """
    documents = permission_documents(
        operator_account, external_id, access_role=access_role, queue_arn=queue_arn
    )
    if output_format == "json":
        payload = {
            "schema": "auditor.permissions/v1",
            **{d.name: {"explanation": d.explanation, "document": d.document} for d in documents},
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for number, document in enumerate(documents, start=1):
        if number > 1:
            click.echo("")
        click.echo(f"# {number}. {document.title}. {document.explanation}")
        click.echo(json.dumps(document.document, indent=2))
