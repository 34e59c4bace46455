"""The least-privilege policies the auditor needs, built from the API calls the code declares.

`API_CALLS` names every AWS API operation the code makes (service and operation as botocore names them:
what `AccountSessions.calls` counts), the IAM actions each one needs, on which resources, who makes it
(the role in a lab account, or the operator's own credentials) and which part of the program makes it.
Each kind of resource declares its own calls (auditor/resources/kinds/), auditor/resources/support.py
the others; the policies printed by `auditor permissions` are built from them and nothing else.

tests/test_permissions.py keeps the declarations true: it provisions, drifts, audits and tears down labs
on moto and fails on a call nothing declares, or on a declared call the code no longer makes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from auditor.domain.config import ACCOUNT_ID_PATTERN, EXTERNAL_ID_PATTERN
from auditor.resources.base import ApiCall, Caller, Coverage, Scope
from auditor.resources.registry import REGISTRY, Registry

# The role the auditor assumes in each lab account (the role_arn of each account in the configuration):
# a dedicated role holding lab_account_policy(), rather than an administrator role such as
# OrganizationAccountAccessRole.
ACCESS_ROLE = "LabAuditorAccess"

POLICY_VERSION = "2012-10-17"
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_QUEUE_NAME = re.compile(r"^[\w-]{1,80}(\.fifo)?$")


# Every call the program makes: the kinds of resource declare theirs, auditor/resources/support.py the rest.
API_CALLS: tuple[ApiCall, ...] = REGISTRY.api_calls()


def calls_by(
    caller: Caller, *, on_real_aws: bool = True, registry: Registry = REGISTRY
) -> tuple[ApiCall, ...]:
    """The calls made with `caller`'s credentials; on real AWS, without the emulator-only ones."""
    return tuple(
        call
        for call in registry.api_calls()
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


def lab_account_policy(registry: Registry = REGISTRY) -> dict[str, Any]:
    """The permissions policy of the role the auditor assumes in every lab account."""
    return _policy(calls_by(Caller.LAB_ACCOUNT, registry=registry))


def operator_policy(
    operator_account_id: str | None = None,
    *,
    access_role: str = ACCESS_ROLE,
    queue_arn: str | None = None,
    registry: Registry = REGISTRY,
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
    return _policy(calls_by(Caller.OPERATOR, registry=registry), values)


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


@dataclass(frozen=True)
class PolicyDocument:
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
    registry: Registry = REGISTRY,
) -> list[PolicyDocument]:
    scoped = "the queue given" if queue_arn else f"any queue of account {operator_account_id}"
    return [
        PolicyDocument(
            "lab_account_policy",
            "Lab account permissions",
            f"Attach to the role {access_role} in every lab account: what provision, audit, invoke, "
            "teardown and the change events call there, on the lab's own resources only.",
            lab_account_policy(registry),
        ),
        PolicyDocument(
            "lab_account_trust_policy",
            "Lab account trust",
            f"The trust policy of {access_role} in every lab account: account {operator_account_id} may "
            + ("assume it with the external id." if external_id else "assume it (no external id)."),
            lab_account_trust_policy(operator_account_id, external_id),
        ),
        PolicyDocument(
            "operator_policy",
            "Operator permissions",
            f"For the operator's own credentials in account {operator_account_id}: assume {access_role} "
            f"in the lab accounts, wire the change-event rule and read change events from {scoped} "
            "(accounts reached with the operator's credentials directly need the lab account permissions too).",
            operator_policy(
                operator_account_id, access_role=access_role, queue_arn=queue_arn, registry=registry
            ),
        ),
    ]
