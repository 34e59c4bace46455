"""`auditor doctor` on moto in process, with broken set-ups: no credentials, a role that is not there, a
trust that wants another external id, a policy or boundary that denies a call of the daemon's, change
events half wired, a skewed clock; and a class that is ready.

moto accepts any AssumeRole (the role need not exist, the external id is not compared) and has no policy
simulator (SimulatePrincipalPolicy raises NotImplementedError). So on moto the doctor reads each role's
documents and judges them with the project's policy engine, which is what these tests check; IAM's
simulator's answers are checked with botocore's Stubber, as AWS documents them, and the doctor on AWS
with a stand-in for the simulator (`aws_simulator`, `iam_simulator`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from click.testing import CliRunner
from moto.core import DEFAULT_ACCOUNT_ID

from auditor.app.context import Context, open_context
from auditor.app.doctor import (
    MAX_SKEW,
    Account,
    Check,
    Diagnosis,
    Problem,
    clock_problem,
    concrete_resource,
    daemon_calls,
    daemon_requests,
    diagnose,
    merged,
    principal_of_session,
    unassumable_problem,
)
from auditor.aws.preflight import NoSimulator, role_documents, simulated_decisions
from auditor.cli.permissions import permissions_command
from auditor.common.clock import utc_now
from auditor.domain.config import AccountAccess, AuditSettings, Config, EventsSettings, LabConfig
from auditor.domain.spec import EVENT_RULE
from auditor.policy import is_allowed, parse_policy
from auditor.resources.base import Part
from auditor.resources.permissions import api_calls, lab_account_policy, lab_account_trust_policy
from conftest import make_config
from provisioner.provision import provision_targets

ROLE = "LabAuditorAccess"
EXTERNAL_ID = "class-2026"


def access(account_id: str, external_id: str | None = EXTERNAL_ID) -> AccountAccess:
    return AccountAccess(
        account_id, role_arn=f"arn:aws:iam::{account_id}:role/{ROLE}", external_id=external_id
    )


def lab(index: int, external_id: str | None = EXTERNAL_ID) -> LabConfig:
    return LabConfig(
        f"pair-{index:02d}", access(f"1{index:011d}", external_id), access(f"2{index:011d}", external_id)
    )


LABS = (lab(1), lab(2))


def config_of(*labs: LabConfig, **changes: Any) -> Config:
    return replace(make_config(labs, endpoint_url=None), **changes)


def install_role(
    context: Context,
    side: AccountAccess,
    *,
    trusted_external_id: str | None = EXTERNAL_ID,
    policy: dict[str, Any] | None = None,
    boundary: dict[str, Any] | None = None,
) -> None:
    """The lab-account role as `auditor permissions` describes it: trust to the operator's account (moto's
    default one) with the external id, and the lab account policy."""
    iam = context.sessions.client(side, "iam")
    trust = lab_account_trust_policy(DEFAULT_ACCOUNT_ID, trusted_external_id)
    extra: dict[str, Any] = {}
    if boundary is not None:
        arn = iam.create_policy(PolicyName="boundary", PolicyDocument=json.dumps(boundary))["Policy"]["Arn"]
        extra["PermissionsBoundary"] = arn
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust), **extra)
    iam.put_role_policy(
        RoleName=ROLE, PolicyName="lab-auditor", PolicyDocument=json.dumps(policy or lab_account_policy())
    )


@pytest.fixture
def ready(moto_in_process: None) -> Iterator[Config]:
    """Both labs' accounts with the role as the rollout makes it."""
    config = config_of(*LABS)
    with open_context(config) as context:
        for each in LABS:
            install_role(context, each.origin)
            install_role(context, each.destination)
    yield config


def problems_of(diagnosis: Diagnosis, check: Check) -> list[Problem]:
    return [problem for problem in diagnosis.problems if problem.check is check]


# ----------------------------------------------------------------------------------------- all good


def test_a_class_rolled_out_as_documented_has_no_problem(ready: Config) -> None:
    diagnosis = diagnose(ready)
    assert diagnosis.problems == ()
    assert diagnosis.ok
    facts = dict(diagnosis.facts)
    assert "4 of 4 accounts reached" in facts[Check.ROLE]
    # moto has no simulator: the diagnosis says the engine judged the roles' own documents.
    assert "the project's policy engine" in facts[Check.PERMISSIONS]
    assert facts[Check.CREDENTIALS].startswith("the operator's, from the environment (AWS_ACCESS_KEY_ID)")
    assert diagnosis.summary() == "No problems: 2 labs in 4 accounts ready for the daemon."


def test_lab_selects_the_accounts_checked(ready: Config) -> None:
    diagnosis = diagnose(ready, ["pair-02"])
    assert (diagnosis.labs, diagnosis.accounts) == (1, 2)


# --------------------------------------------------------------------------------------- credentials


def test_no_credentials_is_one_line_saying_how_to_supply_them_not_one_a_lab(
    ready: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to look for here
    diagnosis = diagnose(ready)
    [problem] = diagnosis.problems
    assert problem.check is Check.CREDENTIALS and problem.subjects == ("the operator",)
    assert problem.message.startswith("no AWS credentials found")
    for way in ("aws sso login --profile", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "instance"):
        assert way in problem.fix
    assert "4 not checked without the operator's credentials" in dict(diagnosis.facts)[Check.ROLE]


def test_a_profile_that_is_not_there_is_named_with_how_to_make_it(
    ready: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_PROFILE", "class-admin")
    [problem] = diagnose(ready).problems
    assert problem.check is Check.CREDENTIALS
    assert "class-admin" in problem.message
    assert "aws configure sso --profile class-admin" in problem.fix


# -------------------------------------------------------------------------------------------- roles


def test_a_role_that_does_not_exist_is_a_role_problem_with_the_rollout_as_its_fix(
    moto_in_process: None,
) -> None:
    config = config_of(lab(1))
    with open_context(config) as context:
        install_role(context, lab(1).origin)  # the destination account never got the role
    [problem] = diagnose(config).problems
    assert problem.check is Check.ROLE
    assert problem.subjects == ("account 200000000001 (pair-01 destination)",)
    assert f"role {ROLE} does not exist" in problem.message
    assert "auditor permissions --config test.toml --format cloudformation --part daemon" in problem.fix
    assert "StackSet" in problem.fix


def test_the_same_problem_in_many_accounts_is_one_line_naming_them(moto_in_process: None) -> None:
    diagnosis = diagnose(config_of(*LABS))  # no role anywhere
    [problem] = diagnosis.problems
    assert len(problem.subjects) == 4


def test_a_trust_that_wants_another_external_id_is_found_by_the_engine(moto_in_process: None) -> None:
    """moto does not compare the external id on AssumeRole; the engine reads the trust and does."""
    configured = lab(1, external_id="not-the-one")
    config = config_of(configured)
    with open_context(config) as context:
        install_role(context, configured.origin)
        install_role(context, configured.destination)
    problems = problems_of(diagnose(config), Check.ROLE)
    assert len(problems) == 1 and len(problems[0].subjects) == 2
    assert "with the configured external id" in problems[0].message
    assert "external_id" in problems[0].fix
    assert "not-the-one" not in problems[0].message + problems[0].fix  # external ids are not echoed


def test_a_trust_that_requires_an_external_id_the_configuration_does_not_give(moto_in_process: None) -> None:
    configured = lab(1, external_id=None)
    config = config_of(configured)
    with open_context(config) as context:
        install_role(context, configured.origin)
        install_role(context, configured.destination, trusted_external_id=None)
    [problem] = diagnose(config).problems
    assert problem.subjects == ("account 100000000001 (pair-01 origin)",)
    assert "requires an external id" in problem.message


def test_an_unassumable_role_on_aws_says_both_causes_and_the_rollout() -> None:
    """What AWS answers AssumeRole for a role that is not there or does not trust the caller (moto
    never refuses AssumeRole)."""
    error = ClientError(
        {
            "Error": {
                "Code": "AccessDenied",
                "Message": "User: arn:aws:iam::123456789012:user/ada is not authorized to perform: sts:AssumeRole",
            }
        },
        "AssumeRole",
    )
    account = Account(access("100000000001"), ("pair-01 origin",))
    problem = unassumable_problem(account, "arn:aws:iam::123456789012:user/ada", error, "config.toml")
    assert problem.check is Check.ROLE
    assert "with the configured external id" in problem.message
    assert "does not exist, or its trust does not admit" in problem.message
    assert problem.fix.startswith(
        "roll out the lab-account role (auditor permissions --format cloudformation --part daemon > "
        "lab-auditor-role.yaml"
    )


# -------------------------------------------------------------------------------------- permissions


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in policy["Statement"]]
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


def test_a_call_the_role_may_not_make_is_named(moto_in_process: None) -> None:
    config = config_of(lab(1))
    with open_context(config) as context:
        install_role(context, lab(1).origin, policy=without(lab_account_policy(), "lambda:GetFunction"))
        install_role(context, lab(1).destination)
    [problem] = diagnose(config).problems
    assert problem.check is Check.PERMISSIONS
    assert problem.subjects == ("account 100000000001 (pair-01 origin)",)
    assert "lambda:GetFunction" in problem.message
    assert "--part daemon" in problem.fix


def test_a_boundary_that_stops_a_call_is_a_denial(moto_in_process: None) -> None:
    narrow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    config = config_of(lab(1))
    with open_context(config) as context:
        install_role(context, lab(1).origin, boundary=narrow)
        install_role(context, lab(1).destination)
    [problem] = diagnose(config).problems
    assert problem.check is Check.PERMISSIONS and "lambda:GetFunction" in problem.message


def test_the_daemon_s_calls_are_its_audits_runs_and_teardown_not_provisioning() -> None:
    config = config_of(lab(1))
    actions = {grant.action for call in daemon_calls(config) for grant in call.grants}
    assert {"iam:GetRole", "lambda:InvokeFunction", "iam:DeleteRole"} <= actions
    assert not actions & {"iam:CreateRole", "iam:PutRolePolicy", "lambda:UpdateFunctionCode"}
    no_runs = replace(config, audit=AuditSettings(invoke=False))
    assert all(Part.INVOKE not in call.parts or call.parts - {Part.INVOKE} for call in daemon_calls(no_runs))
    assert "lambda:InvokeFunction" not in {g.action for c in daemon_calls(no_runs) for g in c.grants}
    # The doctor's own simulation is granted by the daemon's part, but is no call of the daemon's.
    assert "iam:SimulatePrincipalPolicy" in {a for call in api_calls("daemon") for a in call.actions}
    assert "iam:SimulatePrincipalPolicy" not in actions


def test_the_requests_name_the_account_and_region() -> None:
    assert (
        concrete_resource("arn:aws:lambda:*:*:function:Lambda-Assume-Roles", "111111111111", "eu-west-1")
        == "arn:aws:lambda:eu-west-1:111111111111:function:Lambda-Assume-Roles"
    )
    assert (
        concrete_resource("arn:aws:s3:::lab-auditor-marker-*-*", "1", "r")
        == "arn:aws:s3:::lab-auditor-marker-*-*"
    )
    assert concrete_resource("*", "1", "r") == "*"
    requests = daemon_requests(daemon_calls(config_of(lab(1))), "111111111111", "us-east-1")
    assert ("iam:GetRole", "arn:aws:iam::111111111111:role/Lambda-Assume-Roles") in requests
    assert not [r for r in requests if r[0] == "sts:GetCallerIdentity"]  # IAM allows it to everyone
    assert len(requests) == len(set(requests))


def test_the_simulator_s_decisions_are_read_per_action_and_resource() -> None:
    """SimulatePrincipalPolicy as AWS answers it: one simulation a resource, every action asked on it."""
    iam = boto3.client("iam", region_name="us-east-1")
    role = "arn:aws:iam::111111111111:role/LabAuditorAccess"
    resource = "arn:aws:iam::111111111111:role/Lambda-Assume-Roles"
    with Stubber(iam) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {
                        "EvalActionName": "iam:GetRole",
                        "EvalResourceName": resource,
                        "EvalDecision": "allowed",
                    },
                    {
                        "EvalActionName": "iam:ListRolePolicies",
                        "EvalResourceName": resource,
                        "EvalDecision": "implicitDeny",
                    },
                ],
                "IsTruncated": False,
            },
            {
                "PolicySourceArn": role,
                "ActionNames": ["iam:GetRole", "iam:ListRolePolicies"],
                "ResourceArns": [resource],
            },
        )
        decisions = simulated_decisions(
            iam, role, [("iam:ListRolePolicies", resource), ("iam:GetRole", resource)]
        )
    assert decisions == {
        ("iam:GetRole", resource): "allowed",
        ("iam:ListRolePolicies", resource): "implicitDeny",
    }


def aws_simulator(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[str]:
    """IAM's policy simulator as AWS has it (moto has none): `answer(principal, requests)` gives its
    decisions or raises what AWS would. Returns the principals simulated."""
    asked: list[str] = []

    def simulate(iam: Any, principal: str, requests: Any) -> dict[tuple[str, str], str]:
        asked.append(principal)
        return answer(principal, requests)

    monkeypatch.setattr("auditor.app.doctor.simulated_decisions", simulate)
    return asked


def test_on_aws_the_simulator_decides_on_each_role_s_arn(
    ready: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(principal: str, requests: Any) -> dict[tuple[str, str], str]:
        denied = principal.startswith("arn:aws:iam::100000000001:") and "lambda:GetFunction"
        return {(a, r): "implicitDeny" if a == denied else "allowed" for a, r in requests}

    asked = aws_simulator(monkeypatch, answer)
    diagnosis = diagnose(ready)
    assert sorted(asked) == sorted(str(a.role_arn) for each in LABS for a in (each.origin, each.destination))
    [problem] = diagnosis.problems
    assert problem.check is Check.PERMISSIONS and problem.subjects == (
        "account 100000000001 (pair-01 origin)",
    )
    assert problem.message.startswith("the role may not do 1 of the ")
    assert problem.message.endswith(
        "actions the daemon needs in the account (IAM's policy simulator): lambda:GetFunction"
    )
    assert "IAM's policy simulator" in dict(diagnosis.facts)[Check.PERMISSIONS]


def test_a_role_that_may_not_simulate_itself_is_not_checked_and_says_how_to_check(
    ready: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(principal: str, requests: Any) -> dict[tuple[str, str], str]:
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDenied",
                    "Message": "not authorized to perform: iam:SimulatePrincipalPolicy",
                }
            },
            "SimulatePrincipalPolicy",
        )

    aws_simulator(monkeypatch, answer)
    diagnosis = diagnose(ready)
    assert diagnosis.ok  # nothing found wrong: exit 0, with what could not be checked said
    [unchecked] = diagnosis.unchecked
    assert len(unchecked.subjects) == 4
    assert "may not call iam:SimulatePrincipalPolicy on itself" in unchecked.reason
    assert "iam:SimulatePrincipalPolicy on its own ARN" in unchecked.how
    assert diagnosis.summary().endswith("; 1 check could not be made.")


def daemon_policy_printed(folder: Path) -> dict[str, Any]:
    """The lab-account policy `auditor permissions --part daemon` prints for the role (no ./config.toml)."""
    with contextlib.chdir(folder):
        result = CliRunner().invoke(
            permissions_command,
            ["--part", "daemon", "--operator-account", DEFAULT_ACCOUNT_ID, "--access-role", ROLE],
            env={"AUDITOR_CONFIG": None},
        )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output.split("\n\n")[0].partition("\n")[2])
    return document


def iam_simulator(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """IAM's policy simulator as AWS runs it (moto has none), on the roles moto holds: the caller (the
    doctor asks as the role itself) must be allowed iam:SimulatePrincipalPolicy on the role's ARN, else
    AccessDenied; each request is decided on the role's own policies, judged by the project's engine.
    Returns the principals simulated."""
    asked: list[str] = []

    def simulate(iam: Any, principal: str, requests: Any) -> dict[tuple[str, str], str]:
        asked.append(principal)
        documents = role_documents(iam, principal)
        assert documents is not None
        policies = [parse_policy(document) for document in documents.permissions]
        if not is_allowed(policies, "iam:SimulatePrincipalPolicy", principal):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "SimulatePrincipalPolicy"
            )
        return {(a, r): "allowed" if is_allowed(policies, a, r) else "implicitDeny" for a, r in requests}

    monkeypatch.setattr("auditor.app.doctor.simulated_decisions", simulate)
    return asked


def install_everywhere(config: Config, policy: dict[str, Any]) -> None:
    with open_context(config) as context:
        for each in config.labs:
            install_role(context, each.origin, policy=policy)
            install_role(context, each.destination, policy=policy)


def test_a_role_holding_the_daemon_s_part_may_simulate_itself(
    moto_in_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(*LABS)
    install_everywhere(config, daemon_policy_printed(tmp_path))
    asked = iam_simulator(monkeypatch)
    diagnosis = diagnose(config)
    assert sorted(asked) == sorted(str(a.role_arn) for each in LABS for a in (each.origin, each.destination))
    assert diagnosis.unchecked == ()
    assert diagnosis.problems == ()
    assert "IAM's policy simulator" in dict(diagnosis.facts)[Check.PERMISSIONS]


def test_an_older_role_that_may_not_simulate_itself_is_told_to_take_the_daemon_s_part(
    moto_in_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(*LABS)
    install_everywhere(config, without(daemon_policy_printed(tmp_path), "iam:SimulatePrincipalPolicy"))
    iam_simulator(monkeypatch)
    diagnosis = diagnose(config)
    assert diagnosis.ok
    [unchecked] = diagnosis.unchecked
    assert len(unchecked.subjects) == 4
    assert "may not call iam:SimulatePrincipalPolicy on itself" in unchecked.reason
    assert unchecked.how == (
        "give the role the daemon's policy, which allows it iam:SimulatePrincipalPolicy on its own ARN "
        "(a role rolled out by an older auditor lacks it): roll out the lab-account role (auditor "
        "permissions --config test.toml --format cloudformation --part daemon > lab-auditor-role.yaml, as "
        "a StackSet: docs/real-class.md, step 4); or try its calls in the IAM console's policy simulator"
    )


def test_moto_has_no_simulator_and_says_so(moto_in_process: None) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    with pytest.raises(NoSimulator):
        simulated_decisions(iam, f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/r", [("s3:ListBucket", "*")])


def test_a_session_s_principal_is_its_role() -> None:
    assert (
        principal_of_session("arn:aws:sts::123456789012:assumed-role/Admin/ada")
        == "arn:aws:iam::123456789012:role/Admin"
    )
    assert principal_of_session("arn:aws:iam::123456789012:user/ada") == "arn:aws:iam::123456789012:user/ada"
    assert principal_of_session("arn:aws:sts::123456789012:federated-user/ada") is None


# -------------------------------------------------------------------------------------------- clock


def test_a_skewed_clock_is_a_problem_past_five_minutes(ready: Config) -> None:
    ahead = diagnose(ready, now=lambda: utc_now() + timedelta(minutes=7, seconds=12))
    [problem] = ahead.problems
    assert problem.check is Check.CLOCK
    assert "ahead of AWS's" in problem.message and "7 min" in problem.message
    assert "timedatectl set-ntp true" in problem.fix
    behind = diagnose(ready, now=lambda: utc_now() - timedelta(hours=1, seconds=30))
    assert "its clock is 1 h " in behind.problems[0].message  # give or take the Date's whole second
    assert "behind AWS's" in behind.problems[0].message
    assert diagnose(ready, now=lambda: utc_now() + timedelta(minutes=2)).ok


def test_the_clock_limit_is_five_minutes_either_way() -> None:
    assert clock_problem(MAX_SKEW - timedelta(seconds=1)) is None
    assert clock_problem(-(MAX_SKEW - timedelta(seconds=1))) is None
    assert clock_problem(MAX_SKEW) is not None
    assert clock_problem(-MAX_SKEW) is not None


# ------------------------------------------------------------------------------------------- events

REGION = "us-east-1"


@pytest.fixture
def wired(ready: Config) -> Iterator[Config]:
    """[events] on, provisioned (the operator's queue, rule and bus; the lab accounts' rules), and a
    trail logging each lab account's management events."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = str(sqs.create_queue(QueueName="lab-auditor-events")["QueueUrl"])
    config = replace(ready, events=EventsSettings(queue_url=url, wait_seconds=0))
    with open_context(config) as context:
        outcomes = provision_targets(context, context.targets(), dry_run=False)
        assert [o.error for o in outcomes if not o.ok] == []
        for each in LABS:
            for side in (each.origin, each.destination):
                bucket = f"trail-{side.account_id}"
                context.sessions.client(side, "s3").create_bucket(Bucket=bucket)
                cloudtrail = context.sessions.client(side, "cloudtrail")
                cloudtrail.create_trail(Name="management", S3BucketName=bucket, IsMultiRegionTrail=True)
                cloudtrail.start_logging(Name="management")
    yield config


def test_events_wired_and_trails_logging_is_no_problem(wired: Config) -> None:
    diagnosis = diagnose(wired)
    assert diagnosis.problems == ()
    assert "rules with the trail each needs" in dict(diagnosis.facts)[Check.EVENTS]


def test_a_missing_event_rule_names_its_account_and_the_provision_that_fixes_it(wired: Config) -> None:
    with open_context(wired) as context:
        events = context.sessions.client(LABS[1].destination, "events")
        events.remove_targets(
            Rule=EVENT_RULE, Ids=[t["Id"] for t in events.list_targets_by_rule(Rule=EVENT_RULE)["Targets"]]
        )
        events.delete_rule(Name=EVENT_RULE)
    [problem] = diagnose(wired).problems
    assert problem.check is Check.EVENTS
    assert problem.subjects == ("account 200000000002 (pair-02 destination)",)
    assert f"change-event rule {EVENT_RULE} is missing" in problem.message
    assert problem.fix == "auditor provision --config test.toml --lab pair-02"


def test_a_trail_that_stopped_logging_is_an_events_problem(wired: Config) -> None:
    with open_context(wired) as context:
        context.sessions.client(LABS[0].origin, "cloudtrail").stop_logging(Name="management")
    [problem] = diagnose(wired).problems
    assert problem.subjects == ("account 100000000001 (pair-01 origin)",)
    assert "no CloudTrail trail logs the IAM and Lambda management events" in problem.message
    assert "aws cloudtrail create-trail" in problem.fix


def test_the_operator_s_bus_not_admitting_a_lab_account_is_found(wired: Config) -> None:
    boto3.client("events", region_name=REGION).remove_permission(
        EventBusName="default", StatementId="lab-auditor-account-100000000001"
    )
    [problem] = diagnose(wired).problems
    assert problem.subjects == ("the operator",)
    assert "does not admit the events of 1 account (100000000001)" in problem.message
    assert problem.fix == "auditor provision --config test.toml"


def test_on_aws_events_need_a_queue_url(ready: Config) -> None:
    [problem] = diagnose(replace(ready, events=EventsSettings())).problems
    assert problem.check is Check.EVENTS and "[events] queue_url is empty" in problem.message
    assert "aws sqs create-queue" in problem.fix


# ------------------------------------------------------------------------------------------- merging


def test_merging_keeps_the_check_order_and_each_subject_once() -> None:
    role = Problem(Check.ROLE, ("a",), "m", "f")
    clock = Problem(Check.CLOCK, ("this machine",), "c", "g")
    assert merged([role, clock, Problem(Check.ROLE, ("b",), "m", "f"), role]) == (
        clock,
        Problem(Check.ROLE, ("a", "b"), "m", "f"),
    )


def test_moto_is_seen_through_the_date_it_answers_with(ready: Config) -> None:
    """The clock read is AWS's answer's Date (moto's is this machine's clock)."""
    fixed = datetime(2030, 1, 1, tzinfo=utc_now().tzinfo)
    assert diagnose(ready, now=lambda: fixed).problems[0].check is Check.CLOCK
