"""auditor.aws.cloudtrail: CloudTrail records read into actors and the resources they touched; findings explained
by the latest call that touched that very resource; CloudTrail's event history read within a budget and the
rate limit (botocore's Stubber, with answers shaped as the LookupEvents API reference documents them)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cloudtrail_records import assumed_role, iam_user, record, root

from auditor.aws.cloudtrail import (
    LOOKUP_PAGE,
    Change,
    CloudTrailHistory,
    Lookup,
    RateLimiter,
    Touched,
    actor_from_record,
    carried_forward,
    change_from_record,
    explain,
    explain_audit,
    look_up_actors,
    lookups_for,
    parse_time,
    touched_resources,
)
from auditor.domain.model import Effect, Finding, LabAudit, Severity, Status, Subject, Verdict

DEST, ORIGIN = "200000000001", "100000000001"
DEST_ROLE = f"arn:aws:iam::{DEST}:role/LambdaS3ListBuckets"
ORIGIN_ROLE = f"arn:aws:iam::{ORIGIN}:role/Lambda-Assume-Roles"
FUNCTION = f"arn:aws:lambda:eu-west-1:{ORIGIN}:function:Lambda-Assume-Roles"
T0 = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
SUBJECTS = {
    DEST_ROLE: Subject("role", DEST, "LambdaS3ListBuckets", "LambdaS3ListBuckets"),
    ORIGIN_ROLE: Subject("role", ORIGIN, "Lambda-Assume-Roles", "Lambda-Assume-Roles"),
    FUNCTION: Subject("function", ORIGIN, "Lambda-Assume-Roles", "Lambda-Assume-Roles"),
    f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy": Subject(
        "inline_policy", DEST, "LambdaS3ListBuckets", "LambdaS3ListBucketsPolicy"
    ),
    f"{DEST_ROLE}/inline-policy/P": Subject("inline_policy", DEST, "LambdaS3ListBuckets", "P"),
}

# The findings each call can change, as the kinds declare them (auditor/resources/kinds/*.toml): the same
# as the checks each call could change before codes (UpdateAssumeRolePolicy: the trust; PutRolePolicy: the
# inline policy it names and the role's permissions; AttachRolePolicy: the role's permissions and its
# attachments; ...). A call's codes are those of every kind it can change, whichever role it names: the
# change-event rules' execution role's too (a finding matches by its resource as well as its code).
TRUST_POLICY = frozenset(
    f"trust_policy.{name}"
    for name in ("widened", "narrowed", "changed", "unreadable", "denies_lab", "unproven")
)
TRUST = TRUST_POLICY | {"event_role.trust_modified"}
PERMISSIONS = frozenset({"inline_policy.denies_lab", "inline_policy.unproven"})
INLINE = (
    PERMISSIONS
    | {
        f"inline_policy.{name}"
        for name in (
            "missing",
            "widened",
            "narrowed",
            "changed",
            "unreadable",
            "unexpected",
            "unexpected_unreadable",
        )
    }
    | {"event_role.policy_modified"}
)
ATTACHED = PERMISSIONS | {"managed_policies.attached", "managed_policies.unreadable"}
BOUNDARY = PERMISSIONS | {"permissions_boundary.attached", "permissions_boundary.unreadable"}
CONFIGURATION = frozenset({"lambda_config.modified", "invoke.failed"})
CODE = frozenset({"lambda_code.modified", "invoke.failed"})


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def found(code: str, resource: str, actual: Any = None) -> Finding:
    return Finding(
        code,
        SUBJECTS.get(resource),
        resource,
        Status.MODIFIED,
        Effect.WIDENED,
        Severity.HIGH,
        "m",
        {},
        actual,
    )


def lambda_record(event_name: str, function_name: str, **options: Any) -> dict[str, Any]:
    return record(
        ORIGIN,
        event_name,
        {"functionName": function_name},
        source="lambda.amazonaws.com",
        region="eu-west-1",
        **options,
    )


# ------------------------------------------------------------------------------------------ the actor


def test_an_assumed_role_is_named_with_its_session_issuer_and_the_call_facts() -> None:
    actor = actor_from_record(record(DEST, "UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}))
    assert actor is not None
    assert actor.to_json() == {
        "arn": f"arn:aws:sts::{DEST}:assumed-role/student/alice",
        "type": "AssumedRole",
        "event_name": "UpdateAssumeRolePolicy",
        "event_time": "2026-11-29T14:02:11Z",
        "event_id": "3f1c2a4e-8d7b-4c1e-9a5f-0e6d7c8b9a10",
        "source_ip": "203.0.113.5",
        "user_agent": "console.amazonaws.com",
        "session_issuer": f"arn:aws:iam::{DEST}:role/student",
    }


@pytest.mark.parametrize(
    ("identity", "arn", "kind"),
    [
        (iam_user(DEST), f"arn:aws:iam::{DEST}:user/bob", "IAMUser"),
        (root(DEST), f"arn:aws:iam::{DEST}:root", "Root"),
        (
            {"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"},
            "cloudformation.amazonaws.com",
            "AWSService",
        ),
    ],
)
def test_every_kind_of_identity_is_named_as_cloudtrail_wrote_it(
    identity: dict[str, Any], arn: str, kind: str
) -> None:
    actor = actor_from_record(record(DEST, "DeleteRole", {"roleName": "x"}, identity=identity))
    assert actor is not None and (actor.arn, actor.type, actor.session_issuer) == (arn, kind, "")


@pytest.mark.parametrize(
    "identity",
    [{}, {"type": "AWSAccount", "principalId": "AIDAEXAMPLE", "accountId": "999999999999"}, "not an object"],
)
def test_a_record_without_an_identity_to_name_names_nobody(identity: Any) -> None:
    document = record(DEST, "UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"})
    document["userIdentity"] = identity
    assert actor_from_record(document) is None
    assert change_from_record(document) is None


def test_a_failed_call_changed_nothing_and_explains_nothing() -> None:
    refused = record(
        DEST, "UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, error="AccessDenied"
    )
    assert change_from_record(refused) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T14:02:11Z", datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC)),
        ("2026-11-29T14:02:11+00:00", datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC)),
        ("2026-11-29T14:02:11", None),  # no zone: not an instant we can place
        ("yesterday", None),
        (None, None),
    ],
)
def test_event_times_are_read_as_instants_or_not_at_all(text: Any, expected: datetime | None) -> None:
    assert parse_time(text) == expected


# -------------------------------------------------------------------------------- what a call touched


@pytest.mark.parametrize(
    ("event_name", "parameters", "touched"),
    [
        (
            "UpdateAssumeRolePolicy",
            {"roleName": "LambdaS3ListBuckets", "policyDocument": "{}"},
            {Touched(DEST_ROLE, TRUST)},
        ),
        (
            "PutRolePolicy",
            {
                "roleName": "LambdaS3ListBuckets",
                "policyName": "LambdaS3ListBucketsPolicy",
                "policyDocument": "{}",
            },
            {
                Touched(DEST_ROLE, INLINE),
                Touched(f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy", INLINE),
            },
        ),
        (
            "DeleteRolePolicy",
            {"roleName": "LambdaS3ListBuckets", "policyName": "LambdaS3ListBucketsPolicy"},
            {
                Touched(DEST_ROLE, INLINE),
                Touched(f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy", INLINE),
            },
        ),
        (
            "AttachRolePolicy",
            {"roleName": "LambdaS3ListBuckets", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            {Touched(DEST_ROLE, ATTACHED)},
        ),
        (
            "DeleteRolePermissionsBoundary",
            {"roleName": "LambdaS3ListBuckets"},
            {Touched(DEST_ROLE, BOUNDARY)},
        ),
        ("DeleteRole", {"roleName": "LambdaS3ListBuckets"}, {Touched(DEST_ROLE, None)}),
        (
            "UpdateAssumeRolePolicy",
            {"roleName": "lab-auditor-change-events", "policyDocument": "{}"},
            {Touched(f"arn:aws:iam::{DEST}:role/lab-auditor-change-events", TRUST)},
        ),
        ("CreateRole", {"roleName": "LambdaS3ListBuckets", "path": "/"}, {Touched(DEST_ROLE, None)}),
    ],
)
def test_iam_calls_touch_the_role_and_the_inline_policy_they_name(
    event_name: str, parameters: dict[str, Any], touched: set[Touched]
) -> None:
    assert touched_resources(record(DEST, event_name, parameters)) == touched


@pytest.mark.parametrize(
    ("event_name", "function_name", "codes"),
    [
        ("UpdateFunctionConfiguration20150331v2", "Lambda-Assume-Roles", CONFIGURATION),
        ("UpdateFunctionCode20150331v2", "Lambda-Assume-Roles", CODE),
        ("UpdateFunctionCode20150331v2", FUNCTION, CODE),
        ("UpdateFunctionCode20150331v2", f"{FUNCTION}:$LATEST", CODE),
        ("UpdateFunctionCode20150331v2", f"{ORIGIN}:function:Lambda-Assume-Roles", CODE),
        ("DeleteFunction20150331", "Lambda-Assume-Roles", None),
        ("CreateFunction20150331", "Lambda-Assume-Roles", None),
    ],
)
def test_lambda_calls_touch_the_function_however_it_is_named(
    event_name: str, function_name: str, codes: frozenset[str] | None
) -> None:
    assert touched_resources(lambda_record(event_name, function_name)) == {Touched(FUNCTION, codes)}


def test_a_function_named_by_the_arn_of_another_region_is_that_function() -> None:
    other = f"arn:aws:lambda:us-west-2:{ORIGIN}:function:Lambda-Assume-Roles"
    [touched] = touched_resources(lambda_record("UpdateFunctionCode20150331v2", other))
    assert touched.resource == other


@pytest.mark.parametrize(
    "document",
    [
        record(DEST, "UpdateAssumeRolePolicy", None),  # CloudTrail left the parameters out
        record(DEST, "UpdateAssumeRolePolicy", {}),
        record(DEST, "UpdateAssumeRolePolicy", {"roleName": 7}),
        record(DEST, "CreateUser", {"userName": "eve"}),
        record(DEST, "PutRolePolicy", {"roleName": "LambdaS3ListBuckets"}, source="sts.amazonaws.com"),
        lambda_record("UpdateFunctionCode20150331v2", ""),
        lambda_record("Invoke", "Lambda-Assume-Roles"),
        lambda_record("UpdateFunctionCode20150331v2", "arn:aws:lambda:eu-west-1:function"),
    ],
)
def test_a_call_that_names_no_lab_resource_we_know_touches_nothing(document: dict[str, Any]) -> None:
    assert touched_resources(document) == frozenset()
    assert change_from_record(document) is None


def test_the_envelope_stands_in_for_an_account_and_region_the_record_lacks() -> None:
    document = lambda_record("UpdateFunctionCode20150331v2", "Lambda-Assume-Roles")
    del document["recipientAccountId"], document["awsRegion"]
    assert touched_resources(document) == frozenset()
    [touched] = touched_resources(document, ORIGIN, "eu-west-1")
    assert touched.resource == FUNCTION


# ---------------------------------------------------------------------------------- explaining findings


def change(event_name: str, parameters: dict[str, Any], minute: int, session: str = "alice") -> Any:
    document = record(DEST, event_name, parameters, identity=assumed_role(DEST, session), time=at(minute))
    return change_from_record(document)


def test_a_finding_gets_the_latest_change_before_the_audit_that_touched_that_very_resource() -> None:
    trust = found("trust_policy.widened", DEST_ROLE)
    changes = [
        change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1, "alice"),
        change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 5, "bob"),
        change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 30, "carol"),  # after the audit
        change("UpdateAssumeRolePolicy", {"roleName": "Lambda-Assume-Roles"}, 6, "dave"),  # another role
        change(
            "PutRolePolicy", {"roleName": "LambdaS3ListBuckets", "policyName": "P"}, 7, "erin"
        ),  # not trust
    ]
    [explained] = explain([trust], changes, T0 + timedelta(minutes=10))
    assert explained.changed_by is not None
    assert explained.changed_by.arn.endswith("/bob")


def test_without_a_change_that_touched_it_a_finding_stays_unexplained() -> None:
    inline = found("inline_policy.widened", f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy")
    changes = [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1)]
    assert explain([inline], changes, None) == (inline,)


def test_deleting_the_role_explains_every_finding_of_it_and_of_its_policies() -> None:
    findings = [
        found("resource.missing", DEST_ROLE),
        found("inline_policy.widened", f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy"),
        found("trust_policy.widened", ORIGIN_ROLE),
    ]
    explained = explain(findings, [change("DeleteRole", {"roleName": "LambdaS3ListBuckets"}, 1)], None)
    assert [f.changed_by is not None for f in explained] == [True, True, False]


def test_an_actor_already_known_is_kept() -> None:
    first = explain(
        [found("trust_policy.widened", DEST_ROLE)],
        [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1, "alice")],
        None,
    )
    later = explain(
        first, [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 2, "bob")], None
    )
    assert later[0].changed_by is not None and later[0].changed_by.arn.endswith("/alice")


def test_a_finding_found_again_in_the_same_state_keeps_its_actor_and_a_changed_one_does_not() -> None:
    [before] = explain(
        [found("trust_policy.widened", DEST_ROLE, actual={"Principal": "*"})],
        [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1)],
        None,
    )
    same = found("trust_policy.widened", DEST_ROLE, actual={"Principal": "*"})
    other = found("trust_policy.widened", DEST_ROLE, actual={"Principal": "arn:aws:iam::999999999999:root"})
    assert carried_forward([same], [before])[0].changed_by == before.changed_by
    assert carried_forward([other], [before])[0].changed_by is None


def test_an_audit_takes_its_events_first_then_the_previous_audit() -> None:
    trust = found("trust_policy.widened", DEST_ROLE, actual={"Principal": "*"})
    inline = found("inline_policy.widened", f"{DEST_ROLE}/inline-policy/P", actual={})
    [old_trust] = explain(
        [trust], [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1, "alice")], None
    )
    [old_inline] = explain(
        [inline],
        [change("PutRolePolicy", {"roleName": "LambdaS3ListBuckets", "policyName": "P"}, 2, "alice")],
        None,
    )
    audit = LabAudit(
        "pair-01", ORIGIN, DEST, Verdict.DRIFTED, (trust, inline), started_at=T0 + timedelta(minutes=10)
    )
    newer = [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 8, "bob")]
    explained = explain_audit(audit, newer, (old_trust, old_inline))
    assert [f.changed_by.arn.rsplit("/", 1)[-1] for f in explained.findings if f.changed_by] == [
        "bob",
        "alice",
    ]


# --------------------------------------------------------------------------------------- the rate limit


class FakeClock:
    """A clock the test moves; `sleep` moves it too, as time passes while a caller waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)


def test_the_limiter_spaces_requests_of_one_account_and_region_at_its_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock, clock.sleep)
    waits = [limiter.acquire("100000000001", "us-east-1") for _ in range(4)]
    assert waits == [0.0, 0.5, 1.0, 1.5]
    assert limiter.acquire("200000000001", "us-east-1") == 0.0  # another account: its own quota
    assert limiter.acquire("100000000001", "eu-west-1") == 0.0  # another region: its own quota
    clock.now += 10
    assert limiter.acquire("100000000001", "us-east-1") == 0.0  # idle long enough: no wait


def test_threads_sharing_the_limiter_get_slots_half_a_second_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock, clock.sleep)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        wait = limiter.acquire("100000000001", "us-east-1")
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.5 * n for n in range(8)]


# ------------------------------------------------------------------------------- CloudTrail's history


def lookup_event(document: dict[str, Any]) -> dict[str, Any]:
    """One entry of LookupEvents' `Events`, as the API reference lists its members."""
    return {
        "EventId": document["eventID"],
        "EventName": document["eventName"],
        "ReadOnly": "false",
        "AccessKeyId": "ASIAEXAMPLEKEY",
        "EventTime": parse_time(document["eventTime"]),
        "EventSource": document["eventSource"],
        "Username": "alice",
        "Resources": [{"ResourceType": "AWS::IAM::Role", "ResourceName": "LambdaS3ListBuckets"}],
        "CloudTrailEvent": json.dumps(document),
    }


@pytest.fixture
def cloudtrail() -> Any:
    return boto3.client("cloudtrail", region_name="us-east-1")


def history_of(
    client: Any, limiter: RateLimiter, max_requests: int = 6
) -> tuple[CloudTrailHistory, list[tuple[str, str]]]:
    asked: list[tuple[str, str]] = []

    def client_for(account: str, region: str) -> Any:
        asked.append((account, region))
        return client

    return CloudTrailHistory(client_for, limiter, max_requests), asked


def expected_request(name: str, since: datetime, until: datetime, token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": name}],
        "StartTime": since,
        "EndTime": until,
        "MaxResults": LOOKUP_PAGE,
    }
    if token:
        request["NextToken"] = token
    return request


def test_the_history_finds_who_changed_the_trust_in_us_east_1_of_the_role_s_account(cloudtrail: Any) -> None:
    since, until = T0, T0 + timedelta(minutes=10)
    clock = FakeClock()
    history, asked = history_of(cloudtrail, RateLimiter(2.0, clock, clock.sleep))
    older = record(
        DEST,
        "UpdateAssumeRolePolicy",
        {"roleName": "LambdaS3ListBuckets"},
        identity=assumed_role(DEST, "alice"),
        time=at(2),
        event_id="e-1",
    )
    newer = record(
        DEST,
        "UpdateAssumeRolePolicy",
        {"roleName": "LambdaS3ListBuckets"},
        identity=assumed_role(DEST, "bob"),
        time=at(6),
        event_id="e-2",
    )
    failed = record(
        DEST,
        "UpdateAssumeRolePolicy",
        {"roleName": "LambdaS3ListBuckets"},
        identity=assumed_role(DEST, "eve"),
        time=at(8),
        error="AccessDenied",
    )
    with Stubber(cloudtrail) as stub:
        stub.add_response(
            "lookup_events",
            {"Events": [lookup_event(failed), lookup_event(newer)], "NextToken": "page-2"},
            expected_request("LambdaS3ListBuckets", since, until),
        )
        stub.add_response(
            "lookup_events",
            {"Events": [lookup_event(older)]},
            expected_request("LambdaS3ListBuckets", since, until, "page-2"),
        )
        audit = LabAudit(
            "pair-01",
            ORIGIN,
            DEST,
            Verdict.DRIFTED,
            (found("trust_policy.widened", DEST_ROLE),),
            started_at=until,
        )
        explained = look_up_actors(audit, history, since)
        stub.assert_no_pending_responses()
    actor = explained.findings[0].changed_by
    assert actor is not None and actor.arn.endswith("/bob") and actor.event_id == "e-2"
    assert asked == [(DEST, "us-east-1")]
    assert clock.slept == [0.5]  # the second page waited for its slot


def test_the_history_looks_up_a_function_in_its_own_region(cloudtrail: Any) -> None:
    since, until = T0, T0 + timedelta(minutes=10)
    history, asked = history_of(cloudtrail, RateLimiter(2.0, FakeClock(), lambda _: None))
    code = lambda_record("UpdateFunctionCode20150331v2", "Lambda-Assume-Roles", time=at(3))
    with Stubber(cloudtrail) as stub:
        stub.add_response(
            "lookup_events",
            {"Events": [lookup_event(code)]},
            expected_request("Lambda-Assume-Roles", since, until),
        )
        audit = LabAudit(
            "pair-01",
            ORIGIN,
            DEST,
            Verdict.BROKEN,
            (found("lambda_code.modified", FUNCTION), found("invoke.failed", FUNCTION)),
            started_at=until,
        )
        explained = look_up_actors(audit, history, since)
    assert asked == [(ORIGIN, "eu-west-1")]
    assert [f.changed_by is not None for f in explained.findings] == [True, True]


def test_the_history_stays_within_its_budget_of_requests(cloudtrail: Any) -> None:
    since, until = T0, T0 + timedelta(minutes=10)
    history, _ = history_of(cloudtrail, RateLimiter(1000.0, FakeClock(), lambda _: None), max_requests=3)
    with Stubber(cloudtrail) as stub:
        for page in range(3):
            stub.add_response(
                "lookup_events",
                {"Events": [], "NextToken": f"page-{page + 1}"},
                expected_request("LambdaS3ListBuckets", since, until, f"page-{page}" if page else None),
            )
        findings = (
            found("trust_policy.widened", DEST_ROLE),
            found("trust_policy.widened", ORIGIN_ROLE),
            found("lambda_code.modified", FUNCTION),
        )
        audit = LabAudit("pair-01", ORIGIN, DEST, Verdict.DRIFTED, findings, started_at=until)
        explained = look_up_actors(audit, history, since)  # a fourth request would find no answer stubbed
        stub.assert_no_pending_responses()
    assert all(f.changed_by is None for f in explained.findings)


def test_nothing_is_looked_up_for_findings_already_explained_or_that_no_call_of_ours_explains(
    cloudtrail: Any,
) -> None:
    since, until = T0, T0 + timedelta(minutes=10)
    history, asked = history_of(cloudtrail, RateLimiter(2.0, FakeClock(), lambda _: None))
    [explained] = explain(
        [found("trust_policy.widened", DEST_ROLE)],
        [change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1)],
        None,
    )
    log_group = found(
        "log_group.retention", f"arn:aws:logs:eu-west-1:{ORIGIN}:log-group:/aws/lambda/Lambda-Assume-Roles"
    )
    audit = LabAudit("pair-01", ORIGIN, DEST, Verdict.DRIFTED, (explained, log_group), started_at=until)
    with Stubber(cloudtrail):
        assert look_up_actors(audit, history, since) == audit
    assert asked == []


def test_lookups_are_one_per_resource_name_account_and_region() -> None:
    findings = [
        found("trust_policy.widened", DEST_ROLE),
        found("inline_policy.widened", f"{DEST_ROLE}/inline-policy/LambdaS3ListBucketsPolicy"),
        found("lambda_config.modified", FUNCTION),
        found("invoke.failed", FUNCTION),
        found("event_rule.modified", f"arn:aws:events:us-east-1:{DEST}:rule/lab-auditor-changes"),
    ]
    assert lookups_for(findings) == [
        Lookup(DEST, "us-east-1", "LambdaS3ListBuckets"),
        Lookup(ORIGIN, "eu-west-1", "Lambda-Assume-Roles"),
    ]


def test_a_change_travels_as_json_between_replicas_with_its_codes() -> None:
    put = change("PutRolePolicy", {"roleName": "LambdaS3ListBuckets", "policyName": "P"}, 1)
    gone = change("DeleteRole", {"roleName": "LambdaS3ListBuckets"}, 2)
    for one in (put, gone):
        assert Change.from_json(json.loads(json.dumps(one.to_json()))) == one


def test_a_change_queued_by_a_replica_of_before_codes_explains_the_findings_of_its_checks() -> None:
    queued = {
        "actor": change("UpdateAssumeRolePolicy", {"roleName": "LambdaS3ListBuckets"}, 1).actor.to_json(),
        "touched": [{"resource": DEST_ROLE, "checks": ["trust_policy"]}],
    }
    read = Change.from_json(queued)
    assert read is not None and read.touched == {Touched(DEST_ROLE, TRUST_POLICY)}
