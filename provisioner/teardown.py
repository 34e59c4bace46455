"""Remove exactly what the lab spec names, in an order AWS accepts; rerunnable after any interruption.

Attached managed policies are detached, never deleted: they belong to the account, not the lab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import structlog
from botocore.exceptions import ClientError

from auditor.accounts import AccountSessions
from auditor.collect import ActualLab, ActualRole, is_not_found
from auditor.spec import ExpectedLab
from provisioner.apply import LabTarget, collect_everything
from provisioner.plan import Action, Kind, Step

log = structlog.get_logger()


def _role_steps(role: ActualRole) -> list[Step]:
    if not role.exists:
        return []

    def step(kind: Kind, name: str) -> Step:
        return Step(kind, role.account_id, role.name, name, Action.DELETE)

    return [
        *(step(Kind.INLINE_POLICY, name) for name in sorted(role.inline_policies)),
        *(step(Kind.MANAGED_POLICY, arn) for arn in sorted(role.managed_policies)),
        *([step(Kind.PERMISSIONS_BOUNDARY, role.boundary_arn)] if role.boundary_arn else []),
        step(Kind.ROLE, role.name),
    ]


def plan_teardown(expected: ExpectedLab, actual: ActualLab) -> list[Step]:
    """Function, log group, marker bucket, then each role's policies before the role (pure)."""
    function, bucket = expected.function, expected.marker_bucket
    steps: list[Step] = []
    if actual.function.exists:
        steps.append(Step(Kind.FUNCTION, function.account_id, function.name, function.name, Action.DELETE))
    if actual.log_group is None or actual.log_group.exists:
        group = function.log_group
        steps.append(Step(Kind.LOG_GROUP, function.account_id, group, group, Action.DELETE))
    if actual.marker_bucket.exists:
        steps.append(Step(Kind.MARKER_BUCKET, bucket.account_id, bucket.name, bucket.name, Action.DELETE))
    rules = [
        Step(Kind.EVENT_RULE, r.account_id, r.name, r.name, Action.DELETE)
        for r in actual.event_rules
        if r.exists
    ]
    return rules + steps + _role_steps(actual.origin_role) + _role_steps(actual.destination_role)


def teardown_plan(sessions: AccountSessions, target: LabTarget) -> list[Step]:
    return plan_teardown(target.expected, collect_everything(sessions, target))


def teardown(sessions: AccountSessions, target: LabTarget, steps: list[Step]) -> None:
    lab = target.lab

    def client(account_id: str, service: str) -> Any:
        access = lab.origin if account_id == lab.origin.account_id else lab.destination
        return sessions.client(access, service)

    for step in steps:
        _ignore_if_gone(functools.partial(_delete, client, step))
        log.info("teardown_step", lab=target.name, kind=step.kind.value, name=step.name)


def _ignore_if_gone(call: Callable[[], None]) -> None:
    # An interrupted earlier run may already have removed it: that is the goal, not an error.
    try:
        call()
    except ClientError as error:
        if not is_not_found(error):
            raise


def _delete(client: Callable[[str, str], Any], step: Step) -> None:
    account = step.account_id
    match step.kind:
        case Kind.FUNCTION:
            client(account, "lambda").delete_function(FunctionName=step.name)
        case Kind.LOG_GROUP:
            client(account, "logs").delete_log_group(logGroupName=step.name)
        case Kind.MARKER_BUCKET:
            _delete_bucket(client(account, "s3"), step.name)
        case Kind.INLINE_POLICY:
            client(account, "iam").delete_role_policy(RoleName=step.role, PolicyName=step.name)
        case Kind.MANAGED_POLICY:
            client(account, "iam").detach_role_policy(RoleName=step.role, PolicyArn=step.name)
        case Kind.PERMISSIONS_BOUNDARY:
            client(account, "iam").delete_role_permissions_boundary(RoleName=step.role)
        case Kind.EVENT_RULE:
            _delete_rule(client(account, "events"), step.name)
        case Kind.ROLE:
            client(account, "iam").delete_role(RoleName=step.name)
        case _:
            raise ValueError(f"teardown has no way to delete a {step.kind}")


def _delete_bucket(s3: Any, name: str) -> None:
    # The marker bucket is created empty; anything a student put into it goes with it.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if objects:
            s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    s3.delete_bucket(Bucket=name)


def _delete_rule(events: Any, name: str) -> None:
    targets = [target["Id"] for target in events.list_targets_by_rule(Rule=name).get("Targets", [])]
    if targets:
        events.remove_targets(Rule=name, Ids=targets)
    events.delete_rule(Name=name)
