"""The API calls that belong to no kind of resource: reaching the accounts, running the function, the
doctor's simulation of the lab-account role, and the operator's side of the change events. With the
kinds' own, they are every call the program makes."""

from __future__ import annotations

from auditor.domain.spec import EVENT_RULE
from auditor.resources.base import ANY_LAB, READ, UNSCOPED, ApiCall, Caller, Coverage, Part, Scope, call
from auditor.resources.kinds.function import LAB_FUNCTION

# Only against an emulator (the local stand-in for the Lambda runtime); never in a real-AWS policy.
EXECUTION_ROLE = Scope("AssumeExecutionRole", (ANY_LAB.origin_role.arn,))

# The lab-account role itself (its own ARN, in any lab account): filled in by
# auditor.resources.permissions.lab_account_policy(), and by the StackSet template with the role it makes.
ACCESS_ROLE_ITSELF = Scope("SimulateItself", ("arn:aws:iam::*:role/{access_role}",))

# Operator scopes: filled in by auditor.resources.permissions.operator_policy().
ACCESS_ROLES = Scope("AssumeLabAccessRole", ("arn:aws:iam::*:role/{access_role}",))
EVENT_QUEUE = Scope("ChangeEventQueue", ("{queue_arn}",))
OPERATOR_EVENT_RULE = Scope(
    "OperatorChangeEventRule", ("arn:aws:events:*:{operator_account}:rule/" + EVENT_RULE,)
)
OPERATOR_EVENT_BUS = Scope("OperatorEventBus", ("arn:aws:events:*:{operator_account}:event-bus/default",))
OPERATOR_UNSCOPED = Scope("OperatorNoResourceLevelPermissions", ("*",))

_P, _A, _T, _I, _E, _D = Part.PROVISION, Part.AUDIT, Part.TEARDOWN, Part.INVOKE, Part.EVENTS, Part.DOCTOR
_OPERATOR = Caller.OPERATOR

SUPPORT_CALLS: tuple[ApiCall, ...] = (
    # Reaching the accounts ------------------------------------------------------------------------
    call(
        "sts:AssumeRole",
        ACCESS_ROLES,
        _P,
        _A,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/accounts.py: refreshable credentials of each lab account's role_arn",
    ),
    call(
        "sts:GetCallerIdentity",
        UNSCOPED,
        *READ,
        used_by="auditor/aws/accounts.py verify(): profiles and the operator's own credentials",
    ),
    # Invoking the function (auditor/aws/invoke.py) ----------------------------------------------------
    call(
        "lambda:Invoke",
        LAB_FUNCTION,
        _I,
        action="lambda:InvokeFunction",
        coverage=Coverage.REAL_AWS,
        used_by="invoke_lambda (moto needs Docker to run a function)",
    ),
    call(
        "sts:AssumeRole",
        EXECUTION_ROLE,
        _I,
        coverage=Coverage.EMULATOR,
        used_by="invoke_local: the local stand-in runs as the execution role (emulators only)",
    ),
    # Who made a change: CloudTrail's event history (auditor/aws/cloudtrail.py) -------------------------
    call(
        "cloudtrail:LookupEvents",
        UNSCOPED,
        _A,
        coverage=Coverage.REAL_AWS,
        used_by="auditor/aws/cloudtrail.py CloudTrailHistory: the daemon's scheduled audits (no emulator has it)",
    ),
    # The doctor's check of the daemon's role (auditor/app/doctor.py) ----------------------------------
    call(
        "iam:SimulatePrincipalPolicy",
        ACCESS_ROLE_ITSELF,  # the role simulates only itself
        _D,
        coverage=Coverage.REAL_AWS,
        used_by="auditor/aws/preflight.py simulated_decisions: the daemon's calls, as IAM decides them for "
        "the role (an emulator has no simulator)",
    ),
    # Change events, the operator's side (auditor/aws/events.py) ---------------------------------------
    call(
        "sts:GetCallerIdentity",
        OPERATOR_UNSCOPED,
        _P,
        _A,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py operator_bus_arn: where the lab accounts' rules send their events",
    ),
    call(
        "sqs:GetQueueAttributes",
        EVENT_QUEUE,
        _P,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py wire_operator_bus, release_operator_bus: the queue's ARN and policy",
    ),
    call(
        "sqs:SetQueueAttributes",
        EVENT_QUEUE,
        _P,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py: the queue policy's statement admitting the operator's rule (by its Sid)",
    ),
    call(
        "events:PutRule",
        OPERATOR_EVENT_RULE,
        _P,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py wire_operator_bus: the operator's rule",
    ),
    call(
        "events:PutTargets",
        OPERATOR_EVENT_RULE,
        _P,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py wire_operator_bus: the queue as its target",
    ),
    call(
        "events:ListTargetsByRule",
        OPERATOR_EVENT_RULE,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py release_operator_bus: whose targets the operator's rule has",
    ),
    call(
        "events:RemoveTargets",
        OPERATOR_EVENT_RULE,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py release_operator_bus: the queue off the operator's rule",
    ),
    call(
        "events:DeleteRule",
        OPERATOR_EVENT_RULE,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py release_operator_bus: the operator's rule, when no lab uses it",
    ),
    call(
        "events:DescribeEventBus",
        OPERATOR_EVENT_BUS,
        _P,
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py: which lab accounts the bus's policy admits (statements by Sid)",
    ),
    call(
        "events:PutPermission",
        OPERATOR_UNSCOPED,  # takes no resource type: authorized on "*" only
        _P,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py wire_operator_bus: the bus admits a lab account's events",
    ),
    call(
        "events:RemovePermission",
        OPERATOR_UNSCOPED,  # takes no resource type: authorized on "*" only
        _T,
        _E,
        caller=_OPERATOR,
        used_by="auditor/aws/events.py release_operator_bus: a lab account no lab uses any more",
    ),
    call(
        "sqs:CreateQueue",
        EVENT_QUEUE,
        _P,
        _T,
        _E,
        caller=_OPERATOR,
        coverage=Coverage.EMULATOR,
        used_by="auditor/aws/events.py queue_url: a queue of its own on an emulator",
    ),
    call(
        "sqs:ReceiveMessage",
        EVENT_QUEUE,
        _E,
        caller=_OPERATOR,
        coverage=Coverage.DAEMON,
        used_by="auditor/aws/events.py EventListener.poll_once",
    ),
    call(
        "sqs:DeleteMessage",
        EVENT_QUEUE,
        _E,
        caller=_OPERATOR,
        coverage=Coverage.DAEMON,
        used_by="auditor/aws/events.py EventListener.handle",
    ),
)
