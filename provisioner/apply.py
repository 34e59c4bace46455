"""Carry out a plan against the lab's accounts, in order, idempotently."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from botocore.exceptions import ClientError

from auditor.accounts import AccountSessions
from auditor.collect import ActualLab, collect_lab
from auditor.config import LabConfig
from auditor.spec import ExpectedLab, RoleSpec
from provisioner.package import packaged
from provisioner.plan import Action, Kind, Step, plan_lab

log = structlog.get_logger()

# Lambda refuses a role that IAM has not yet propagated; this is the only error worth waiting out.
_ROLE_NOT_READY = "cannot be assumed by Lambda"
ROLE_PROPAGATION_DELAYS = (1.0, 2.0, 4.0, 8.0, 10.0, 10.0)


@dataclass(frozen=True)
class LabTarget:
    """One lab, its rendered spec and how to reach its two accounts."""

    lab: LabConfig
    expected: ExpectedLab

    @property
    def name(self) -> str:
        return self.lab.name


def collect_everything(sessions: AccountSessions, target: LabTarget) -> ActualLab:
    """All the spec names, in accounts checked to be the configured ones first."""
    for access in (target.lab.origin, target.lab.destination):
        sessions.verify(access)
    lab = target.lab
    return collect_lab(
        sessions, target.expected, lab.origin, lab.destination, with_log_group=True, with_event_rules=True
    )


def plan(sessions: AccountSessions, target: LabTarget) -> list[Step]:
    return plan_lab(target.expected, collect_everything(sessions, target), packaged()[1])


def apply(
    sessions: AccountSessions,
    target: LabTarget,
    steps: list[Step],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Apply the changing steps in plan order."""
    applier = _Applier(sessions, target, sleep)
    for step in steps:
        if step.changes:
            applier.run(step)
            log.info(
                "provision_step",
                lab=target.name,
                action=step.action.value,
                kind=step.kind.value,
                name=step.name,
            )


class _Applier:
    def __init__(self, sessions: AccountSessions, target: LabTarget, sleep: Callable[[float], None]) -> None:
        self.sessions, self.target, self.sleep = sessions, target, sleep
        self.expected = target.expected

    def client(self, account_id: str, service: str) -> Any:
        lab = self.target.lab
        access = lab.origin if account_id == lab.origin.account_id else lab.destination
        return self.sessions.client(access, service)

    def role_spec(self, name: str) -> RoleSpec:
        return next(role for role in self.expected.roles if role.name == name)

    def tags(self) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in self.expected.tags.items()]

    def run(self, step: Step) -> None:
        handlers: dict[Kind, Callable[[Step], None]] = {
            Kind.ROLE: self.role,
            Kind.INLINE_POLICY: self.inline_policy,
            Kind.MANAGED_POLICY: self.managed_policy,
            Kind.PERMISSIONS_BOUNDARY: self.boundary,
            Kind.FUNCTION: self.function,
            Kind.FUNCTION_CODE: self.function_code,
            Kind.LOG_GROUP: self.log_group,
            Kind.MARKER_BUCKET: self.marker_bucket,
            Kind.EVENT_RULE: self.event_rule,
        }
        handlers[step.kind](step)

    def role(self, step: Step) -> None:
        spec = self.role_spec(step.role)
        iam = self.client(step.account_id, "iam")
        trust = json.dumps(spec.trust_policy)
        if step.action is Action.CREATE:
            iam.create_role(
                RoleName=spec.name,
                AssumeRolePolicyDocument=trust,
                Description=f"lab-auditor lab {self.target.name}",
                Tags=self.tags(),
            )
        else:
            iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=trust)

    def inline_policy(self, step: Step) -> None:
        iam = self.client(step.account_id, "iam")
        if step.action is Action.DELETE:
            iam.delete_role_policy(RoleName=step.role, PolicyName=step.name)
            return
        document = self.role_spec(step.role).inline_policies[step.name]
        iam.put_role_policy(RoleName=step.role, PolicyName=step.name, PolicyDocument=json.dumps(document))

    def managed_policy(self, step: Step) -> None:
        self.client(step.account_id, "iam").detach_role_policy(RoleName=step.role, PolicyArn=step.name)

    def boundary(self, step: Step) -> None:
        self.client(step.account_id, "iam").delete_role_permissions_boundary(RoleName=step.role)

    def function(self, step: Step) -> None:
        spec = self.expected.function
        lambda_client = self.client(spec.account_id, "lambda")
        settings: dict[str, Any] = {
            "Role": spec.role_arn,
            "Runtime": spec.runtime,
            "Handler": spec.handler,
            "Timeout": spec.timeout_seconds,
            "MemorySize": spec.memory_mb,
            "Environment": {"Variables": dict(spec.environment)},
        }
        if step.action is Action.CREATE:
            self.retry_until_role_ready(
                lambda: lambda_client.create_function(
                    FunctionName=spec.name,
                    Code={"ZipFile": packaged()[0]},
                    Publish=False,
                    Tags=self.expected.tags,
                    **settings,
                )
            )
        else:
            self.retry_until_role_ready(
                lambda: lambda_client.update_function_configuration(FunctionName=spec.name, **settings)
            )
        self.wait_until_ready(lambda_client)

    def function_code(self, step: Step) -> None:
        lambda_client = self.client(step.account_id, "lambda")
        lambda_client.update_function_code(FunctionName=step.name, ZipFile=packaged()[0])
        self.wait_until_ready(lambda_client)

    def wait_until_ready(self, lambda_client: Any) -> None:
        name = self.expected.function.name
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2})
        lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2})

    def retry_until_role_ready(self, call: Callable[[], Any]) -> Any:
        for delay in (*ROLE_PROPAGATION_DELAYS, None):
            try:
                return call()
            except ClientError as error:
                message = str(error.response.get("Error", {}).get("Message", ""))
                if delay is None or _ROLE_NOT_READY not in message:
                    raise
                log.info("waiting_for_role_propagation", lab=self.target.name, delay=delay)
                self.sleep(delay)
        return None  # unreachable: the last attempt raises

    def log_group(self, step: Step) -> None:
        spec = self.expected.function
        logs = self.client(spec.account_id, "logs")
        if step.action is Action.CREATE:
            try:
                logs.create_log_group(logGroupName=spec.log_group, tags=self.expected.tags)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                    raise
        logs.put_retention_policy(logGroupName=spec.log_group, retentionInDays=spec.log_retention_days)

    def marker_bucket(self, step: Step) -> None:
        bucket = self.expected.marker_bucket
        s3 = self.client(bucket.account_id, "s3")
        arguments: dict[str, Any] = {"Bucket": bucket.name}
        if bucket.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": bucket.region}
        try:
            s3.create_bucket(**arguments)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        s3.put_bucket_tagging(Bucket=bucket.name, Tagging={"TagSet": self.tags()})

    def event_rule(self, step: Step) -> None:
        spec = next(rule for rule in self.expected.event_rules if rule.account_id == step.account_id)
        events = self.client(step.account_id, "events")
        events.put_rule(
            Name=spec.name,
            EventPattern=json.dumps(spec.pattern),
            State="ENABLED",
            Description=f"lab-auditor: change events of lab {self.target.name}",
            Tags=self.tags(),
        )
        events.put_targets(Rule=spec.name, Targets=[{"Id": "lab-auditor-queue", "Arn": spec.target_arn}])
