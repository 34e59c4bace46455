"""A change-event rule whose bus is in another Region sends through an execution role (issue 25): the lab
spec names the role of each lab account (auditor/resources/kinds/event_role.py), wanted where a rule of
the account crosses Regions; `auditor provision` makes it before the rules and sets it as their target's
RoleArn, the audit compares both, and the teardown removes the role after the rules.

The operator's bus is in the lab's Region ([lab] region: auditor/aws/events.py operator_bus_arn), so a
class outside us-east-1 has its IAM rules, in us-east-1, cross to it; a class in us-east-1 has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cloudtrail_records import record
from moto.core import DEFAULT_ACCOUNT_ID

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.service import provision
from auditor.aws.events import labs_by_account, labs_for_message
from auditor.domain.actual import ActualEventRole
from auditor.domain.config import (
    AccountAccess,
    ClassSettings,
    Config,
    EventsSettings,
    LabConfig,
    LabSettings,
)
from auditor.domain.model import Action, Finding, Severity
from auditor.domain.spec import (
    EVENT_FORWARDING_POLICY,
    EVENT_FORWARDING_ROLE,
    EVENT_RULE,
    LAB_TAG,
    PROJECT_TAG,
    render,
)
from auditor.policy import policy_engine
from auditor.resources.base import PROJECT_PARTS
from auditor.resources.kinds.event_role import compare_event_role
from conftest import make_config, pair, solo
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_targets

REGION = "eu-west-1"
LAB = pair(1)
ORIGIN, DESTINATION = LAB.origin.account_id, LAB.destination.account_id


def bus(region: str) -> str:
    return f"arn:aws:events:{region}:{DEFAULT_ACCOUNT_ID}:event-bus/default"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{EVENT_FORWARDING_ROLE}"


def rule_arn(account: str, region: str) -> str:
    return f"arn:aws:events:{region}:{account}:rule/{EVENT_RULE}"


TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ThisAccountsRules",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": "<account>"}},
        }
    ],
}


def trust_of(account: str) -> dict[str, Any]:
    return json.loads(json.dumps(TRUST).replace("<account>", account))


def policy_of(bus_arn: str) -> dict[str, Any]:
    statement = {
        "Sid": "OperatorEventBus",
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": bus_arn,
    }
    return {"Version": "2012-10-17", "Statement": [statement]}


# ------------------------------------------------------------------------------------- the spec (pure)


def test_outside_us_east_1_the_iam_rules_cross_through_their_account_s_role_and_the_lambda_rule_does_not() -> (
    None
):
    expected = render(LAB, LabSettings(region=REGION), bus(REGION))
    assert {(rule.account_id, rule.region): rule.role_arn for rule in expected.event_rules} == {
        (ORIGIN, "us-east-1"): role_arn(ORIGIN),
        (DESTINATION, "us-east-1"): role_arn(DESTINATION),
        (ORIGIN, REGION): None,
    }
    roles = {role.account_id: role for role in expected.event_roles}
    assert set(roles) == {ORIGIN, DESTINATION}
    for account, role in roles.items():
        assert (role.wanted, role.name, role.arn) == (True, EVENT_FORWARDING_ROLE, role_arn(account))
        assert role.trust_policy == trust_of(account)
        assert role.inline_policies == {EVENT_FORWARDING_POLICY: policy_of(bus(REGION))}


@pytest.mark.parametrize(
    ("lab", "region", "bus_arn"),
    [(LAB, "us-east-1", bus("us-east-1")), (solo(1), "us-east-1", bus("us-east-1")), (LAB, REGION, None)],
    ids=["same-region", "same-region-solo", "no-events"],
)
def test_without_a_rule_crossing_regions_the_role_is_only_named(
    lab: LabConfig, region: str, bus_arn: str | None
) -> None:
    expected = render(lab, LabSettings(region=region), bus_arn)
    assert all(rule.role_arn is None for rule in expected.event_rules)
    accounts = {lab.origin.account_id, lab.destination.account_id}
    assert {role.account_id for role in expected.event_roles} == accounts  # for the teardown
    assert not any(role.wanted or role.inline_policies for role in expected.event_roles)


def test_unreadable_documents_on_the_role_are_findings_of_its_trust_and_of_its_policies() -> None:
    [role, _] = render(LAB, LabSettings(region=REGION), bus(REGION)).event_roles
    actual = ActualEventRole(role.account_id, role.name, True, "not a policy", {"p": {"Statement": 7}})
    found = compare_event_role(role, actual, policy_engine())
    assert [(f.code, f.severity, f.resource) for f in found] == [
        ("event_role.trust_modified", Severity.LOW, role.arn),
        ("event_role.policy_modified", Severity.LOW, role.arn),
    ]
    assert all("cannot be read as an IAM policy" in f.message for f in found)
    as_built = ActualEventRole(role.account_id, role.name, True, role.trust_policy, role.inline_policies)
    assert compare_event_role(role, as_built, policy_engine()) == []


def test_a_change_to_the_execution_role_is_a_change_of_the_labs_of_its_account() -> None:
    detail = record(DESTINATION, "UpdateAssumeRolePolicy", {"roleName": EVENT_FORWARDING_ROLE})
    body = json.dumps(
        {"account": DESTINATION, "detail-type": "AWS API Call via CloudTrail", "detail": detail}
    )
    assert labs_for_message(body, labs_by_account(class_config(REGION, "q"))).labs == (LAB.name,)
    other = record(DESTINATION, "UpdateAssumeRolePolicy", {"roleName": "StudentsOwn"})
    body = json.dumps({"account": DESTINATION, "detail-type": "AWS API Call via CloudTrail", "detail": other})
    assert labs_for_message(body, labs_by_account(class_config(REGION, "q"))).labs == ()


# ------------------------------------------------------------------------------------- on moto, in process


@pytest.fixture
def queue_url(moto_in_process: None) -> str:
    """The operator's queue, in the lab's Region as the operator's clients are."""
    return queue_in(REGION)


def queue_in(region: str) -> str:
    sqs = boto3.client("sqs", region_name=region)
    return str(sqs.create_queue(QueueName="lab-auditor-events")["QueueUrl"])


def class_config(region: str, queue: str | None, *labs: LabConfig) -> Config:
    events = EventsSettings(queue_url=queue, wait_seconds=0) if queue is not None else None
    return replace(make_config(labs or (LAB,)), lab=LabSettings(region=region), events=events)


def context_in(region: str, queue: str | None, *labs: LabConfig) -> Context:
    return open_context(class_config(region, queue, *labs))


def provisioned(context: Context) -> list[tuple[str, str, str, Action]]:
    """Provision every lab; its changes as (kind, account, owner, action), in the order they were made."""
    outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert [o.error for o in outcomes if not o.ok] == []
    return [
        (step.kind, step.account_id, step.owner, step.action)
        for outcome in outcomes
        if outcome.result is not None
        for step in outcome.result.steps
        if step.changes
    ]


def findings_of(context: Context, *checks: str) -> list[Finding]:
    [audit] = audit_targets(context, context.targets(), invoke=False).labs
    return [finding for finding in audit.findings if finding.check in checks]


def iam(context: Context, access: AccountAccess) -> Any:
    return context.sessions.client(access, "iam")


def events(context: Context, access: AccountAccess, region: str) -> Any:
    return context.sessions.client(access, "events", region_name=region)


def target_of(context: Context, access: AccountAccess, region: str) -> dict[str, Any]:
    [target] = events(context, access, region).list_targets_by_rule(Rule=EVENT_RULE)["Targets"]
    return dict(target)


def role_names(context: Context, access: AccountAccess) -> set[str]:
    return {role["RoleName"] for role in iam(context, access).list_roles()["Roles"]}


@pytest.fixture
def crossing(queue_url: str) -> Iterator[Context]:
    """A class in eu-west-1 with change events, provisioned: its IAM rules cross to the bus there."""
    context = context_in(REGION, queue_url)
    provisioned(context)
    yield context
    context.close()


def test_provision_makes_each_account_s_role_with_its_trust_policy_and_tags(crossing: Context) -> None:
    for access in (LAB.origin, LAB.destination):
        client = iam(crossing, access)
        role = client.get_role(RoleName=EVENT_FORWARDING_ROLE)["Role"]
        assert role["AssumeRolePolicyDocument"] == trust_of(access.account_id)
        assert {tag["Key"]: tag["Value"] for tag in role["Tags"]} == {PROJECT_TAG: "true", LAB_TAG: LAB.name}
        assert client.list_role_policies(RoleName=EVENT_FORWARDING_ROLE)["PolicyNames"] == [
            EVENT_FORWARDING_POLICY
        ]
        document = client.get_role_policy(RoleName=EVENT_FORWARDING_ROLE, PolicyName=EVENT_FORWARDING_POLICY)
        assert document["PolicyDocument"] == policy_of(bus(REGION))


def test_the_rules_in_us_east_1_send_through_the_role_and_the_rule_in_the_bus_s_region_without(
    crossing: Context,
) -> None:
    for access in (LAB.origin, LAB.destination):
        assert target_of(crossing, access, "us-east-1") == {
            "Id": "lab-auditor-queue",
            "Arn": bus(REGION),
            "RoleArn": role_arn(access.account_id),
        }
    assert "RoleArn" not in target_of(crossing, LAB.origin, REGION)


def test_an_audit_right_after_finds_nothing_of_the_role_or_the_rules(crossing: Context) -> None:
    assert findings_of(crossing, "event_role", "event_rule") == []
    assert provisioned(crossing) == []  # and a second provision changes nothing


def test_the_role_is_made_before_the_rules_and_removed_after_them(queue_url: str) -> None:
    context = context_in(REGION, queue_url)
    made = [kind for kind, *_ in provisioned(context) if kind.startswith("event_")]
    assert made == ["event_role"] * 2 + ["event_rule"] * 3
    [outcome] = teardown_targets(context, context.targets(), dry_run=False)
    assert outcome.result is not None
    removed = [step.kind for step in outcome.result.steps if step.kind.startswith("event_")]
    assert removed == ["event_rule"] * 3 + ["event_role"] * 2


def delete_the_role(context: Context) -> None:
    client = iam(context, LAB.destination)
    client.delete_role_policy(RoleName=EVENT_FORWARDING_ROLE, PolicyName=EVENT_FORWARDING_POLICY)
    client.delete_role(RoleName=EVENT_FORWARDING_ROLE)


def drop_the_targets_role(context: Context) -> None:
    target = target_of(context, LAB.destination, "us-east-1")
    del target["RoleArn"]
    events(context, LAB.destination, "us-east-1").put_targets(Rule=EVENT_RULE, Targets=[target])


def trust_every_account(context: Context) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam(context, LAB.destination).update_assume_role_policy(
        RoleName=EVENT_FORWARDING_ROLE, PolicyDocument=json.dumps(trust)
    )


def put_events_anywhere(context: Context) -> None:
    iam(context, LAB.destination).put_role_policy(
        RoleName=EVENT_FORWARDING_ROLE,
        PolicyName=EVENT_FORWARDING_POLICY,
        PolicyDocument=json.dumps(policy_of("*")),
    )


def add_a_policy(context: Context) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam(context, LAB.destination).put_role_policy(
        RoleName=EVENT_FORWARDING_ROLE, PolicyName="extra", PolicyDocument=json.dumps(document)
    )


@pytest.mark.parametrize(
    ("drift", "code", "resource", "named"),
    [
        (delete_the_role, "event_role.missing", role_arn(DESTINATION), EVENT_FORWARDING_ROLE),
        (
            drop_the_targets_role,
            "event_rule.modified",
            rule_arn(DESTINATION, "us-east-1"),
            EVENT_FORWARDING_ROLE,
        ),
        (trust_every_account, "event_role.trust_modified", role_arn(DESTINATION), "aws:SourceAccount"),
        (put_events_anywhere, "event_role.policy_modified", role_arn(DESTINATION), "events:PutEvents"),
        (add_a_policy, "event_role.policy_modified", role_arn(DESTINATION), "s3:"),
    ],
    ids=["role-deleted", "target-without-role", "trust-widened", "policy-widened", "policy-added"],
)
def test_a_role_or_role_arn_gone_or_changed_is_a_low_finding_that_provision_fixes(
    crossing: Context, drift: Any, code: str, resource: str, named: str
) -> None:
    drift(crossing)
    [found] = findings_of(crossing, "event_role", "event_rule")
    assert (found.code, found.resource, found.severity, found.fixable) == (code, resource, Severity.LOW, True)
    assert named in found.message
    assert found.subject is not None and found.subject.account == DESTINATION
    assert provisioned(crossing) != []
    assert findings_of(crossing, "event_role", "event_rule") == []
    client = iam(crossing, LAB.destination)
    assert client.list_role_policies(RoleName=EVENT_FORWARDING_ROLE)["PolicyNames"] == [
        EVENT_FORWARDING_POLICY
    ]
    assert target_of(crossing, LAB.destination, "us-east-1")["RoleArn"] == role_arn(DESTINATION)


def test_teardown_removes_the_role_and_nothing_else(queue_url: str) -> None:
    context = context_in(REGION, queue_url)
    iam(context, LAB.destination).create_role(
        RoleName="StudentsOwn", AssumeRolePolicyDocument=json.dumps(TRUST)
    )
    before = {access.account_id: role_names(context, access) for access in (LAB.origin, LAB.destination)}
    provisioned(context)
    [outcome] = teardown_targets(context, context.targets(), dry_run=False)
    assert outcome.result is not None
    assert [(s.account_id, s.name) for s in outcome.result.steps if s.kind == "event_role"] == [
        (ORIGIN, EVENT_FORWARDING_ROLE),
        (DESTINATION, EVENT_FORWARDING_ROLE),
    ]
    assert {
        access.account_id: role_names(context, access) for access in (LAB.origin, LAB.destination)
    } == before
    assert "StudentsOwn" in before[DESTINATION]


def test_teardown_finds_a_role_left_from_before_the_class_turned_its_events_off(queue_url: str) -> None:
    provisioned(context_in(REGION, queue_url))
    without_events = context_in(REGION, None)
    [outcome] = teardown_targets(without_events, without_events.targets(), dry_run=False)
    assert outcome.result is not None
    assert {s.account_id for s in outcome.result.steps if s.kind == "event_role"} == {ORIGIN, DESTINATION}
    for access in (LAB.origin, LAB.destination):
        assert EVENT_FORWARDING_ROLE not in role_names(without_events, access)


@pytest.mark.parametrize("lab", [LAB, solo(1)], ids=["pair", "solo"])
@pytest.mark.usefixtures("moto_in_process")
def test_a_class_in_the_bus_s_region_gets_no_role_at_all(lab: LabConfig) -> None:
    context = context_in("us-east-1", queue_in("us-east-1"), lab)
    assert "event_role" not in {kind for kind, *_ in provisioned(context)}
    for access in dict.fromkeys((lab.origin, lab.destination)):
        with pytest.raises(ClientError, match="NoSuchEntity"):
            iam(context, access).get_role(RoleName=EVENT_FORWARDING_ROLE)
        assert target_of(context, access, "us-east-1") == {"Id": "lab-auditor-queue", "Arn": bus("us-east-1")}
    assert findings_of(context, "event_role", "event_rule") == []


def test_provision_no_longer_warns_about_rules_crossing_regions(queue_url: str) -> None:
    told: list[str] = []
    outcome = provision(class_config(REGION, queue_url), [], dry_run=True, tell=told.append)
    assert told == []
    [planned] = outcome.changes
    assert {(s.kind, s.account_id, s.action) for s in planned.steps if s.kind == "event_role"} == {
        ("event_role", ORIGIN, Action.CREATE),
        ("event_role", DESTINATION, Action.CREATE),
    }


def test_when_students_build_the_execution_role_is_one_of_the_project_s_own_parts(queue_url: str) -> None:
    config = replace(class_config(REGION, queue_url), classroom=ClassSettings(built_by="students"))
    context = open_context(config)
    made = provisioned(context)
    assert {kind for kind, *_ in made} == set(PROJECT_PARTS)
    assert {(account, action) for kind, account, _, action in made if kind == "event_role"} == {
        (ORIGIN, Action.CREATE),
        (DESTINATION, Action.CREATE),
    }
    [outcome] = teardown_targets(context, context.targets(), dry_run=False)
    assert outcome.result is not None
    assert {step.kind for step in outcome.result.steps} == set(PROJECT_PARTS)
    assert EVENT_FORWARDING_ROLE not in role_names(context, LAB.destination)
