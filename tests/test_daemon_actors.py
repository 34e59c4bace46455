"""The daemon puts who made each change on the findings it records: from the change event that triggered
the audit, from the lab's previous audit for the same finding, and for a scheduled audit from CloudTrail's
event history (stubbed: no emulator has LookupEvents), from the lab's last conformant audit onwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cloudtrail_records import assumed_role, record
from structlog.testing import capture_logs
from test_cloudtrail import FakeClock, lookup_event

from auditor.app.context import open_context
from auditor.aws.cloudtrail import LOOKUP_PAGE, CloudTrailHistory, RateLimiter, change_from_record
from auditor.daemon.service import Service
from auditor.domain.model import Check, Finding, LabAudit, Trigger, Verdict
from auditor.domain.spec import DESTINATION_ROLE, FUNCTION
from auditor.store import Store, upgrade
from conftest import make_config, pair
from provisioner.provision import provision_targets

pytestmark = pytest.mark.usefixtures("moto_in_process")

LAB = pair(1)
DEST = LAB.destination.account_id
OPEN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    config = make_config((LAB,), database_url=url, invoke=False)
    context = open_context(config)
    provision_targets(context, context.targets(), dry_run=False)
    service = Service(config, context)
    service.history = None  # in process, moto answers as "AWS", but it has no LookupEvents
    yield service
    context.close()


def open_trust(service: Service, document: dict[str, Any] = OPEN_TRUST) -> None:
    iam = service.context.sessions.client(LAB.destination, "iam")
    iam.update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(document))


def trust_finding(service: Service) -> Finding:
    run = service.database().latest_runs([LAB.name])[LAB.name]
    assert run.error is None, run.error
    return next(f for f in run.findings if f.check == Check.TRUST_POLICY)


def student_change(session: str, minutes_ago: int = 1) -> Any:
    when = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = record(
        DEST,
        "UpdateAssumeRolePolicy",
        {"roleName": DESTINATION_ROLE},
        identity=assumed_role(DEST, session),
        time=when,
    )
    return change_from_record(document)


def test_the_event_s_actor_is_recorded_on_the_finding_and_kept_while_the_finding_stays_the_same(
    service: Service,
) -> None:
    open_trust(service)
    service.note_change(LAB.name, student_change("alice"))
    service.audit(LAB.name, Trigger.EVENT)
    first = trust_finding(service)
    assert (
        first.changed_by is not None
        and first.changed_by.arn == f"arn:aws:sts::{DEST}:assumed-role/student/alice"
    )

    service.audit(LAB.name, Trigger.SCHEDULE)  # no event: the same finding, the same actor
    assert trust_finding(service).changed_by == first.changed_by

    # Changed again, without an event the daemon received: the actor is no longer known.
    open_trust(
        service,
        {
            **OPEN_TRUST,
            "Statement": [
                {**OPEN_TRUST["Statement"][0], "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}
            ],
        },
    )
    service.audit(LAB.name, Trigger.SCHEDULE)
    assert trust_finding(service).changed_by is None


def test_a_restarted_daemon_keeps_the_actor_of_a_finding_it_finds_again(service: Service) -> None:
    open_trust(service)
    service.note_change(LAB.name, student_change("alice"))
    service.audit(LAB.name, Trigger.EVENT)
    restarted = Service(service.config, service.context)
    restarted.history = None
    restarted.audit(LAB.name, Trigger.SCHEDULE)
    actor = trust_finding(restarted).changed_by
    assert actor is not None and actor.arn.endswith("/alice")


def test_an_event_about_another_resource_explains_nothing(service: Service) -> None:
    open_trust(service)
    document = record(
        LAB.origin.account_id,
        "UpdateFunctionCode20150331v2",
        {"functionName": FUNCTION},
        source="lambda.amazonaws.com",
    )
    service.note_change(LAB.name, change_from_record(document))
    service.audit(LAB.name, Trigger.EVENT)
    assert trust_finding(service).changed_by is None


def history_with_stub() -> tuple[CloudTrailHistory, Stubber]:
    client = boto3.client("cloudtrail", region_name="us-east-1")
    return CloudTrailHistory(
        lambda account, region: client, RateLimiter(2.0, FakeClock(), lambda _: None)
    ), Stubber(client)


def test_a_scheduled_audit_looks_the_change_up_from_the_last_conformant_audit_on(service: Service) -> None:
    service.audit(LAB.name, Trigger.SCHEDULE)
    store: Store = service.database()
    conformant_at = store.last_conformant_at(LAB.name)
    assert conformant_at is not None
    open_trust(service)
    service.history, stub = history_with_stub()
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = record(
        DEST,
        "UpdateAssumeRolePolicy",
        {"roleName": DESTINATION_ROLE},
        identity=assumed_role(DEST, "mallory"),
        time=when,
    )
    stub.add_response(
        "lookup_events",
        {"Events": [lookup_event(found)]},
        {
            "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": DESTINATION_ROLE}],
            "StartTime": conformant_at,
            "EndTime": ANY,
            "MaxResults": LOOKUP_PAGE,
        },
    )
    with stub:
        service.audit(LAB.name, Trigger.SCHEDULE)
        stub.assert_no_pending_responses()
    actor = trust_finding(service).changed_by
    assert actor is not None and actor.arn.endswith("/mallory")


def test_a_lab_never_conformant_is_not_looked_up(service: Service) -> None:
    open_trust(service)
    service.history, stub = history_with_stub()
    with stub:  # any request would find no answer stubbed, and fail
        service.audit(LAB.name, Trigger.SCHEDULE)
    assert service.database().latest_runs([LAB.name])[LAB.name].verdict is Verdict.DRIFTED
    assert trust_finding(service).changed_by is None


def test_cloudtrail_failing_leaves_the_audit_recorded_without_actors(service: Service) -> None:
    service.audit(LAB.name, Trigger.SCHEDULE)
    open_trust(service)
    service.history, stub = history_with_stub()
    stub.add_client_error("lookup_events", "AccessDeniedException", "not allowed to LookupEvents")
    with stub, capture_logs() as logs:
        service.audit(LAB.name, Trigger.SCHEDULE)
    assert trust_finding(service).changed_by is None
    assert [e["lab"] for e in logs if e["event"] == "actors_not_looked_up"] == [LAB.name]


def test_an_audit_that_could_not_finish_hands_its_events_to_the_next(service: Service) -> None:
    change = student_change("alice")
    failed = LabAudit(LAB.name, LAB.origin.account_id, DEST, Verdict.ERROR, error="AWS unreachable")
    assert service.with_actors(failed, [change], Trigger.EVENT) == failed
    assert service.state.changes[LAB.name] == [change]
    open_trust(service)
    service.audit(LAB.name, Trigger.EVENT)
    actor = trust_finding(service).changed_by
    assert actor is not None and actor.arn.endswith("/alice")
