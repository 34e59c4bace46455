"""With `[class] built_by = "students"` the project never touches a student's lab resources (interface.md,
"Students build it"): `auditor provision` sets up only the marker bucket (and the event rules with
[events]), `auditor teardown` removes only those unless `--students-resources`, and the daemon builds no
lab and tears down, at expiry, only the project's parts. On moto in process, the students' work made
with boto3 as a student would make it in the console."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result

import auditor.daemon.service as daemon_service
from auditor.app.context import open_context
from auditor.cli.main import main
from auditor.daemon.service import Service
from auditor.domain.config import ClassSettings, Config, DatabaseSettings, EventsSettings
from auditor.domain.model import Action
from auditor.domain.spec import DESTINATION_POLICY, DESTINATION_ROLE, FUNCTION, ORIGIN_ROLE
from auditor.domain.steps import StepStatus
from auditor.store import LabState, Store, upgrade
from conftest import labs_toml, make_config, pair
from provisioner.provision import provision_targets
from provisioner.scope import PROJECT_PARTS
from provisioner.teardown import teardown_targets

pytestmark = pytest.mark.usefixtures("moto_in_process")

LAB = pair(1)
ORIGIN, DESTINATION = LAB.origin.account_id, LAB.destination.account_id
NOTICE = "students build the lab: set up the marker bucket and event rules only"
ORIGIN_POLICY = "Lambda-Assume-Roles-Policy"
LOG_GROUP = f"/aws/lambda/{FUNCTION}"


def config_file(tmp_path: Path, *, students: bool = True) -> Path:
    """A configuration on moto in process (no endpoint: AWS's own, which moto answers)."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[lab]\nregion = "us-east-1"\n'
        '[aws]\nendpoint_url = ""\n'
        '[audit]\nconcurrency = 4\npolicy_time_limit = "60s"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "auditor.db"}"\n'
        + ('[class]\nbuilt_by = "students"\n' if students else "")
        + labs_toml(LAB),
        encoding="utf-8",
    )
    return path


def students_config(**changes: Any) -> Config:
    return replace(make_config((LAB,)), classroom=ClassSettings(built_by="students"), **changes)


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def client(account_id: str, service: str) -> Any:
    """A client in a lab account, through its OrganizationAccountAccessRole, as the student's console."""
    sts = boto3.client("sts", region_name="us-east-1")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="student"
    )["Credentials"]
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


GUIDE_CODE = """\
import boto3, json

def lambda_handler(event, context):
    sts = boto3.client("sts")
    session = sts.assume_role(RoleArn="arn:aws:iam::%s:role/LambdaS3ListBuckets", RoleSessionName="s")
    return str(session)
"""


def build_as_a_student() -> None:
    """The guide's steps by hand: the destination role and its policy, the origin role and its policy,
    the function (the guide's handler and code, not the project's), and its log group."""
    destination = client(DESTINATION, "iam")
    destination.create_role(
        RoleName=DESTINATION_ROLE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ORIGIN}:root"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    destination.put_role_policy(
        RoleName=DESTINATION_ROLE,
        PolicyName=DESTINATION_POLICY,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
            }
        ),
    )
    origin = client(ORIGIN, "iam")
    role = origin.create_role(
        RoleName=ORIGIN_ROLE,
        AssumeRolePolicyDocument=json.dumps(
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
        ),
    )["Role"]
    origin.put_role_policy(
        RoleName=ORIGIN_ROLE,
        PolicyName=ORIGIN_POLICY,
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Resource": f"arn:aws:iam::{DESTINATION}:role/{DESTINATION_ROLE}",
                    },
                    {"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"},
                ],
            }
        ),
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("lambda_function.py", GUIDE_CODE % DESTINATION)
    client(ORIGIN, "lambda").create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
    )
    client(ORIGIN, "logs").create_log_group(logGroupName=LOG_GROUP)


def students_work() -> dict[str, Any]:
    """Everything of the student's lab, as documents: what provision and teardown must leave alone."""
    found: dict[str, Any] = {}
    for account in (ORIGIN, DESTINATION):
        iam = client(account, "iam")
        for role in iam.list_roles()["Roles"]:
            name = role["RoleName"]
            found[f"{account}/role/{name}"] = role["AssumeRolePolicyDocument"]
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                found[f"{account}/role/{name}/{policy}"] = document
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            found[f"{account}/role/{name}/attached"] = attached
    for function in client(ORIGIN, "lambda").list_functions()["Functions"]:
        found[f"function/{function['FunctionName']}"] = {
            key: function.get(key)
            for key in ("Runtime", "Role", "Handler", "CodeSha256", "Environment", "Timeout", "MemorySize")
        }
    groups = client(ORIGIN, "logs").describe_log_groups()["logGroups"]
    found["log_groups"] = sorted(group["logGroupName"] for group in groups)
    return found


def marker_buckets() -> list[str]:
    return [bucket["Name"] for bucket in client(DESTINATION, "s3").list_buckets()["Buckets"]]


# ------------------------------------------------------------------------------------------ provision


def test_provision_sets_up_the_marker_bucket_only_and_says_so(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    planned = cli("provision", "--dry-run", "--config", str(config))
    assert planned.exit_code == 0, planned.output
    assert NOTICE in planned.stderr
    assert "pair-01: 1 to change, 0 unchanged" in planned.stdout
    assert "marker_bucket" in planned.stdout
    assert "role" not in planned.stdout and "function" not in planned.stdout
    assert marker_buckets() == []

    result = cli("provision", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert NOTICE in result.stderr
    assert "pair-01: 1 changed, 0 unchanged" in result.stdout
    assert len(marker_buckets()) == 1
    work = students_work()
    assert not [key for key in work if "/role/" in key]  # no role in either account
    assert not [key for key in work if key.startswith("function/")]
    assert work["log_groups"] == []

    again = cli("provision", "--config", str(config))
    assert again.exit_code == 0 and "pair-01: 0 changed, 1 unchanged" in again.stdout


def test_a_student_built_lab_is_left_untouched_by_provision_and_by_teardown(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    build_as_a_student()
    before = students_work()
    assert f"function/{FUNCTION}" in before and before["log_groups"] == [LOG_GROUP]

    provisioned = cli("provision", "--yes", "--config", str(config))
    assert provisioned.exit_code == 0, provisioned.output
    assert "pair-01: 1 changed, 0 unchanged" in provisioned.stdout
    assert students_work() == before
    assert len(marker_buckets()) == 1

    planned = cli("teardown", "--dry-run", "--config", str(config))
    assert planned.exit_code == 0, planned.output
    assert "pair-01: 1 to remove" in planned.stdout
    assert "students build the lab: remove the marker bucket and event rules only" in planned.stderr

    down = cli("teardown", "--yes", "--config", str(config))
    assert down.exit_code == 0, down.output
    assert "pair-01: 1 removed" in down.stdout
    assert students_work() == before  # the roles, their policies, the function and its log group stand
    assert marker_buckets() == []


def test_teardown_with_students_resources_removes_everything_the_spec_names(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    build_as_a_student()
    assert cli("provision", "--config", str(config)).exit_code == 0

    refused = cli("teardown", "--students-resources", "--config", str(config))
    assert refused.exit_code == 2  # it still asks first: no terminal and no --yes
    assert f"function/{FUNCTION}" in students_work() and marker_buckets()

    down = cli("teardown", "--students-resources", "--yes", "--config", str(config))
    assert down.exit_code == 0, down.output
    assert "students build the lab" not in down.stderr
    assert "pair-01: 7 removed" in down.stdout
    assert students_work() == {"log_groups": []}
    assert marker_buckets() == []


def test_in_provisioner_mode_the_whole_lab_is_built_and_nothing_is_said(tmp_path: Path) -> None:
    config = config_file(tmp_path, students=False)
    result = cli("provision", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "students build the lab" not in result.stderr
    assert "pair-01: 7 changed, 0 unchanged" in result.stdout
    assert f"function/{FUNCTION}" in students_work()


def test_with_events_the_plan_sets_up_the_event_rules_too() -> None:
    queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="lab-auditor-events")
    config = students_config(events=EventsSettings(queue_url=queue["QueueUrl"], wait_seconds=0))
    with open_context(config) as context:
        (outcome,) = provision_targets(context, context.targets(), dry_run=True)
        assert outcome.result is not None
        kinds = {step.kind for step in outcome.result.steps}
        # In us-east-1, where the operator's bus is, no rule crosses Regions: no execution role.
        assert kinds == set(PROJECT_PARTS) - {"event_role"}, kinds
        assert {step.action for step in outcome.result.steps} == {Action.CREATE}
        assert all(f.subject is not None and f.subject.kind in PROJECT_PARTS for f in outcome.result.findings)
        (built,) = provision_targets(context, context.targets(), dry_run=False)
        assert built.ok, built.error
        rules = client(ORIGIN, "events").list_rules()["Rules"]
        assert rules, "the origin's change-event rule"
        assert students_work() == {"log_groups": []}
        (down,) = teardown_targets(context, context.targets(), dry_run=False)
        assert down.ok and down.result is not None
        assert {step.kind for step in down.result.steps} == kinds
        assert client(ORIGIN, "events").list_rules()["Rules"] == []


# --------------------------------------------------------------------------------------------- daemon


def test_the_daemon_builds_no_lab_when_students_build_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_building(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the daemon planned or built a lab")

    monkeypatch.setattr(daemon_service, "provision_targets", no_building)
    emulated = students_config(aws=replace(make_config((LAB,)).aws, endpoint_url="http://127.0.0.1:1"))
    assert emulated.aws.emulated
    with open_context(emulated) as context:
        service = Service(emulated, context)
        monkeypatch.setattr(service, "database", no_building)
        service.build_labs_never_built(at_start=True)
        service.build_labs_never_built(at_start=False)
        assert service.found_standing == set()


def test_the_daemon_would_build_on_an_emulator_in_provisioner_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contrast: the same service in provisioner mode goes on to plan the labs never built."""
    asked: list[str] = []

    def planned(_context: object, targets: list[Any], **_kwargs: object) -> list[Any]:
        asked.extend(target.name for target in targets)
        return []

    monkeypatch.setattr(daemon_service, "provision_targets", planned)
    base = make_config((LAB,))
    emulated = replace(base, aws=replace(base.aws, endpoint_url="http://127.0.0.1:1"))
    with open_context(emulated) as context:
        Service(emulated, context).build_labs_never_built(at_start=False)
    assert asked == ["pair-01"]


def test_the_expiry_teardown_removes_only_the_project_s_parts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auditor.db'}"
    upgrade(url)
    expired = replace(LAB, expires_at=datetime.now(UTC) - timedelta(hours=1))
    config = students_config(labs=(expired,), database=DatabaseSettings(url=url))
    build_as_a_student()
    before = students_work()
    store = Store.from_url(url)
    try:
        with open_context(config) as context:
            (built,) = provision_targets(context, context.targets(), dry_run=False, store=store)
            assert built.ok, built.error
            assert marker_buckets()
            service = Service(config, context)
            service.reconcile()
        assert store.state_of("pair-01") is LabState.TORN_DOWN
        # The last audit, recorded before the project's parts went: the guide's cleanup is judged from it.
        (last,) = store.step_history(["pair-01"], until=datetime.now(UTC))["pair-01"][-1:]
        assert last.at >= expired.expires_at
        steps = {result.step: result.status for result in last.steps}
        assert steps["cleanup"] is StepStatus.WRONG  # the student's roles and function still stand
    finally:
        store.close()
    assert students_work() == before
    assert marker_buckets() == []


# -------------------------------------------------------------------------------------------- audit


def test_the_audit_offers_provision_as_a_fix_only_for_the_project_s_parts(tmp_path: Path) -> None:
    """A student's missing role is the student's to build: provisioning, which touches only the marker
    bucket (and the event rules) in this mode, is offered only where it would fix the finding."""
    config = config_file(tmp_path)
    assert cli("provision", "--config", str(config)).exit_code == 0
    [bucket] = marker_buckets()
    client(DESTINATION, "s3").delete_bucket(Bucket=bucket)

    audited = cli("audit", "--no-invoke", "--no-record", "--config", str(config))

    lines = [line for line in audited.stdout.splitlines() if "(account " in line or "(bucket " in line]
    student_lines = [line for line in lines if f"role/{DESTINATION_ROLE})" in line]
    bucket_lines = [line for line in lines if f"bucket {bucket}" in line]
    assert student_lines and bucket_lines, audited.stdout
    assert not [line for line in student_lines if "auditor provision" in line]
    assert [
        line for line in student_lines if "fix: create the role with its trust and inline policies" in line
    ]
    assert all("fix: auditor provision" in line for line in bucket_lines)
