"""auditor.resources.permissions: the declared API calls stay true to the code, and the policies built from them work.

The lifecycle test runs the real code paths on moto (provision, drift, provision again, audit, teardown),
each phase on a fresh runtime as each command opens its own, and compares the calls counted by the
sessions' before-call hook with the table: a call the table does not declare fails, and so does a
declared call that its part no longer makes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import botocore.session
import pytest
from click.testing import CliRunner
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.cli.permissions import permissions_command
from auditor.domain.config import AccountAccess, ClassSettings, EventsSettings, LabConfig, LabSettings
from auditor.domain.model import Verdict
from auditor.domain.spec import (
    DESTINATION_ROLE,
    EVENT_FORWARDING_ROLE,
    EVENT_RULE,
    FUNCTION,
    ORIGIN_ROLE,
    ExpectedLab,
    marker_bucket_name,
    render,
)
from auditor.policy import Policy, expand_action, is_allowed, parse_policy
from auditor.resources.base import UNSCOPED, ApiCall, Caller, Coverage, Part, Scope
from auditor.resources.kinds.event_role import FORWARDING_ROLE, FORWARDING_ROLE_TO_EVENTS
from auditor.resources.kinds.event_rule import LAB_EVENT_RULE
from auditor.resources.kinds.function import EXECUTION_ROLE_TO_LAMBDA, LAB_FUNCTION
from auditor.resources.kinds.log_group import LAB_LOG_GROUP
from auditor.resources.kinds.managed_policies import ATTACHED_POLICIES
from auditor.resources.kinds.marker_bucket import MARKER_BUCKET, MARKER_OBJECTS
from auditor.resources.kinds.role import LAB_ROLES
from auditor.resources.kinds.trail import ANY_TRAIL
from auditor.resources.permissions import (
    ACCESS_ROLE,
    API_CALLS,
    api_calls,
    calls_by,
    lab_account_policy,
    lab_account_trust_policy,
    operator_policy,
    queue_arn_from_url,
)
from auditor.resources.support import (
    ACCESS_ROLE_ITSELF,
    ACCESS_ROLES,
    EVENT_QUEUE,
    OPERATOR_EVENT_BUS,
    OPERATOR_EVENT_RULE,
    OPERATOR_UNSCOPED,
)
from conftest import in_process_context, make_config, pair
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_targets

OPERATOR = "999988887777"
# A lab reached with the operator's own credentials (moto's default account): verify() asks STS who it is.
OWN_CREDENTIALS = AccountAccess(DEFAULT_ACCOUNT_ID)
LABS = (pair(1), LabConfig("own-03", OWN_CREDENTIALS, OWN_CREDENTIALS))
DRIFTED = pair(1)
# The phases of the lifecycle test, and the parts whose calls each may make.
PHASE_PARTS = {
    "provision": {Part.PROVISION},
    "audit": {Part.AUDIT, Part.INVOKE},
    "teardown": {Part.TEARDOWN},
}
PassedToLambda = {"iam:PassedToService": "lambda.amazonaws.com"}
PassedToEvents = {"iam:PassedToService": "events.amazonaws.com"}
Calls = dict[str, int]


# ------------------------------------------------------------------------------------- the lifecycle


def _client(context: Context, access: AccountAccess, service: str) -> Any:
    return context.sessions.client(access, service)


def _code_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", text)
    return buffer.getvalue()


def _student_policies(context: Context, suffix: str) -> None:
    """What students do to the origin role: a managed policy, a boundary, an inline policy of their own."""
    iam = _client(context, DRIFTED.origin, "iam")
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]}
    )
    managed = iam.create_policy(PolicyName=f"StudentReadOnly{suffix}", PolicyDocument=document)
    boundary = iam.create_policy(PolicyName=f"StudentBoundary{suffix}", PolicyDocument=document)
    iam.attach_role_policy(RoleName=ORIGIN_ROLE, PolicyArn=managed["Policy"]["Arn"])
    iam.put_role_permissions_boundary(RoleName=ORIGIN_ROLE, PermissionsBoundary=boundary["Policy"]["Arn"])
    iam.put_role_policy(RoleName=ORIGIN_ROLE, PolicyName=f"student-extra{suffix}", PolicyDocument=document)


def _drift_everything_the_provisioner_restores(context: Context) -> None:
    _student_policies(context, "1")
    open_trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    _client(context, DRIFTED.destination, "iam").update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(open_trust)
    )
    function = _client(context, DRIFTED.origin, "lambda")
    function.update_function_configuration(FunctionName=FUNCTION, Timeout=60)
    function.update_function_code(FunctionName=FUNCTION, ZipFile=_code_zip("x = 1\n"))


def _drift_what_the_audit_reads_and_the_teardown_removes(context: Context) -> None:
    _student_policies(context, "2")
    bucket = marker_bucket_name(DRIFTED.destination.account_id, context.config.lab.region)
    _client(context, DRIFTED.destination, "s3").put_object(Bucket=bucket, Key="notes.txt", Body=b"mine")


def _account_trail(context: Context) -> None:
    """What the owner of a lab account set up: a multi-region trail logging management events."""
    bucket = "trail-logs-100000000001"
    _client(context, DRIFTED.origin, "s3").create_bucket(Bucket=bucket)
    cloudtrail = _client(context, DRIFTED.origin, "cloudtrail")
    cloudtrail.create_trail(Name="management", S3BucketName=bucket, IsMultiRegionTrail=True)
    cloudtrail.put_event_selectors(
        TrailName="management",
        EventSelectors=[{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}],
    )
    cloudtrail.start_logging(Name="management")


def _provision(context: Context) -> None:
    outcomes = provision_targets(context, context.targets(), dry_run=False)
    assert [o.error for o in outcomes if not o.ok] == []


def _audit(context: Context) -> None:
    run = audit_targets(context, context.targets(), invoke=False)
    assert [(lab.lab, lab.error) for lab in run.labs if lab.verdict is Verdict.ERROR] == []


def _teardown(context: Context) -> None:
    outcomes = teardown_targets(context, context.targets(), dry_run=False)
    assert [o.error for o in outcomes if not o.ok] == []


def _phase(step: Callable[[Context], None], queue_url: str) -> Calls:
    """One command's worth of work on a runtime of its own, with change events on."""
    context = open_context(replace(make_config(LABS), events=EventsSettings(queue_url=queue_url)))
    step(context)
    return dict(context.sessions.calls)


def _merged(*phases: Calls) -> Calls:
    merged: Calls = {}
    for calls in phases:
        for operation, count in calls.items():
            merged[operation] = merged.get(operation, 0) + count
    return merged


def _fake_aws_environment(env: pytest.MonkeyPatch) -> None:
    # The autouse fixture of conftest.py is per test; this module-wide run needs the same isolation.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        env.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        env.setenv(name, value)


@pytest.fixture(scope="module")
def calls_by_phase() -> Iterator[dict[str, Calls]]:
    """The API calls of every phase of a lab's life, counted by the sessions' before-call hook."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        _fake_aws_environment(env)
        # The operator's queue for change events, made as the operator makes it (not counted).
        queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="lab-auditor-events")
        url = queue["QueueUrl"]
        _phase(_account_trail, url)
        first = _phase(_provision, url)
        _phase(_drift_everything_the_provisioner_restores, url)
        restore = _phase(_provision, url)
        _phase(_drift_what_the_audit_reads_and_the_teardown_removes, url)
        audit = _phase(_audit, url)
        teardown = _phase(_teardown, url)
        yield {"provision": _merged(first, restore), "audit": audit, "teardown": teardown}


def _declaring(operation: str) -> list[ApiCall]:
    return [call for call in API_CALLS if call.operation == operation]


@pytest.mark.slow  # calls_by_phase: a lab's whole life on moto in process
def test_every_call_the_code_makes_is_declared(calls_by_phase: dict[str, Calls]) -> None:
    undeclared = sorted(
        f"{operation} (in {phase})"
        for phase, calls in calls_by_phase.items()
        for operation in calls
        if not _declaring(operation)
    )
    assert undeclared == [], (
        "declare these calls and their IAM actions with the kind that makes them (auditor/resources/)"
    )


@pytest.mark.slow  # calls_by_phase: a lab's whole life on moto in process
def test_every_call_is_declared_for_the_part_that_makes_it(calls_by_phase: dict[str, Calls]) -> None:
    misplaced = sorted(
        f"{operation} is made by {phase}"
        for phase, calls in calls_by_phase.items()
        for operation in calls
        if _declaring(operation)
        and not any(call.parts & PHASE_PARTS[phase] for call in _declaring(operation))
    )
    assert misplaced == []


@pytest.mark.slow  # calls_by_phase: a lab's whole life on moto in process
def test_every_declared_call_is_still_made(calls_by_phase: dict[str, Calls]) -> None:
    stale = sorted(
        f"{call.operation} is declared for {part.value} but {part.value} did not call it"
        for call in API_CALLS
        if call.coverage is Coverage.MOTO
        for part in call.parts
        if part.value in calls_by_phase and call.operation not in calls_by_phase[part.value]
    )
    assert stale == [], "remove stale declarations from auditor/resources/, or mark where they are made"


@pytest.mark.slow  # calls_by_phase: a lab's whole life on moto in process
def test_the_daemons_part_declares_every_call_of_its_audits_and_teardowns(
    calls_by_phase: dict[str, Calls],
) -> None:
    """The daemon audits and tears down at expiry: every call of those phases is in its part."""
    daemon = {call.operation for call in api_calls("daemon", on_real_aws=False)}
    made = {operation for phase in ("audit", "teardown") for operation in calls_by_phase[phase]}
    assert made - daemon == set()
    provision_only = {call.operation for call in api_calls("provision")}
    assert provision_only and provision_only <= set(calls_by_phase["provision"])


@pytest.mark.usefixtures("moto_in_process")
def test_when_students_build_each_phase_makes_only_the_calls_of_that_mode() -> None:
    """Students build the lab (here: nobody has yet): provision sets up the project's parts, the audit
    reads, the teardown removes the project's parts, each within `--part` of `built_by = "students"`."""
    queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="lab-auditor-events")
    config = replace(
        make_config((pair(1),)),
        classroom=ClassSettings(built_by="students"),
        events=EventsSettings(queue_url=queue["QueueUrl"]),
    )
    allowed = {
        "provision": {call.operation for call in api_calls("all", "students", on_real_aws=False)},
        "audit": {call.operation for call in api_calls("daemon", "students", on_real_aws=False)},
        "teardown": {call.operation for call in api_calls("daemon", "students", on_real_aws=False)},
    }
    steps = {"provision": _provision, "audit": _audit, "teardown": _teardown}
    for phase, step in steps.items():
        context = open_context(config)
        step(context)
        assert context.sessions.calls, phase
        assert set(context.sessions.calls) - allowed[phase] == set(), phase
    # The only role the project makes or removes is its own: the change-event rules' execution role.
    roles_changed = {
        grant.scope
        for call in api_calls("all", "students", on_real_aws=False)
        if call.operation in ("iam:CreateRole", "iam:DeleteRole")
        for grant in call.grants
    }
    assert roles_changed == {FORWARDING_ROLE}


def test_every_call_declared_as_tested_belongs_to_a_tested_part() -> None:
    untested = [
        call.operation
        for call in API_CALLS
        if call.coverage is Coverage.MOTO and not {p.value for p in call.parts} & set(PHASE_PARTS)
    ]
    assert untested == []


@pytest.mark.usefixtures("moto_in_process")
def test_an_audit_through_the_lambda_invoke_api_makes_only_declared_calls() -> None:
    context = in_process_context(pair(1), invoke_via="lambda")
    _provision(context)
    before = dict(context.sessions.calls)
    audit_targets(context, context.targets(), invoke=True)
    made = {op for op, count in context.sessions.calls.items() if count > before.get(op, 0)}
    assert "lambda:Invoke" in made
    assert [op for op in made if not any(c.parts & PHASE_PARTS["audit"] for c in _declaring(op))] == []


# ------------------------------------------------------------------------------------------ the table


def test_operations_are_named_as_botocore_names_them() -> None:
    session = botocore.session.get_session()
    unknown = []
    for call in API_CALLS:
        service, _, name = call.operation.partition(":")
        if name not in session.get_service_model(service).operation_names:
            unknown.append(call.operation)
    assert unknown == []


def test_every_action_is_an_iam_action() -> None:
    unknown = sorted(
        action
        for call in API_CALLS
        for action in call.actions
        if action.lower() not in expand_action(action.split(":", 1)[0] + ":*")
    )
    assert unknown == []


def test_calls_only_made_elsewhere_say_where() -> None:
    exempt = {call.operation: call.coverage for call in API_CALLS if call.coverage is not Coverage.MOTO}
    assert exempt["lambda:Invoke"] is Coverage.REAL_AWS
    assert exempt["sqs:ReceiveMessage"] is Coverage.DAEMON
    assert exempt["sqs:CreateQueue"] is Coverage.EMULATOR
    assert exempt["iam:SimulatePrincipalPolicy"] is Coverage.REAL_AWS  # the doctor simulates on AWS only
    assert all(call.used_by for call in API_CALLS)


# ------------------------------------------------------------------------------------------- policies


def _resources_the_code_uses(lab: ExpectedLab) -> dict[str, list[str]]:
    """For each statement of the lab account policy, the resources of a real lab that it must cover."""
    function, bucket = lab.function, lab.marker_bucket
    accounts = (lab.origin_account, lab.destination_account)
    log_group = f"arn:aws:logs:{lab.region}:{lab.origin_account}:log-group:{function.log_group}"
    return {
        LAB_ROLES.sid: [role.arn for role in lab.roles],
        EXECUTION_ROLE_TO_LAMBDA.sid: [lab.origin_role.arn],
        ATTACHED_POLICIES.sid: [
            f"arn:aws:iam::{lab.origin_account}:policy/StudentReadOnly",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ],
        LAB_FUNCTION.sid: [function.arn],
        LAB_LOG_GROUP.sid: [log_group, f"{log_group}:*"],
        MARKER_BUCKET.sid: [f"arn:aws:s3:::{bucket.name}"],
        MARKER_OBJECTS.sid: [f"arn:aws:s3:::{bucket.name}/notes.txt"],
        LAB_EVENT_RULE.sid: [
            f"arn:aws:events:{region}:{account}:rule/{EVENT_RULE}"
            for account in (lab.origin_account, lab.destination_account)
            for region in (lab.region, "us-east-1")
        ],
        FORWARDING_ROLE.sid: [f"arn:aws:iam::{account}:role/{EVENT_FORWARDING_ROLE}" for account in accounts],
        FORWARDING_ROLE_TO_EVENTS.sid: [
            f"arn:aws:iam::{account}:role/{EVENT_FORWARDING_ROLE}" for account in accounts
        ],
        ANY_TRAIL.sid: [
            f"arn:aws:cloudtrail:{region}:{lab.origin_account}:trail/management"
            for region in (lab.region, "us-east-1")
        ],
        ACCESS_ROLE_ITSELF.sid: [
            f"arn:aws:iam::{account}:role/{ACCESS_ROLE}"
            for account in (lab.origin_account, lab.destination_account)
        ],
        UNSCOPED.sid: ["*"],
    }


@pytest.fixture
def lab_policy() -> list[Policy]:
    return [parse_policy(lab_account_policy())]


@pytest.fixture
def real_lab() -> ExpectedLab:
    return render(pair(1), LabSettings(region="eu-central-1"))


def test_the_three_documents_are_valid_policies() -> None:
    for document in (
        lab_account_policy(),
        operator_policy(OPERATOR),
        lab_account_trust_policy(OPERATOR, "classroom-2026"),
        lab_account_trust_policy(OPERATOR, None),
    ):
        assert parse_policy(document).statements


def test_the_lab_account_policy_fits_in_a_managed_policy() -> None:
    # IAM counts the characters of a managed policy without whitespace: at most 6,144.
    assert len(json.dumps(lab_account_policy(), separators=(",", ":"))) <= 6144


def _passed_to(scope: Scope) -> dict[str, str]:
    """The service a role is passed to: the rules' execution role to EventBridge, the lab's to Lambda."""
    return PassedToEvents if scope == FORWARDING_ROLE_TO_EVENTS else PassedToLambda


@pytest.mark.parametrize("built_by", ["provisioner", "students"])
def test_the_lab_account_policy_allows_each_declared_action_on_the_resources_the_code_uses(
    built_by: str, real_lab: ExpectedLab
) -> None:
    uses = _resources_the_code_uses(real_lab)
    lab_policy = [parse_policy(lab_account_policy(built_by=built_by))]
    refused = [
        (grant.action, resource)
        for call in api_calls(built_by=built_by, caller=Caller.LAB_ACCOUNT)
        for grant in call.grants
        for resource in uses[grant.scope.sid]
        if not is_allowed(lab_policy, grant.action, resource, _passed_to(grant.scope))
    ]
    assert refused == []


@pytest.mark.parametrize(
    ("action", "resource", "context"),
    [
        ("iam:DeleteRole", "arn:aws:iam::100000000001:role/OrganizationAccountAccessRole", {}),
        ("iam:PutRolePolicy", f"arn:aws:iam::100000000001:role/{ACCESS_ROLE}", {}),
        ("iam:AttachRolePolicy", f"arn:aws:iam::100000000001:role/{ORIGIN_ROLE}", {}),
        ("iam:PassRole", f"arn:aws:iam::100000000001:role/{ORIGIN_ROLE}", {}),
        (
            "iam:PassRole",
            f"arn:aws:iam::100000000001:role/{ORIGIN_ROLE}",
            {"iam:PassedToService": "ec2.amazonaws.com"},
        ),
        ("iam:PassRole", f"arn:aws:iam::200000000001:role/{DESTINATION_ROLE}", PassedToLambda),
        ("iam:CreatePolicyVersion", "arn:aws:iam::100000000001:policy/StudentReadOnly", {}),
        ("lambda:UpdateFunctionCode", "arn:aws:lambda:eu-central-1:100000000001:function:student-app", {}),
        (
            "logs:DeleteLogGroup",
            "arn:aws:logs:eu-central-1:100000000001:log-group:/aws/lambda/student-app",
            {},
        ),
        ("s3:DeleteBucket", "arn:aws:s3:::student-data", {}),
        ("s3:DeleteObject", "arn:aws:s3:::student-data/thesis.pdf", {}),
        ("events:PutRule", "arn:aws:events:eu-central-1:100000000001:rule/student-rule", {}),
        ("iam:SimulatePrincipalPolicy", "arn:aws:iam::100000000001:role/OrganizationAccountAccessRole", {}),
        ("iam:SimulatePrincipalPolicy", f"arn:aws:iam::100000000001:role/{ORIGIN_ROLE}", {}),
        ("iam:SimulatePrincipalPolicy", "arn:aws:iam::100000000001:user/student", {}),
    ],
)
def test_the_lab_account_policy_allows_nothing_beyond_the_lab(
    lab_policy: list[Policy], action: str, resource: str, context: dict[str, str]
) -> None:
    assert not is_allowed(lab_policy, action, resource, context)


@pytest.mark.parametrize("built_by", ["provisioner", "students"])
def test_the_daemons_part_lets_the_access_role_simulate_itself_and_no_other(built_by: str) -> None:
    """`auditor doctor` simulates the role as the daemon holds it: the daemon's part grants that, on the
    role's own ARN in any lab account, for the access role it is written for."""
    simulate = "iam:SimulatePrincipalPolicy"
    assert simulate in {action for call in api_calls("daemon", built_by) for action in call.actions}
    assert simulate not in {action for call in api_calls("provision", built_by) for action in call.actions}
    daemon = [parse_policy(lab_account_policy(part="daemon", built_by=built_by, access_role="Auditor"))]
    for account in ("100000000001", "200000000001"):
        assert is_allowed(daemon, simulate, f"arn:aws:iam::{account}:role/Auditor")
        assert not is_allowed(daemon, simulate, f"arn:aws:iam::{account}:role/{ACCESS_ROLE}")
        assert not is_allowed(daemon, simulate, f"arn:aws:iam::{account}:role/AuditorAdmin")
        assert not is_allowed(daemon, simulate, f"arn:aws:iam::{account}:role/{DESTINATION_ROLE}")
    assert not is_allowed(daemon, simulate, "arn:aws:iam::100000000001:user/Auditor")


def test_emulator_only_calls_stay_out_of_the_real_aws_policy(
    lab_policy: list[Policy], real_lab: ExpectedLab
) -> None:
    emulator_only = [call for call in API_CALLS if call.coverage is Coverage.EMULATOR]
    assert emulator_only
    for call in emulator_only:
        for action in call.actions:
            assert not is_allowed(lab_policy, action, real_lab.origin_role.arn)


def test_the_operator_policy_allows_each_declared_action_on_the_resources_the_code_uses() -> None:
    policy = [parse_policy(operator_policy(OPERATOR))]
    uses = {
        ACCESS_ROLES.sid: [
            f"arn:aws:iam::{account}:role/{ACCESS_ROLE}" for account in ("100000000001", "200000000001")
        ],
        EVENT_QUEUE.sid: [f"arn:aws:sqs:us-east-1:{OPERATOR}:lab-auditor-events"],
        OPERATOR_EVENT_RULE.sid: [f"arn:aws:events:us-east-1:{OPERATOR}:rule/{EVENT_RULE}"],
        OPERATOR_EVENT_BUS.sid: [f"arn:aws:events:eu-west-1:{OPERATOR}:event-bus/default"],
        OPERATOR_UNSCOPED.sid: ["*"],
    }
    refused = [
        (grant.action, resource)
        for call in calls_by(Caller.OPERATOR)
        for grant in call.grants
        for resource in uses[grant.scope.sid]
        if not is_allowed(policy, grant.action, resource)
    ]
    assert refused == []
    assert not is_allowed(
        policy, "events:PutRule", f"arn:aws:events:us-east-1:111122223333:rule/{EVENT_RULE}"
    )
    assert not is_allowed(policy, "events:PutRule", f"arn:aws:events:us-east-1:{OPERATOR}:rule/other")
    # The bus's own policy is changed by actions that take no resource type: AWS authorizes them on "*"
    # only (the Service Authorization Reference; a narrower Resource would deny them on real AWS).
    assert is_allowed(policy, "events:PutPermission", "*")
    assert is_allowed(policy, "events:RemovePermission", "*")
    assert not is_allowed(
        policy, "events:DescribeEventBus", "arn:aws:events:us-east-1:111122223333:event-bus/default"
    )
    assert not is_allowed(policy, "sqs:CreateQueue", f"arn:aws:sqs:us-east-1:{OPERATOR}:lab-auditor-events")


def test_the_operator_may_assume_only_the_access_role() -> None:
    policy = [parse_policy(operator_policy(OPERATOR))]
    assert is_allowed(policy, "sts:AssumeRole", f"arn:aws:iam::100000000001:role/{ACCESS_ROLE}")
    assert not is_allowed(
        policy, "sts:AssumeRole", "arn:aws:iam::100000000001:role/OrganizationAccountAccessRole"
    )
    other = [parse_policy(operator_policy(OPERATOR, access_role="Auditor"))]
    assert is_allowed(other, "sts:AssumeRole", "arn:aws:iam::100000000001:role/Auditor")


def test_the_operator_reads_change_events_from_its_own_queue_only() -> None:
    policy = [parse_policy(operator_policy(OPERATOR))]
    for call in calls_by(Caller.OPERATOR):
        if any(grant.scope == EVENT_QUEUE for grant in call.grants):
            assert is_allowed(policy, call.actions[0], f"arn:aws:sqs:us-east-1:{OPERATOR}:lab-auditor-events")
            assert not is_allowed(policy, call.actions[0], "arn:aws:sqs:us-east-1:111122223333:other")
    queue = "arn:aws:sqs:eu-west-1:999988887777:events"
    narrow = [parse_policy(operator_policy(OPERATOR, queue_arn=queue))]
    assert is_allowed(narrow, "sqs:ReceiveMessage", queue)
    assert not is_allowed(narrow, "sqs:ReceiveMessage", f"arn:aws:sqs:eu-west-1:{OPERATOR}:other")


def test_the_trust_policy_requires_the_external_id_when_given() -> None:
    document = lab_account_trust_policy(OPERATOR, "classroom-2026")
    assert document["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": "classroom-2026"}}
    trust = [parse_policy(document)]
    role = f"arn:aws:iam::100000000001:role/{ACCESS_ROLE}"
    operator = f"arn:aws:iam::{OPERATOR}:role/someone"
    assert is_allowed(trust, "sts:AssumeRole", role, {"sts:ExternalId": "classroom-2026"}, principal=operator)
    assert not is_allowed(trust, "sts:AssumeRole", role, {"sts:ExternalId": "guess"}, principal=operator)
    assert not is_allowed(trust, "sts:AssumeRole", role, {}, principal=operator)
    stranger = "arn:aws:iam::111122223333:root"
    assert not is_allowed(
        trust, "sts:AssumeRole", role, {"sts:ExternalId": "classroom-2026"}, principal=stranger
    )


def test_the_trust_policy_has_no_condition_without_an_external_id() -> None:
    statement = lab_account_trust_policy(OPERATOR, None)["Statement"][0]
    assert "Condition" not in statement
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{OPERATOR}:root"}


@pytest.mark.parametrize("account", ["12345", "abcdefghijkl", "1234567890123", ""])
def test_an_account_id_that_is_not_12_digits_is_refused(account: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        lab_account_trust_policy(account, None)
    with pytest.raises(ValueError, match="12 digits"):
        operator_policy(account)


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (
            "https://sqs.eu-west-1.amazonaws.com/999988887777/lab-auditor-events",
            "arn:aws:sqs:eu-west-1:999988887777:lab-auditor-events",
        ),
        (
            "https://us-east-2.queue.amazonaws.com/999988887777/events",
            "arn:aws:sqs:us-east-2:999988887777:events",
        ),
        ("http://moto:5000/123456789012/events.fifo", "arn:aws:sqs:*:123456789012:events.fifo"),
    ],
)
def test_a_queue_url_names_its_queue(url: str, arn: str) -> None:
    assert queue_arn_from_url(url) == arn


@pytest.mark.parametrize(
    "url", ["sqs/events", "https://sqs.eu-west-1.amazonaws.com/events", "https://x/12/events"]
)
def test_a_bad_queue_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        queue_arn_from_url(url)


# -------------------------------------------------------------------------------------------- command


def _run(*args: str) -> Any:
    """The command where no ./config.toml is (it would read one): the options alone say what it prints."""
    with tempfile.TemporaryDirectory() as empty, contextlib.chdir(empty):
        return CliRunner().invoke(permissions_command, list(args), env={"AUDITOR_CONFIG": None})


def test_the_command_prints_the_three_documents_as_json() -> None:
    result = _run("--operator-account", OPERATOR, "--external-id", "classroom-2026", "--format", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["schema"] == "auditor.permissions/v1"
    assert printed["lab_account_policy"]["document"] == lab_account_policy()
    assert printed["lab_account_trust_policy"]["document"] == lab_account_trust_policy(
        OPERATOR, "classroom-2026"
    )
    assert printed["operator_policy"]["document"] == operator_policy(OPERATOR)
    assert all(printed[name]["explanation"] for name in ("lab_account_policy", "operator_policy"))


def test_the_command_prints_each_document_under_a_one_line_explanation() -> None:
    result = _run("--operator-account", OPERATOR)
    assert result.exit_code == 0, result.output
    sections = result.output.strip().split("\n\n")
    assert len(sections) == 3
    for number, section in enumerate(sections, start=1):
        explanation, _, document = section.partition("\n")
        assert explanation.startswith(f"# {number}. ")
        assert parse_policy(document).statements
    assert "sts:ExternalId" not in result.output


def test_the_command_scopes_the_policies_to_the_queue_and_role_given() -> None:
    url = f"https://sqs.eu-west-1.amazonaws.com/{OPERATOR}/lab-auditor-events"
    result = _run(
        "--operator-account", OPERATOR, "--queue-url", url, "--access-role", "Auditor", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    statements = json.loads(result.output)["operator_policy"]["document"]["Statement"]
    resources = {statement["Sid"]: statement["Resource"] for statement in statements}
    assert resources[ACCESS_ROLES.sid] == "arn:aws:iam::*:role/Auditor"
    assert resources[EVENT_QUEUE.sid] == f"arn:aws:sqs:eu-west-1:{OPERATOR}:lab-auditor-events"
    assert resources[OPERATOR_EVENT_RULE.sid] == f"arn:aws:events:*:{OPERATOR}:rule/{EVENT_RULE}"
    lab_statements = json.loads(result.output)["lab_account_policy"]["document"]["Statement"]
    lab_resources = {statement["Sid"]: statement["Resource"] for statement in lab_statements}
    assert lab_resources[ACCESS_ROLE_ITSELF.sid] == "arn:aws:iam::*:role/Auditor"


@pytest.mark.parametrize(
    "args",
    [
        ["--operator-account", "12345"],
        ["--external-id", "classroom-2026"],
        ["--operator-account", OPERATOR, "--queue-url", "not-a-queue"],
        ["--operator-account", OPERATOR, "--external-id", "x"],
        ["--operator-account", OPERATOR, "--format", "yaml"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = _run(*args)
    assert result.exit_code == 2, result.output


def test_a_bad_account_id_is_named_in_the_error() -> None:
    result = _run("--operator-account", "12345")
    assert "not an AWS account id" in result.output


def test_the_command_help_has_an_example() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "auditor permissions --operator-account" in result.output
