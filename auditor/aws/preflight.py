"""What `auditor doctor` reads of AWS before a class, as plain values: where the operator's credentials
come from, AWS's clock, a role's policy documents, the IAM policy simulator's decisions, and the
operator's side of the change events. Reads only: nothing here changes an account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from auditor.aws.accounts import OPERATOR, AccountSessions
from auditor.aws.events import DEFAULT_QUEUE_NAME, QUEUE_SID, admitted_accounts
from auditor.common.errors import is_not_found
from auditor.domain.config import EventsSettings
from auditor.domain.spec import EVENT_RULE, EVENT_TARGET_ID

# ----------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class CredentialSource:
    """Where botocore finds the operator's credentials, as its credential chain says."""

    method: (
        str | None
    )  # botocore's name: "env", "sso", "shared-credentials-file", "iam-role", ...; None: none
    profile: str | None  # the profile named (AWS_PROFILE), if any
    problem: str | None = None  # why the chain stopped (a profile that is not there, a broken file)


def credential_source() -> CredentialSource:
    """The operator's credentials as botocore resolves them for a new session (nothing is signed)."""
    session = botocore.session.Session()
    profile = session.get_config_variable("profile")
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:
        return CredentialSource(None, profile, str(error))
    return CredentialSource(getattr(credentials, "method", None) if credentials else None, profile)


# ------------------------------------------------------------------------------------------- clock


def aws_clock(endpoint_url: str | None, region: str, timeout: float) -> datetime | None:
    """The Date header of an answer of STS, asked without signing, so that neither a skewed clock nor
    missing credentials keep it from answering (with an error, whose Date is as good). None when
    nothing answered, or without a Date."""
    seen: list[str] = []

    def keep_date(response_dict: Mapping[str, Any] | None = None, **_: Any) -> None:
        headers = (response_dict or {}).get("headers") or {}
        date = headers.get("Date") or headers.get("date")
        if date:
            seen.append(str(date))

    try:
        session = botocore.session.Session()
        session.set_config_variable("profile", None)  # nothing of a profile is needed, nor may break it
        sts = session.create_client(
            "sts",
            region_name=region,
            endpoint_url=endpoint_url,
            config=BotoConfig(
                signature_version=UNSIGNED,
                retries={"total_max_attempts": 1},
                connect_timeout=timeout,
                read_timeout=timeout,
            ),
        )
        sts.meta.events.register("before-parse.sts.GetCallerIdentity", keep_date)
        sts.get_caller_identity()
    except Exception:
        pass
    if not seen:
        return None
    try:
        return parsedate_to_datetime(seen[0])
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class RoleDocuments:
    """A role's trust policy, its permission policies (inline, and each attached managed policy's
    default version) and its permissions boundary, as IAM holds them."""

    arn: str
    trust: Any
    permissions: tuple[Any, ...]
    boundary: Any | None


def role_name_of(role_arn: str) -> str:
    """The role's name: the last segment of its ARN (a path may come before it)."""
    return role_arn.rsplit("/", 1)[-1]


def role_documents(iam: Any, role_arn: str) -> RoleDocuments | None:
    """The role's documents, read with `iam` (a client of the role's account); None if it is not there."""
    name = role_name_of(role_arn)
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    inline = [
        iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
        for policy in page["PolicyNames"]
    ]
    attached = [
        _managed_document(iam, policy["PolicyArn"])
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
        for policy in page["AttachedPolicies"]
    ]
    boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    boundary = _managed_document(iam, boundary_arn) if boundary_arn else None
    return RoleDocuments(role["Arn"], role["AssumeRolePolicyDocument"], (*inline, *attached), boundary)


def _managed_document(iam: Any, policy_arn: str) -> Any:
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"]


# -------------------------------------------------------------------------------------- simulator


class NoSimulator(Exception):
    """The endpoint has no IAM policy simulator (moto answers SimulatePrincipalPolicy with an error)."""


# What an emulator answers for an operation it does not have: in process, moto raises
# NotImplementedError; its server answers HTTP 500 with a page botocore cannot parse.
_NOT_THERE_CODES = {"NotImplemented", "InternalFailure", "InternalError", "500"}


def simulated_decisions(
    iam: Any, principal_arn: str, requests: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """IAM's decision ("allowed", "explicitDeny", "implicitDeny") for each (action, resource), from
    SimulatePrincipalPolicy on the principal: its identity policies, boundary and the organization's
    SCPs, as IAM evaluates them. One simulation a resource, with every action asked on it.

    Raises NoSimulator when the endpoint has none, ClientError when IAM refuses (AccessDenied: the
    principal may not simulate itself)."""
    by_resource: dict[str, list[str]] = {}
    for action, resource in requests:
        by_resource.setdefault(resource, []).append(action)
    decisions: dict[tuple[str, str], str] = {}
    for resource, actions in by_resource.items():
        for result in _simulate(iam, principal_arn, sorted(set(actions)), resource):
            decisions[(result["EvalActionName"], resource)] = str(result["EvalDecision"])
    return decisions


def _simulate(iam: Any, principal_arn: str, actions: list[str], resource: str) -> list[dict[str, Any]]:
    try:
        pages = iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal_arn, ActionNames=actions, ResourceArns=[resource]
        )
        return [result for page in pages for result in page["EvaluationResults"]]
    except NotImplementedError:
        raise NoSimulator("the endpoint has no IAM policy simulator") from None
    except ResponseParserError:
        raise NoSimulator("the endpoint answered the policy simulator with no IAM answer") from None
    except ClientError as error:
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NOT_THERE_CODES or status in _NOT_THERE_CODES:
            raise NoSimulator(f"the endpoint has no IAM policy simulator ({code or status})") from None
        raise


# ---------------------------------------------------------------------------- the operator's side


@dataclass(frozen=True)
class OperatorWiring:
    """The operator's side of the change events as found (auditor/aws/events.py wires it)."""

    queue_url: str | None  # None: no queue found (or none configured on real AWS)
    queue_arn: str | None = None
    queue_admits_rule: bool = False  # the queue's policy has the project's statement for the rule
    rule_exists: bool = False  # the operator's rule on its default bus
    rule_targets_queue: bool = False
    admitted: frozenset[str] = frozenset()  # the lab accounts the bus's policy admits


def operator_wiring(
    settings: EventsSettings, sessions: AccountSessions, endpoint_url: str | None
) -> OperatorWiring:
    """Reads the queue, the operator's rule and the bus's policy; creates nothing (on an emulator with no
    queue configured, the one `auditor provision` makes is looked up by its name)."""
    sqs = sessions.client(OPERATOR, "sqs")
    url = settings.queue_url or _default_queue(sqs, endpoint_url)
    if not url:
        return OperatorWiring(None)
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "Policy"])[
            "Attributes"
        ]
    except ClientError as error:
        if _queue_missing(error):
            return OperatorWiring(None)
        raise
    events = sessions.client(OPERATOR, "events")
    rule_exists, targets = _operator_rule(events)
    return OperatorWiring(
        url,
        attributes["QueueArn"],
        queue_admits_rule=_has_statement(attributes.get("Policy"), QUEUE_SID),
        rule_exists=rule_exists,
        rule_targets_queue=any(
            target.get("Id") == EVENT_TARGET_ID and target.get("Arn") == attributes["QueueArn"]
            for target in targets
        ),
        admitted=frozenset(admitted_accounts(events.describe_event_bus(Name="default").get("Policy"))),
    )


def _default_queue(sqs: Any, endpoint_url: str | None) -> str | None:
    if not endpoint_url:
        return None  # real AWS: [events] queue_url is required
    try:
        return str(sqs.get_queue_url(QueueName=DEFAULT_QUEUE_NAME)["QueueUrl"])
    except ClientError as error:
        if _queue_missing(error):
            return None
        raise


def _queue_missing(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return is_not_found(error) or code in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def _operator_rule(events: Any) -> tuple[bool, list[dict[str, Any]]]:
    try:
        events.describe_rule(Name=EVENT_RULE)
    except ClientError as error:
        if is_not_found(error):
            return False, []
        raise
    return True, list(events.list_targets_by_rule(Rule=EVENT_RULE).get("Targets", []))


def _has_statement(policy: str | None, sid: str) -> bool:
    if not policy:
        return False
    statements = json.loads(policy).get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    return any(statement.get("Sid") == sid for statement in statements)
