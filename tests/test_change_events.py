"""Change events as real AWS delivers them: IAM's rules in us-east-1 whatever the lab's region, the
operator's bus and queue policies set by provision and released by teardown (only the project's own
statements), and the preflight that each lab account has a trail logging management events."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from cloudtrail_records import eventbridge_entry, record
from moto.core import DEFAULT_ACCOUNT_ID

from auditor.app.context import Context, open_context
from auditor.aws.events import (
    BUS_SID_PREFIX,
    QUEUE_SID,
    admitted_accounts,
    labs_by_account,
    labs_for_message,
    policy_with,
    policy_without,
)
from auditor.domain.config import EventsSettings, LabConfig, LabSettings
from auditor.domain.model import Check, Severity
from auditor.domain.spec import DESTINATION_ROLE, EVENT_RULE, WATCHED_CALLS, render
from auditor.resources.kinds.trail import logs_writes_of, trail_fits
from auditor.store import Store, upgrade
from conftest import make_config, pair, solo
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_targets

REGION = "eu-west-1"
OPERATOR_BUS = f"arn:aws:events:{REGION}:{DEFAULT_ACCOUNT_ID}:event-bus/default"
OPERATORS_OWN_BUS_SID = "operators-own-partner"
OPERATORS_OWN_QUEUE_STATEMENT = {
    "Sid": "operators-own-sns",
    "Effect": "Allow",
    "Principal": {"Service": "sns.amazonaws.com"},
    "Action": "sqs:SendMessage",
    "Resource": "*",
}


# ---------------------------------------------------------------------------------- the rules (pure)


def rules_of(lab: LabConfig, region: str) -> dict[tuple[str, str], list[str]]:
    expected = render(lab, LabSettings(region=region), OPERATOR_BUS)
    return {(rule.account_id, rule.region): rule.pattern["source"] for rule in expected.event_rules}


def test_iam_rules_are_in_us_east_1_and_the_lambda_rule_in_the_lab_s_region() -> None:
    lab = pair(1)
    assert rules_of(lab, REGION) == {
        (lab.origin.account_id, "us-east-1"): ["aws.iam"],
        (lab.destination.account_id, "us-east-1"): ["aws.iam"],
        (lab.origin.account_id, REGION): ["aws.lambda"],
    }


def test_in_us_east_1_the_origin_has_one_rule_for_both() -> None:
    lab = pair(1)
    assert rules_of(lab, "us-east-1") == {
        (lab.origin.account_id, "us-east-1"): ["aws.iam", "aws.lambda"],
        (lab.destination.account_id, "us-east-1"): ["aws.iam"],
    }
    single = solo(1)
    assert rules_of(single, REGION) == {
        (single.origin.account_id, "us-east-1"): ["aws.iam"],
        (single.origin.account_id, REGION): ["aws.lambda"],
    }


def test_each_rule_watches_exactly_its_sources_calls() -> None:
    expected = render(pair(1), LabSettings(region=REGION), OPERATOR_BUS)
    for rule in expected.event_rules:
        [source] = rule.pattern["source"]
        assert rule.pattern["detail"]["eventName"] == sorted(WATCHED_CALLS[source])
        assert rule.target_arn == OPERATOR_BUS


# ------------------------------------------------------------------------- the policies' statements


def test_a_statement_is_added_or_replaced_by_its_sid_and_the_others_kept() -> None:
    own = json.dumps({"Version": "2012-10-17", "Statement": [OPERATORS_OWN_QUEUE_STATEMENT]})
    ours = {
        "Sid": QUEUE_SID,
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": "q",
    }
    added = policy_with(own, ours)
    assert added is not None
    assert json.loads(added)["Statement"] == [OPERATORS_OWN_QUEUE_STATEMENT, ours]
    assert policy_with(added, ours) is None  # already there: nothing to write
    changed = policy_with(added, {**ours, "Resource": "other"})
    assert changed is not None and len(json.loads(changed)["Statement"]) == 2
    assert policy_with(None, ours) is not None


def test_removing_a_statement_keeps_the_operator_s_own() -> None:
    ours = {"Sid": QUEUE_SID, "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "q"}
    both = json.dumps({"Version": "2012-10-17", "Statement": [OPERATORS_OWN_QUEUE_STATEMENT, ours]})
    kept = policy_without(both, QUEUE_SID)
    assert kept is not None and json.loads(kept)["Statement"] == [OPERATORS_OWN_QUEUE_STATEMENT]
    assert policy_without(kept, QUEUE_SID) is None  # nothing of ours left: nothing to write
    only_ours = json.dumps({"Version": "2012-10-17", "Statement": ours})
    assert policy_without(only_ours, QUEUE_SID) == ""  # the policy goes
    assert policy_without(None, QUEUE_SID) is None


def test_only_the_project_s_statements_name_admitted_accounts() -> None:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": f"{BUS_SID_PREFIX}100000000001", "Effect": "Allow"},
                {"Sid": OPERATORS_OWN_BUS_SID, "Effect": "Allow"},
                {"Effect": "Allow"},
            ],
        }
    )
    assert admitted_accounts(policy) == {"100000000001"}
    assert admitted_accounts(None) == set()


# ------------------------------------------------------------------------------ on moto, in process


@pytest.fixture
def operator_queue(moto_in_process: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url = str(sqs.create_queue(QueueName="lab-auditor-events")["QueueUrl"])
    own = {"Version": "2012-10-17", "Statement": [OPERATORS_OWN_QUEUE_STATEMENT]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(own)})
    events = boto3.client("events", region_name=REGION)
    events.put_permission(
        EventBusName="default",
        Action="events:PutEvents",
        Principal="444455556666",
        StatementId=OPERATORS_OWN_BUS_SID,
    )
    return url


def context_in(region: str, queue_url: str, *labs: LabConfig) -> Context:
    config = make_config(labs)
    config = replace(
        config, lab=LabSettings(region=region), events=EventsSettings(queue_url=queue_url, wait_seconds=0)
    )
    return open_context(config)


def rules_in(context: Context, lab: LabConfig, region: str) -> dict[str, Any]:
    """Each lab account's rule in that region: its pattern's sources and its targets (absent: no rule)."""
    found = {}
    for access in (lab.origin, lab.destination):
        events = context.sessions.client(access, "events", region_name=region)
        names = [rule["Name"] for rule in events.list_rules(NamePrefix=EVENT_RULE)["Rules"]]
        if EVENT_RULE in names:
            pattern = json.loads(events.describe_rule(Name=EVENT_RULE)["EventPattern"])
            targets = [t["Arn"] for t in events.list_targets_by_rule(Rule=EVENT_RULE)["Targets"]]
            found[access.account_id] = (pattern["source"], targets)
    return found


def bus_sids() -> set[str]:
    policy = boto3.client("events", region_name=REGION).describe_event_bus(Name="default").get("Policy")
    return {statement["Sid"] for statement in json.loads(policy)["Statement"]} if policy else set()


def queue_sids(url: str) -> list[str]:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=url, AttributeNames=["Policy"]
    )
    policy = attributes["Attributes"].get("Policy")
    return [statement["Sid"] for statement in json.loads(policy)["Statement"]] if policy else []


def operator_rules() -> list[str]:
    return [rule["Name"] for rule in boto3.client("events", region_name=REGION).list_rules()["Rules"]]


def test_a_lab_in_eu_west_1_gets_its_iam_rules_in_us_east_1_and_teardown_removes_what_was_added(
    operator_queue: str, tmp_path: Path
) -> None:
    labs = (pair(1), pair(2))
    context = context_in(REGION, operator_queue, *labs)
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    store = Store.from_url(url)  # which labs are still up: the database knows, as for the commands
    outcomes = provision_targets(context, context.targets(), dry_run=False, store=store)
    assert [o.error for o in outcomes if not o.ok] == []
    for lab in labs:
        origin, destination = lab.origin.account_id, lab.destination.account_id
        assert rules_in(context, lab, "us-east-1") == {
            origin: (["aws.iam"], [OPERATOR_BUS]),
            destination: (["aws.iam"], [OPERATOR_BUS]),
        }
        assert rules_in(context, lab, REGION) == {origin: (["aws.lambda"], [OPERATOR_BUS])}
    accounts = {side.account_id for lab in labs for side in (lab.origin, lab.destination)}
    assert bus_sids() == {OPERATORS_OWN_BUS_SID} | {f"{BUS_SID_PREFIX}{a}" for a in accounts}
    assert queue_sids(operator_queue) == [OPERATORS_OWN_QUEUE_STATEMENT["Sid"], QUEUE_SID]
    assert EVENT_RULE in operator_rules()

    teardown_targets(context, context.targets(["pair-01"]), dry_run=False, store=store)
    assert rules_in(context, labs[0], "us-east-1") == rules_in(context, labs[0], REGION) == {}
    still = {labs[1].origin.account_id, labs[1].destination.account_id}
    assert bus_sids() == {OPERATORS_OWN_BUS_SID} | {f"{BUS_SID_PREFIX}{a}" for a in still}
    assert QUEUE_SID in queue_sids(operator_queue) and EVENT_RULE in operator_rules()

    teardown_targets(context, context.targets(["pair-02"]), dry_run=False, store=store)
    assert rules_in(context, labs[1], "us-east-1") == rules_in(context, labs[1], REGION) == {}
    assert bus_sids() == {OPERATORS_OWN_BUS_SID}
    assert queue_sids(operator_queue) == [OPERATORS_OWN_QUEUE_STATEMENT["Sid"]]
    assert EVENT_RULE not in operator_rules()


def test_a_second_provisioning_adds_no_statement_twice(operator_queue: str) -> None:
    context = context_in(REGION, operator_queue, pair(1))
    for _ in range(2):
        provision_targets(context, context.targets(), dry_run=False)
    policy = json.loads(
        boto3.client("events", region_name=REGION).describe_event_bus(Name="default")["Policy"]
    )
    assert len(policy["Statement"]) == 3
    assert queue_sids(operator_queue) == [OPERATORS_OWN_QUEUE_STATEMENT["Sid"], QUEUE_SID]


def test_an_iam_change_in_us_east_1_reaches_the_operator_s_queue_in_eu_west_1(operator_queue: str) -> None:
    lab = pair(1)
    context = context_in(REGION, operator_queue, lab)
    provision_targets(context, context.targets(), dry_run=False)
    account = lab.destination.account_id
    detail = record(account, "UpdateAssumeRolePolicy", {"roleName": DESTINATION_ROLE})
    lab_bus = context.sessions.client(lab.destination, "events", region_name="us-east-1")
    assert lab_bus.put_events(Entries=[eventbridge_entry(detail)])["FailedEntryCount"] == 0
    messages = boto3.client("sqs", region_name=REGION).receive_message(
        QueueUrl=operator_queue, MaxNumberOfMessages=10
    )
    [message] = messages["Messages"]
    match = labs_for_message(message["Body"], labs_by_account(context.config))
    assert match.labs == ("pair-01",)
    assert (
        match.change is not None
        and match.change.actor.arn == f"arn:aws:sts::{account}:assumed-role/student/alice"
    )


# ---------------------------------------------------------------------------------- the trail preflight


@pytest.mark.parametrize(
    ("selectors", "logged"),
    [
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]}, False),
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]}, False),
        ({"EventSelectors": []}, False),
        (
            {
                "AdvancedEventSelectors": [
                    {"Name": "m", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}
                ]
            },
            True,
        ),
        (
            {
                "AdvancedEventSelectors": [
                    {
                        "FieldSelectors": [
                            {"Field": "eventCategory", "Equals": ["Management"]},
                            {"Field": "readOnly", "Equals": ["true"]},
                        ]
                    }
                ]
            },
            False,
        ),
        (
            {
                "AdvancedEventSelectors": [
                    {
                        "FieldSelectors": [
                            {"Field": "eventCategory", "Equals": ["Management"]},
                            {"Field": "eventSource", "NotEquals": ["iam.amazonaws.com"]},
                        ]
                    }
                ]
            },
            False,
        ),
        (
            {
                "AdvancedEventSelectors": [
                    {
                        "FieldSelectors": [
                            {"Field": "eventCategory", "Equals": ["Data"]},
                            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                        ]
                    }
                ]
            },
            False,
        ),
    ],
)
def test_which_event_selectors_log_iam_s_management_writes(selectors: dict[str, Any], logged: bool) -> None:
    assert logs_writes_of(selectors, "iam.amazonaws.com") is logged


def test_a_trail_records_iam_only_with_global_service_events_and_only_in_the_regions_it_spans() -> None:
    multi = {"IsMultiRegionTrail": True, "HomeRegion": "eu-west-1", "IncludeGlobalServiceEvents": True}
    assert trail_fits(multi, "us-east-1", ("iam.amazonaws.com",))
    assert not trail_fits({**multi, "IncludeGlobalServiceEvents": False}, "us-east-1", ("iam.amazonaws.com",))
    single = {"IsMultiRegionTrail": False, "HomeRegion": "eu-west-1", "IncludeGlobalServiceEvents": True}
    assert trail_fits(single, "eu-west-1", ("lambda.amazonaws.com",))
    assert not trail_fits(single, "us-east-1", ("iam.amazonaws.com",))


def change_event_findings(context: Context) -> list[tuple[str, str]]:
    from auditor.app.audit import audit_targets

    run = audit_targets(context, context.targets(), invoke=False)
    return sorted(
        (finding.resource, finding.severity.value)
        for lab in run.labs
        for finding in lab.findings
        if finding.check == Check.CHANGE_EVENTS
    )


def test_an_account_without_a_logging_trail_is_a_low_change_events_finding(operator_queue: str) -> None:
    lab = pair(1)
    context = context_in(REGION, operator_queue, lab)
    provision_targets(context, context.targets(), dry_run=False)
    origin, destination = lab.origin.account_id, lab.destination.account_id
    assert change_event_findings(context) == [
        (f"arn:aws:cloudtrail:{REGION}:{origin}:trail/*", Severity.LOW.value),
        (f"arn:aws:cloudtrail:us-east-1:{origin}:trail/*", Severity.LOW.value),
        (f"arn:aws:cloudtrail:us-east-1:{destination}:trail/*", Severity.LOW.value),
    ]
    for access in (lab.origin, lab.destination):
        bucket = f"trail-{access.account_id}"
        context.sessions.client(access, "s3").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        cloudtrail = context.sessions.client(access, "cloudtrail")
        cloudtrail.create_trail(Name="management", S3BucketName=bucket, IsMultiRegionTrail=True)
        cloudtrail.start_logging(Name="management")
    assert change_event_findings(context) == []
    # A trail that stops logging, or logs only reads, no longer counts.
    context.sessions.client(lab.destination, "cloudtrail").stop_logging(Name="management")
    context.sessions.client(lab.origin, "cloudtrail").put_event_selectors(
        TrailName="management",
        EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
    )
    assert [resource for resource, _ in change_event_findings(context)] == [
        f"arn:aws:cloudtrail:{REGION}:{origin}:trail/*",
        f"arn:aws:cloudtrail:us-east-1:{origin}:trail/*",
        f"arn:aws:cloudtrail:us-east-1:{destination}:trail/*",
    ]
