"""The least-privilege policies the auditor needs, built from the API calls the code declares.

`API_CALLS` names every AWS API operation the code makes (service and operation as botocore names them:
what `AccountSessions.calls` counts), the IAM actions each one needs, on which resources, who makes it
(the role in a lab account, or the operator's own credentials) and which part of the program makes it.
Each kind of resource declares its own calls (auditor/resources/kinds/), auditor/resources/support.py
the others; the policies printed by `auditor permissions` are built from them and nothing else.

The policies come in parts (`PolicyPart`): what the always-on daemon does (its audits, the function's
run, its change events and its teardown at expiry: reads, the invoke, and deletes of the lab's named
resources; and `auditor doctor`'s simulation of the role, on itself only, checking the role as the
daemon holds it), and what only `auditor provision` adds (creating and changing the lab's resources,
passing the execution role to the function, and the change-event rules' execution role to
EventBridge). The daemon's part has no way to raise its own privileges: it passes no role, writes no
code and no policy. When students build the lab (`[class] built_by = "students"`) the students'
resources are only read and their function run; the project creates, changes and deletes only its own
parts (`PROJECT_PARTS`).

tests/test_permissions.py keeps the declarations true: it provisions, drifts, audits and tears down labs
on moto and fails on a call nothing declares, or on a declared call the code no longer makes;
tests/test_permissions_reference.py checks every statement against the Service Authorization Reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from auditor.domain.config import ACCOUNT_ID_PATTERN, EXTERNAL_ID_PATTERN
from auditor.domain.spec import EVENT_FORWARDING_ROLE
from auditor.resources.base import (
    ANY_LAB,
    PROJECT_PARTS,
    ApiCall,
    Caller,
    Coverage,
    Grant,
    Part,
    Scope,
)
from auditor.resources.registry import REGISTRY, Registry
from auditor.resources.support import SUPPORT_CALLS

# The role the auditor assumes in each lab account (the role_arn of each account in the configuration):
# a dedicated role holding lab_account_policy(), rather than an administrator role such as
# OrganizationAccountAccessRole.
ACCESS_ROLE = "LabAuditorAccess"
# The role AWS Organizations makes in every member account, with AdministratorAccess.
ORGANIZATIONS_ROLE = "OrganizationAccountAccessRole"

POLICY_VERSION = "2012-10-17"
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_QUEUE_NAME = re.compile(r"^[\w-]{1,80}(\.fifo)?$")


class PolicyPart(StrEnum):
    """Whose access a policy is: `auditor permissions --part`."""

    DAEMON = "daemon"  # the always-on daemon: audits, the function's run, change events, teardown at expiry
    PROVISION = "provision"  # what only `auditor provision` adds to it: creating and changing
    ALL = "all"  # both: one role for everything


# Who builds the labs: `[class] built_by`.
BUILT_BY = ("provisioner", "students")

# The parts of the program the daemon runs: its audits (with the function's run) and its teardown at
# expiry. It never provisions on real AWS (auditor/daemon/service.py, build_labs_never_built).
DAEMON_RUNS = frozenset({Part.AUDIT, Part.INVOKE, Part.TEARDOWN})
# What checks the daemon's role as the daemon holds it (`auditor doctor`): in the daemon's part too.
CHECKS_THE_DAEMON = frozenset({Part.DOCTOR})
# What is done to the students' own resources when they build the lab: read, and their function run.
STUDENTS_RESOURCES_READ = frozenset({Part.AUDIT, Part.INVOKE})


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


# ----------------------------------------------------------------------------------------- the parts


def check_part(part: str) -> PolicyPart:
    try:
        return PolicyPart(part)
    except ValueError:
        raise ValueError(
            f"{part!r} is not a part (one of {', '.join(p.value for p in PolicyPart)})"
        ) from None


def check_built_by(built_by: str) -> str:
    if built_by not in BUILT_BY:
        raise ValueError(f"{built_by!r} is not who builds the labs (one of {', '.join(BUILT_BY)})")
    return built_by


def made_by_the_daemon(call: ApiCall) -> bool:
    """Whether the call is of the daemon's part: the always-on daemon makes it (in its audits, its
    teardown or its event listener), or the doctor does, checking the daemon's role."""
    return bool(call.parts & (DAEMON_RUNS | CHECKS_THE_DAEMON)) or call.coverage is Coverage.DAEMON


def _declared(registry: Registry) -> Iterator[tuple[str | None, ApiCall]]:
    """Every declared call with the kind that declares it (None: the support calls)."""
    yield from ((None, call) for call in SUPPORT_CALLS)
    for kind in registry:
        yield from ((kind.name, call) for call in kind.calls)


def _made_when(kind: str | None, call: ApiCall, built_by: str) -> bool:
    """Whether the program makes the call when `built_by` builds the labs: when students do, it only
    reads their resources and runs their function, and sets up and removes its own parts."""
    if call.coverage is Coverage.STUDENTS:
        return built_by == "students"
    if built_by == "provisioner" or kind is None or kind in PROJECT_PARTS:
        return True
    return bool(call.parts & STUDENTS_RESOURCES_READ)


def api_calls(
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
    *,
    caller: Caller | None = None,
    on_real_aws: bool = True,
    registry: Registry = REGISTRY,
) -> tuple[ApiCall, ...]:
    """The calls of one part of the program (`PolicyPart`), as made when `built_by` builds the labs, by
    `caller` (None: both callers); on real AWS, without the emulator-only ones. The daemon's are every
    call it makes in each lab account (Caller.LAB_ACCOUNT) and with the operator's credentials
    (Caller.OPERATOR); the provision part's are the calls only `auditor provision` makes."""
    chosen = check_part(part)
    check_built_by(built_by)
    return tuple(
        call
        for kind, call in _declared(registry)
        if (caller is None or call.caller is caller)
        and not (on_real_aws and call.coverage is Coverage.EMULATOR)
        and _made_when(kind, call, built_by)
        and (chosen is PolicyPart.ALL or (chosen is PolicyPart.DAEMON) == made_by_the_daemon(call))
    )


def _grants(part: PolicyPart, built_by: str, caller: Caller, registry: Registry) -> list[Grant]:
    """The grants of a part, in the order the table first names them; the provision part without what
    the daemon's already grants (it is added to it)."""
    granted = [
        grant for call in api_calls(part, built_by, caller=caller, registry=registry) for grant in call.grants
    ]
    if part is PolicyPart.PROVISION:
        daemon = api_calls(PolicyPart.DAEMON, built_by, caller=caller, registry=registry)
        held = {grant for call in daemon for grant in call.grants}
        granted = [grant for grant in granted if grant not in held]
    return list(dict.fromkeys(granted))


# -------------------------------------------------------------------------------------------- policies


def _fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _statements(grants: Iterable[Grant], values: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One statement per scope, in the order the grants first name it; actions sorted, de-duplicated."""
    scopes: dict[str, Scope] = {}
    actions: dict[str, set[str]] = {}
    for grant in grants:
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
    return statements


def policy_statements(
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
    caller: Caller = Caller.LAB_ACCOUNT,
    *,
    operator_account: str | None = None,
    access_role: str = ACCESS_ROLE,
    queue_arn: str | None = None,
    registry: Registry = REGISTRY,
) -> list[dict[str, Any]]:
    """The statements of one part's policy for `caller`: of the role in each lab account (the access
    role's own ARN filled in with its name), or of the operator's own credentials (their resources filled
    in with the operator's account, the access role and the queue: any account, any queue of it, when
    not given)."""
    chosen = check_part(part)
    check_built_by(built_by)
    check_access_role(access_role)
    values = {"access_role": access_role}
    if caller is Caller.OPERATOR:
        if operator_account is not None:
            check_account_id(operator_account)
        account = operator_account or "*"
        values |= {"queue_arn": queue_arn or f"arn:aws:sqs:*:{account}:*", "operator_account": account}
    return _statements(_grants(chosen, built_by, caller, registry), values)


def lab_account_policy(
    registry: Registry = REGISTRY,
    *,
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
    access_role: str = ACCESS_ROLE,
) -> dict[str, Any]:
    """The permissions policy of the role `access_role` the auditor assumes in every lab account."""
    return {
        "Version": POLICY_VERSION,
        "Statement": policy_statements(
            part, built_by, Caller.LAB_ACCOUNT, access_role=access_role, registry=registry
        ),
    }


def operator_policy(
    operator_account_id: str | None = None,
    *,
    access_role: str = ACCESS_ROLE,
    queue_arn: str | None = None,
    registry: Registry = REGISTRY,
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
) -> dict[str, Any]:
    """What the operator's own credentials need: assume the access role, wire and read the change events.

    Without `queue_arn`, any queue of the operator's account (of any account, without an account id).
    """
    statements = policy_statements(
        part,
        built_by,
        Caller.OPERATOR,
        operator_account=operator_account_id,
        access_role=access_role,
        queue_arn=queue_arn,
        registry=registry,
    )
    return {"Version": POLICY_VERSION, "Statement": statements}


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


# The roles the policies let the auditor change and delete (the lab's own, and the change-event rules'
# execution role): the access role must be none of them.
LAB_ROLE_NAMES = frozenset((*(role.name for role in ANY_LAB.roles), EVENT_FORWARDING_ROLE))


def check_access_role(name: str) -> None:
    """A role name the auditor may hold: not one of the lab's roles (its policies change those)."""
    check_role_name(name)
    if name in LAB_ROLE_NAMES:
        raise ValueError(
            f"{name!r} is one of the lab's own roles, which the auditor changes and deletes: "
            "name a role of its own (such as LabAuditorAccess)"
        )


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


def _lab_account_explanation(part: PolicyPart, built_by: str, access_role: str) -> str:
    students = built_by == "students"
    if part is PolicyPart.DAEMON:
        return (
            f"Attach to the role {access_role} the daemon assumes in every lab account: what its audits "
            "read, the function's run and its teardown at expiry ("
            + (
                "of the project's own parts: the marker bucket, the event rules and their execution role"
                if students
                else "deletes of the lab's named resources only"
            )
            + "), and `auditor doctor`'s simulation of the role's own policies; nothing that passes a "
            "role or writes code or a policy."
        )
    if part is PolicyPart.PROVISION:
        return f"Add to {access_role} beside the daemon's part, for `auditor provision` only: " + (
            "setting up the project's own parts (the marker bucket, the event rules and their execution "
            "role); nothing of the students'."
            if students
            else "creating and changing the lab's resources, and passing its execution roles to the function "
            "and to EventBridge."
        )
    if students:
        return (
            f"Attach to the role {access_role} in every lab account: the students build the lab, so the "
            "audit only reads their resources and runs their function; the project sets up and removes "
            "only its own parts (the marker bucket, the event rules and their execution role)."
        )
    return (
        f"Attach to the role {access_role} in every lab account: what provision, audit, invoke, "
        "teardown, the change events and the doctor call there, on the lab's own resources only."
    )


def _operator_explanation(
    part: PolicyPart, operator_account_id: str, access_role: str, queue_arn: str | None
) -> str:
    scoped = "the queue given" if queue_arn else f"any queue of account {operator_account_id}"
    what = {
        PolicyPart.DAEMON: f"assume {access_role} in the lab accounts, read change events from {scoped} and, "
        "after a teardown, release the event wiring",
        PolicyPart.PROVISION: "beside the daemon's part, for `auditor provision` only: wire the change-event "
        f"rule to {scoped} and admit the lab accounts to the event bus",
        PolicyPart.ALL: f"assume {access_role} in the lab accounts, wire the change-event rule and read "
        f"change events from {scoped}",
    }[part]
    return (
        f"For the operator's own credentials in account {operator_account_id}: {what} "
        "(accounts reached with the operator's credentials directly need the lab account permissions too)."
    )


def permission_documents(
    operator_account_id: str,
    external_id: str | None,
    *,
    access_role: str = ACCESS_ROLE,
    queue_arn: str | None = None,
    registry: Registry = REGISTRY,
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
) -> list[PolicyDocument]:
    """The three documents of `auditor permissions` for one part."""
    chosen = check_part(part)
    check_built_by(built_by)
    check_access_role(access_role)
    return [
        PolicyDocument(
            "lab_account_policy",
            "Lab account permissions" + ("" if chosen is PolicyPart.ALL else f" ({chosen.value})"),
            _lab_account_explanation(chosen, built_by, access_role),
            lab_account_policy(registry, part=chosen, built_by=built_by, access_role=access_role),
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
            "Operator permissions" + ("" if chosen is PolicyPart.ALL else f" ({chosen.value})"),
            _operator_explanation(chosen, operator_account_id, access_role, queue_arn),
            operator_policy(
                operator_account_id,
                access_role=access_role,
                queue_arn=queue_arn,
                registry=registry,
                part=chosen,
                built_by=built_by,
            ),
        ),
    ]
