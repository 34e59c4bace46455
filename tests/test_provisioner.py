"""Provisioning and teardown against moto in-process: idempotence, restore, exactness, interruption."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from auditor.app.audit import audit_targets
from auditor.app.context import Context
from auditor.app.target import LabTarget
from auditor.domain.model import Action
from auditor.domain.package import build_zip, code_sha256, packaged
from auditor.domain.spec import (
    DESTINATION_POLICY,
    DESTINATION_ROLE,
    FUNCTION,
    ORIGIN_ROLE,
    PROJECT_TAG,
)
from auditor.resources.kinds.function import retry_until_role_ready
from conftest import in_process_context, pair, solo
from provisioner.apply import apply
from provisioner.plan import plan, plan_with_findings
from provisioner.teardown import teardown, teardown_plan

pytestmark = pytest.mark.usefixtures("moto_in_process")


def provision(context: Context, target: LabTarget) -> list[Any]:
    steps = plan(context, target)
    apply(context.sessions, target, steps, sleep=lambda _: None)
    return steps


def client(context: Context, account_id: str, service: str) -> Any:
    lab = next(
        lab
        for lab in context.config.labs
        if account_id in (lab.origin.account_id, lab.destination.account_id)
    )
    access = lab.origin if lab.origin.account_id == account_id else lab.destination
    return context.sessions.client(access, service)


def changing(steps: list[Any]) -> list[tuple[str, str, str]]:
    return [(step.action.value, step.kind, step.name) for step in steps if step.changes]


def test_a_new_lab_is_planned_in_dependency_order() -> None:
    context = in_process_context(pair(1))
    steps = plan(context, context.targets()[0])
    assert [(s.action, s.kind) for s in steps] == [
        (Action.CREATE, "role"),
        (Action.CREATE, "inline_policy"),
        (Action.CREATE, "role"),
        (Action.CREATE, "inline_policy"),
        (Action.CREATE, "function"),
        (Action.CREATE, "log_group"),
        (Action.CREATE, "marker_bucket"),
    ]


def test_provisioning_twice_changes_nothing_the_second_time() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    assert changing(plan(context, target)) == []


def test_resources_land_in_the_accounts_reached_through_assumed_roles() -> None:
    context = in_process_context(pair(1))
    provision(context, context.targets()[0])
    origin, destination = "100000000001", "200000000001"
    origin_roles = {r["RoleName"] for r in client(context, origin, "iam").list_roles()["Roles"]}
    destination_roles = {r["RoleName"] for r in client(context, destination, "iam").list_roles()["Roles"]}
    assert origin_roles == {ORIGIN_ROLE}
    assert destination_roles == {DESTINATION_ROLE}
    function = client(context, origin, "lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    assert function["Role"] == f"arn:aws:iam::{origin}:role/{ORIGIN_ROLE}"
    assert function["Environment"]["Variables"] == {
        "DESTINATION_ROLE_ARN": f"arn:aws:iam::{destination}:role/{DESTINATION_ROLE}"
    }
    assert function["CodeSha256"] == packaged()[1]
    assert function["State"] == "Active"
    assert f"lab-auditor-marker-{destination}-us-east-1" in {
        b["Name"] for b in client(context, destination, "s3").list_buckets()["Buckets"]
    }


def test_what_the_provisioner_creates_carries_the_project_tag() -> None:
    context = in_process_context(pair(1))
    provision(context, context.targets()[0])
    role = client(context, "100000000001", "iam").get_role(RoleName=ORIGIN_ROLE)["Role"]
    assert {"Key": PROJECT_TAG, "Value": "true"} in role["Tags"]
    bucket_tags = client(context, "200000000001", "s3").get_bucket_tagging(
        Bucket="lab-auditor-marker-200000000001-us-east-1"
    )
    assert {"Key": PROJECT_TAG, "Value": "true"} in bucket_tags["TagSet"]


def test_the_log_group_gets_a_retention_period() -> None:
    context = in_process_context(pair(1))
    provision(context, context.targets()[0])
    groups = client(context, "100000000001", "logs").describe_log_groups()["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(f"/aws/lambda/{FUNCTION}", 7)]


def test_a_single_account_lab_is_built_in_one_account() -> None:
    context = in_process_context(solo(1))
    provision(context, context.targets()[0])
    roles = {r["RoleName"] for r in client(context, "300000000001", "iam").list_roles()["Roles"]}
    assert roles == {ORIGIN_ROLE, DESTINATION_ROLE}
    assert changing(plan(context, context.targets()[0])) == []


def drift_the_lab(context: Context) -> None:
    origin_iam = client(context, "100000000001", "iam")
    destination_iam = client(context, "200000000001", "iam")
    open_trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    destination_iam.update_assume_role_policy(
        RoleName=DESTINATION_ROLE, PolicyDocument=json.dumps(open_trust)
    )
    destination_iam.delete_role_policy(RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY)
    origin_iam.put_role_policy(
        RoleName=ORIGIN_ROLE,
        PolicyName="student-extra",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    origin_iam.attach_role_policy(RoleName=ORIGIN_ROLE, PolicyArn=managed_policy(origin_iam))
    lambda_client = client(context, "100000000001", "lambda")
    lambda_client.update_function_configuration(FunctionName=FUNCTION, Handler="other.handler", Timeout=60)
    lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=build_zip_of({"handler.py": "x = 1\n"}))
    client(context, "100000000001", "logs").delete_retention_policy(logGroupName=f"/aws/lambda/{FUNCTION}")


def managed_policy(iam: Any) -> str:
    """A customer managed policy of the account, as a student would attach it."""
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}],
    }
    return str(
        iam.create_policy(PolicyName="StudentReadOnly", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    )


def build_zip_of(files: dict[str, str]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_provisioning_a_drifted_lab_restores_the_spec() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    drift_the_lab(context)
    steps = provision(context, target)
    assert set(changing(steps)) == {
        ("update", "role", DESTINATION_ROLE),
        ("create", "inline_policy", DESTINATION_POLICY),
        ("delete", "inline_policy", "student-extra"),
        ("delete", "managed_policy", "arn:aws:iam::100000000001:policy/StudentReadOnly"),
        ("update", "function", FUNCTION),
        ("update", "function_code", FUNCTION),
        ("update", "log_group", f"/aws/lambda/{FUNCTION}"),
    }
    assert changing(plan(context, target)) == []
    # the managed policy was detached, never deleted
    assert client(context, "100000000001", "iam").get_policy(
        PolicyArn="arn:aws:iam::100000000001:policy/StudentReadOnly"
    )


def test_a_dry_run_changes_nothing() -> None:
    context = in_process_context(pair(1))
    plan(context, context.targets()[0])
    assert client(context, "100000000001", "iam").list_roles()["Roles"] == []


def test_the_plan_judges_as_the_audit_does_with_the_configured_policy_time_limit() -> None:
    """One judge, with the context's engine: under a tight limit, a hostile document is undecided in
    the plan as in the audit, within the configured limit, not the default one."""
    from bench.judge_bench import adversarial_policy

    hostile = adversarial_policy(20)
    for statement in hostile["Statement"]:  # services IAM knows ("s*" and "l*" it refuses)
        statement["Action"] = [a.replace("s*:", "sts:").replace("l*:", "logs:") for a in statement["Action"]]
    tight = {"policy_time_limit": timedelta(milliseconds=100)}
    context = in_process_context(pair(1), **tight)
    provision(context, context.targets()[0])
    client(context, "200000000001", "iam").put_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName="student-hostile", PolicyDocument=json.dumps(hostile)
    )
    planning = in_process_context(pair(1), **tight)
    with capture_logs() as logs:
        planned = plan_with_findings(planning, planning.targets()[0])[1]
    auditing = in_process_context(pair(1), **tight)
    audited = audit_targets(auditing, auditing.targets(), invoke=False).labs[0].findings
    assert planned == audited
    undecided = next(f for f in planned if f.resource.endswith("/inline-policy/student-hostile"))
    assert "could not be decided in time" in undecided.message
    assert {e["time_limit"] for e in logs if e["event"] == "policy_comparison_undecided"} == {0.1}


def make_unrelated_resources(context: Context) -> None:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    for account in ("100000000001", "200000000001"):
        iam = client(context, account, "iam")
        iam.create_role(RoleName="StudentOwnRole", AssumeRolePolicyDocument=trust)
        client(context, account, "s3").create_bucket(Bucket=f"student-bucket-{account}")
    role_arn = "arn:aws:iam::100000000001:role/StudentOwnRole"
    client(context, "100000000001", "lambda").create_function(
        FunctionName="StudentFunction",
        Role=role_arn,
        Runtime="python3.12",
        Handler="handler.lambda_handler",
        Code={"ZipFile": build_zip()},
    )
    client(context, "100000000001", "logs").create_log_group(logGroupName="/aws/lambda/StudentFunction")


def lab_leftovers(context: Context) -> list[str]:
    left = []
    for account in ("100000000001", "200000000001"):
        iam = client(context, account, "iam")
        left += [
            r["RoleName"]
            for r in iam.list_roles()["Roles"]
            if r["RoleName"] in (ORIGIN_ROLE, DESTINATION_ROLE)
        ]
        left += [
            b["Name"]
            for b in client(context, account, "s3").list_buckets()["Buckets"]
            if b["Name"].startswith("lab-auditor-marker")
        ]
    lambda_client = client(context, "100000000001", "lambda")
    left += [
        f["FunctionName"]
        for f in lambda_client.list_functions()["Functions"]
        if f["FunctionName"] == FUNCTION
    ]
    groups = client(context, "100000000001", "logs").describe_log_groups()["logGroups"]
    left += [g["logGroupName"] for g in groups if g["logGroupName"] == f"/aws/lambda/{FUNCTION}"]
    return left


def test_teardown_removes_the_lab_and_nothing_else() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    make_unrelated_resources(context)
    destination_iam = client(context, "200000000001", "iam")
    destination_iam.attach_role_policy(RoleName=DESTINATION_ROLE, PolicyArn=managed_policy(destination_iam))
    teardown(context.sessions, target, teardown_plan(context.sessions, target))
    assert lab_leftovers(context) == []
    for account in ("100000000001", "200000000001"):
        assert client(context, account, "iam").get_role(RoleName="StudentOwnRole")
        assert client(context, account, "s3").head_bucket(Bucket=f"student-bucket-{account}")
    assert client(context, "100000000001", "lambda").get_function(FunctionName="StudentFunction")
    assert client(context, "100000000001", "logs").describe_log_groups(
        logGroupNamePrefix="/aws/lambda/StudentFunction"
    )["logGroups"]
    assert client(context, "200000000001", "iam").get_policy(
        PolicyArn="arn:aws:iam::200000000001:policy/StudentReadOnly"
    )


def test_teardown_removes_policies_attachments_and_boundary_before_the_role() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    iam = client(context, "200000000001", "iam")
    boundary = iam.create_policy(
        PolicyName="Boundary",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=DESTINATION_ROLE, PermissionsBoundary=boundary)
    iam.put_role_policy(
        RoleName=DESTINATION_ROLE,
        PolicyName="extra",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    steps = teardown_plan(context.sessions, target)
    kinds_on_destination = [
        s.kind for s in steps if s.account_id == "200000000001" and s.kind != "marker_bucket"
    ]
    assert kinds_on_destination == [
        "inline_policy",
        "inline_policy",
        "permissions_boundary",
        "role",
    ]
    teardown(context.sessions, target, steps)
    assert lab_leftovers(context) == []
    assert iam.get_policy(PolicyArn=boundary)  # the boundary policy is the account's: it stays


def test_a_teardown_interrupted_half_way_is_finished_by_a_rerun() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    steps = teardown_plan(context.sessions, target)
    teardown(context.sessions, target, steps[: len(steps) // 2])  # the process died here
    remaining = teardown_plan(context.sessions, target)
    assert 0 < len(remaining) < len(steps)
    teardown(context.sessions, target, remaining)
    assert lab_leftovers(context) == []
    assert teardown_plan(context.sessions, target) == []


def test_a_stale_teardown_plan_is_harmless_when_things_are_already_gone() -> None:
    context = in_process_context(pair(1))
    target = context.targets()[0]
    provision(context, target)
    steps = teardown_plan(context.sessions, target)
    teardown(context.sessions, target, steps)
    teardown(context.sessions, target, steps)  # a second worker with the same plan: no error
    assert lab_leftovers(context) == []


def test_only_the_lambda_role_propagation_error_is_retried() -> None:
    def retry(call: Any) -> Any:
        return retry_until_role_ready(call, lambda _: None, "pair-01")

    not_ready = ClientError(
        {
            "Error": {
                "Code": "InvalidParameterValueException",
                "Message": "The role defined for the function cannot be assumed by Lambda.",
            }
        },
        "CreateFunction",
    )
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise not_ready
        return "created"

    assert retry(flaky) == "created"
    assert len(attempts) == 3

    other = ClientError(
        {"Error": {"Code": "InvalidParameterValueException", "Message": "Runtime is not supported"}},
        "CreateFunction",
    )

    def broken() -> None:
        attempts.append(1)
        raise other

    attempts.clear()
    with pytest.raises(ClientError):
        retry(broken)
    assert len(attempts) == 1


def test_the_package_is_deterministic() -> None:
    assert build_zip() == build_zip()
    assert code_sha256(build_zip()) == packaged()[1]


def test_the_function_answers_json_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambda_src.handler import lambda_handler

    context = in_process_context(pair(1))
    provision(context, context.targets()[0])
    monkeypatch.setenv("DESTINATION_ROLE_ARN", f"arn:aws:iam::200000000001:role/{DESTINATION_ROLE}")
    answer = lambda_handler({}, None)
    text = json.dumps(answer)
    assert answer["ok"] is True
    assert answer["destination_account"] == "200000000001"
    assert "lab-auditor-marker-200000000001-us-east-1" in answer["buckets"]
    assert "SecretAccessKey" not in text and "SessionToken" not in text


def test_the_function_without_its_variable_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambda_src.handler import lambda_handler

    monkeypatch.delenv("DESTINATION_ROLE_ARN", raising=False)
    answer = lambda_handler({}, None)
    assert answer == {
        "ok": False,
        "stage": "configuration",
        "error_code": "",
        "error": "DESTINATION_ROLE_ARN is not set",
    }


def test_the_origin_account_is_checked_before_anything_changes_there() -> None:
    from auditor.aws.accounts import AccountAccessError
    from auditor.domain.config import AccountAccess, LabConfig

    wrong = AccountAccess("999999999999")  # the operator's own credentials reach 123456789012 in moto
    context = in_process_context(LabConfig("wrong", wrong, wrong))
    with pytest.raises(
        AccountAccessError, match="reach account 123456789012, but the configuration says 999999999999"
    ):
        plan(context, context.targets()[0])
    assert boto3.client("iam").list_roles()["Roles"] == []
