"""The rollout kit for real accounts (auditor/resources/rollout.py, `auditor permissions --config`,
`--format cloudformation`): what the command takes from the configuration and in which order, the
StackSet template checked by cfn-lint and deployed on moto's CloudFormation, and its rule being the one
the audit expects, to the letter."""

from __future__ import annotations

import ast
import contextlib
import json
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from auditor.cli.permissions import permissions_command
from auditor.domain.config import ConfigError, LabConfig, LabSettings, load_config
from auditor.domain.spec import EVENT_RULE, EVENT_TARGET_ID, LabShape, event_role_specs, event_rule_specs
from auditor.policy import is_allowed, parse_policy
from auditor.resources.kinds.event_rule import collect_event_rule, compare_event_rule
from auditor.resources.permissions import (
    ACCESS_ROLE,
    PolicyPart,
    lab_account_policy,
    lab_account_trust_policy,
    operator_policy,
    policy_statements,
)
from auditor.resources.rollout import (
    EVENT_FORWARDING_ROLE,
    PART_POLICY_NAMES,
    configured_access,
    stack_set_template,
)
from auditor.resources.support import ACCESS_ROLE_ITSELF
from conftest import pair, solo

OPERATOR = "999988887777"
QUEUE_URL = f"https://sqs.eu-central-1.amazonaws.com/{OPERATOR}/lab-auditor-events"


def access(account: str, role: str = ACCESS_ROLE, external_id: str | None = "classroom-2026") -> str:
    extra = f', external_id = "{external_id}"' if external_id else ""
    return f'{{ account_id = "{account}", role_arn = "arn:aws:iam::{account}:role/{role}"{extra} }}'


def config_file(folder: Path, *labs: tuple[str, str, str], extra: str = "") -> Path:
    """A configuration for real AWS; each lab `(name, origin, destination)` as written in the file."""
    path = folder / "config.toml"
    text = textwrap.dedent(
        """
        [lab]
        region = "eu-central-1"
        [aws]
        endpoint_url = ""
        """
    ) + textwrap.dedent(extra)
    for name, origin, destination in labs:
        text += f'\n[[labs]]\nname = "{name}"\norigin = {origin}\ndestination = {destination}\n'
    path.write_text(text, encoding="utf-8")
    return path


EVENTS = f'[events]\nqueue_url = "{QUEUE_URL}"\n'
STUDENTS = '[class]\nbuilt_by = "students"\n'


def two_labs(folder: Path, extra: str = EVENTS, **options: Any) -> Path:
    return config_file(
        folder,
        ("pair-01", access("100000000001", **options), access("200000000001", **options)),
        ("pair-02", access("100000000002", **options), access("200000000002", **options)),
        extra=extra,
    )


def run(folder: Path, *args: str) -> Any:
    """The command in `folder` (where a ./config.toml would be read), without $AUDITOR_CONFIG."""
    with contextlib.chdir(folder):
        return CliRunner().invoke(permissions_command, list(args), env={"AUDITOR_CONFIG": None})


# ------------------------------------------------------------------------- what the file says


def test_the_file_gives_the_role_name_external_id_operator_and_mode(tmp_path: Path) -> None:
    found = configured_access(load_config(two_labs(tmp_path, EVENTS + STUDENTS, role="Auditor")))
    assert found.access_role == "Auditor"
    assert found.external_id == "classroom-2026"
    assert found.operator_account == OPERATOR
    assert found.queue_arn == f"arn:aws:sqs:eu-central-1:{OPERATOR}:lab-auditor-events"
    assert (found.built_by, found.lab_region, found.change_events) == ("students", "eu-central-1", True)
    assert found.warnings == ()


def test_a_file_without_roles_or_events_says_nothing_of_them(tmp_path: Path) -> None:
    own = '{ account_id = "100000000001" }'
    found = configured_access(load_config(config_file(tmp_path, ("solo-01", own, own))))
    assert (found.access_role, found.external_id, found.operator_account) == (None, None, None)
    assert (found.built_by, found.change_events) == ("provisioner", False)


@pytest.mark.parametrize(
    ("labs", "key", "words"),
    [
        (
            [("pair-01", access("100000000001", role="A"), access("200000000001", role="B"))],
            "role_arn",
            "roles of 2 names (A, B)",
        ),
        (
            [
                (
                    "pair-01",
                    access("100000000001", external_id="first-id"),
                    access("200000000001", external_id="other-id"),
                )
            ],
            "external_id",
            "2 external ids",
        ),
        (
            [
                (
                    "pair-01",
                    '{ account_id = "100000000001", role_arn = "arn:aws:iam::100000000001:role/team/Auditor" }',
                    access("200000000001", role="Auditor"),
                )
            ],
            "role_arn",
            "has a path",
        ),
    ],
)
def test_labs_that_disagree_are_refused_naming_the_key(
    tmp_path: Path, labs: list[tuple[str, str, str]], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        configured_access(load_config(config_file(tmp_path, *labs)))
    assert refused.value.key == key
    assert words in refused.value.problem


def test_accounts_without_the_external_id_are_named_in_a_warning(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        ("pair-01", access("100000000001"), access("200000000001")),
        ("pair-02", access("100000000002", external_id=None), access("200000000002", external_id=None)),
    )
    found = configured_access(load_config(path))
    assert found.external_id == "classroom-2026"
    assert len(found.warnings) == 1 and "pair-02" in found.warnings[0] and "pair-01" not in found.warnings[0]


# ---------------------------------------------------------------------------------- the command


def test_the_command_reads_the_file_it_is_given(tmp_path: Path) -> None:
    path = two_labs(tmp_path, EVENTS + STUDENTS, role="Auditor")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(elsewhere, "--config", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["part"], printed["built_by"]) == ("all", "students")
    assert printed["lab_account_policy"]["document"] == lab_account_policy(
        built_by="students", access_role="Auditor"
    )
    assert printed["lab_account_trust_policy"]["document"] == lab_account_trust_policy(
        OPERATOR, "classroom-2026"
    )
    queue = f"arn:aws:sqs:eu-central-1:{OPERATOR}:lab-auditor-events"
    assert printed["operator_policy"]["document"] == operator_policy(
        OPERATOR, access_role="Auditor", queue_arn=queue, built_by="students"
    )


def test_the_command_reads_config_toml_where_it_runs(tmp_path: Path) -> None:
    two_labs(tmp_path, role="Auditor")
    result = run(tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert "role/Auditor" in json.dumps(json.loads(result.stdout)["operator_policy"])


def test_the_options_come_before_the_file(tmp_path: Path) -> None:
    two_labs(tmp_path, role="Auditor")
    result = run(
        tmp_path,
        *("--operator-account", "111122223333", "--external-id", "given-id", "--access-role", "Mine"),
        *("--queue-url", "https://sqs.us-east-1.amazonaws.com/111122223333/q", "--format", "json"),
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["lab_account_trust_policy"]["document"] == lab_account_trust_policy(
        "111122223333", "given-id"
    )
    assert printed["operator_policy"]["document"] == operator_policy(
        "111122223333", access_role="Mine", queue_arn="arn:aws:sqs:us-east-1:111122223333:q"
    )


def test_the_queue_given_names_the_operators_account(tmp_path: Path) -> None:
    two_labs(tmp_path)  # its queue is of account 999988887777
    result = run(
        tmp_path, "--queue-url", "https://sqs.us-east-1.amazonaws.com/111122223333/q", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    trust = json.loads(result.stdout)["lab_account_trust_policy"]["document"]
    assert trust == lab_account_trust_policy("111122223333", "classroom-2026")


def test_without_a_file_the_defaults_hold(tmp_path: Path) -> None:
    result = run(tmp_path, "--operator-account", OPERATOR, "--format", "json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["built_by"] == "provisioner"
    assert printed["operator_policy"]["document"] == operator_policy(OPERATOR)


@pytest.mark.parametrize("part", ["daemon", "provision"])
def test_the_command_prints_the_part_asked_for(tmp_path: Path, part: str) -> None:
    result = run(tmp_path, "--operator-account", OPERATOR, "--part", part)
    assert result.exit_code == 0, result.output
    sections = result.stdout.strip().split("\n\n")
    assert sections[0].startswith(f"# 1. Lab account permissions ({part}).")
    assert json.loads(sections[0].partition("\n")[2]) == lab_account_policy(part=part)
    assert json.loads(sections[2].partition("\n")[2]) == operator_policy(OPERATOR, part=part)


@pytest.mark.parametrize(
    ("setup", "args", "named"),
    [
        (lambda folder: None, ["--config", "missing.toml"], "missing.toml: file not found"),
        (lambda folder: two_labs(folder, extra=""), [], "--operator-account"),
        (
            lambda folder: config_file(
                folder, ("pair-01", access("100000000001", role="A"), access("200000000001", role="B"))
            ),
            ["--operator-account", OPERATOR],
            "config.toml: role_arn:",
        ),
        (
            lambda folder: config_file(
                folder,
                (
                    "pair-01",
                    access("100000000001", role="Lambda-Assume-Roles"),
                    access("200000000001", role="Lambda-Assume-Roles"),
                ),
            ),
            ["--operator-account", OPERATOR],
            "config.toml: role_arn: 'Lambda-Assume-Roles' is one of the lab's own roles",
        ),
        (
            lambda folder: None,
            ["--access-role", "LambdaS3ListBuckets", "--operator-account", OPERATOR],
            "--access-role",
        ),
        (lambda folder: None, ["--part", "everything"], "--part"),
        (lambda folder: None, ["--part", "provision", "--format", "cloudformation"], "--part"),
        (
            lambda folder: two_labs(folder, role="OrganizationAccountAccessRole"),
            ["--format", "cloudformation"],
            "OrganizationAccountAccessRole (from config.toml's role_arn) is the administrator role",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_option_or_key(
    tmp_path: Path, setup: Any, args: list[str], named: str
) -> None:
    setup(tmp_path)
    result = run(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_an_administrator_role_is_warned_about(tmp_path: Path) -> None:
    two_labs(tmp_path, role="OrganizationAccountAccessRole")
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning: OrganizationAccountAccessRole" in result.stderr
    assert "role/OrganizationAccountAccessRole" in result.stdout


# -------------------------------------------------------------------------------- the template

# The access role's own ARN as the template names it: the role the stack makes, in the stack's account.
ITSELF = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AccessRoleName}"}


def with_itself(statements: list[dict[str, Any]], arn: Any) -> list[dict[str, Any]]:
    """A part's statements with the access role's own ARN (the doctor's simulation of it) as `arn`."""
    return [{**s, "Resource": arn} if s["Sid"] == ACCESS_ROLE_ITSELF.sid else s for s in statements]


def templates() -> list[Any]:
    return [
        pytest.param(
            stack_set_template(
                part=part,
                built_by=built_by,
                operator_account=OPERATOR,
                external_id="classroom-2026",
                lab_region="eu-central-1",
            ),
            id=f"{part}-{built_by}-known",
        )
        for part in ("all", "daemon")
        for built_by in ("provisioner", "students")
    ] + [pytest.param(stack_set_template(change_events=False), id="all-unknowns")]


@pytest.mark.slow  # cfn-lint: 2 to 4 s a template
@pytest.mark.parametrize("template", templates())
def test_cfn_lint_finds_nothing_in_the_template(template: dict[str, Any]) -> None:
    from cfnlint.api import lint

    found = lint(
        json.dumps(template), regions=["us-east-1", "eu-central-1"], config={"include_checks": ["I"]}
    )
    assert [f"{match.rule.id} {match.message}" for match in found] == []


@pytest.mark.slow  # cfn-lint
def test_cfn_lint_would_see_a_broken_template() -> None:
    from cfnlint.api import lint

    broken = stack_set_template()
    del broken["Resources"]["ChangeEventRule"]["Properties"]["Targets"][0]["Arn"]
    broken["Resources"]["AccessRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0][
        "Effect"
    ] = "Permit"
    assert len(lint(json.dumps(broken), regions=["us-east-1"])) >= 2


def test_the_template_holds_one_inline_policy_a_part_within_the_role_limit() -> None:
    for part, names in (("all", ["daemon", "provision"]), ("daemon", ["daemon"])):
        role = stack_set_template(part=part)["Resources"]["AccessRole"]["Properties"]
        assert [p["PolicyName"] for p in role["Policies"]] == [
            PART_POLICY_NAMES[PolicyPart(n)] for n in names
        ]
        assert [p["PolicyDocument"]["Statement"] for p in role["Policies"]] == [
            with_itself(policy_statements(n), ITSELF) for n in names
        ]
        # IAM's limit on a role's inline policies together, without whitespace.
        assert (
            sum(len(json.dumps(p["PolicyDocument"], separators=(",", ":"))) for p in role["Policies"])
            <= 10240
        )


def test_unknown_values_are_parameters_to_give(tmp_path: Path) -> None:
    parameters = stack_set_template()["Parameters"]
    assert "Default" not in parameters["OperatorAccountId"] and "Default" not in parameters["ExternalId"]
    known = stack_set_template(operator_account=OPERATOR, external_id="classroom-2026")["Parameters"]
    assert (known["OperatorAccountId"]["Default"], known["ExternalId"]["Default"]) == (
        OPERATOR,
        "classroom-2026",
    )


def test_the_command_writes_the_template_from_the_file(tmp_path: Path) -> None:
    two_labs(tmp_path, EVENTS + STUDENTS)
    result = run(tmp_path, "--format", "cloudformation", "--part", "daemon")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == stack_set_template(
        part="daemon",
        built_by="students",
        operator_account=OPERATOR,
        external_id="classroom-2026",
        lab_region="eu-central-1",
        change_events=True,
    )


# ------------------------------------------------------------------ deployed on moto's CloudFormation


def _stack(
    template: dict[str, Any], region: str, side: str, credentials: dict[str, str], **parameters: str
) -> None:
    cloudformation = boto3.client("cloudformation", region_name=region, **credentials)
    given = {"LabSide": side, **parameters}
    cloudformation.create_stack(
        StackName="lab-auditor",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in given.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    status = cloudformation.describe_stacks(StackName="lab-auditor")["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"


def _document(value: Any) -> Any:
    """A role's inline policy as moto answers it: a stack's is kept as Python's repr of the template's
    object (moto 5.2's quirk; AWS answers JSON)."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return ast.literal_eval(value)


def _in_account(account: str) -> dict[str, str]:
    """Credentials of another account of moto's (an assumed role's)."""
    role = f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
    found = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=role, RoleSessionName="stackset")
    keys = found["Credentials"]
    return {
        "aws_access_key_id": keys["AccessKeyId"],
        "aws_secret_access_key": keys["SecretAccessKey"],
        "aws_session_token": keys["SessionToken"],
    }


@pytest.mark.usefixtures("moto_in_process")
@pytest.mark.parametrize(
    ("lab", "region"), [(pair(1), "eu-central-1"), (pair(2), "us-east-1"), (solo(3), "eu-central-1")]
)
def test_the_stack_makes_the_role_its_policies_and_the_rule_the_audit_expects(
    lab: LabConfig, region: str
) -> None:
    template = stack_set_template(operator_account=OPERATOR, external_id="classroom-2026", lab_region=region)
    bus = f"arn:aws:events:{region}:{OPERATOR}:event-bus/default"
    # A single-account lab's one account holds the function: it is the origin.
    sides = {lab.destination.account_id: "destination", lab.origin.account_id: "origin"}
    for account, side in sides.items():
        credentials = _in_account(account)
        for stack_region in dict.fromkeys(("us-east-1", region)):  # the StackSet's Regions, us-east-1 first
            _stack(template, stack_region, side, credentials)
        iam = boto3.client("iam", **credentials)
        role = iam.get_role(RoleName=ACCESS_ROLE)["Role"]
        assert role["AssumeRolePolicyDocument"] == lab_account_trust_policy(OPERATOR, "classroom-2026")
        for part in ("daemon", "provision"):
            name = PART_POLICY_NAMES[PolicyPart(part)]
            document = iam.get_role_policy(RoleName=ACCESS_ROLE, PolicyName=name)["PolicyDocument"]
            assert _document(document)["Statement"] == with_itself(policy_statements(part), role["Arn"])
    shape = LabShape(lab, LabSettings(region=region), bus)
    # The rules' execution role is provision's, where provision makes one: where a rule crosses Regions.
    for forwarding_role in event_role_specs(shape):
        iam = boto3.client("iam", **_in_account(forwarding_role.account_id))
        if not forwarding_role.wanted:
            with pytest.raises(iam.exceptions.NoSuchEntityException):
                iam.get_role(RoleName=EVENT_FORWARDING_ROLE)
            continue
        made = iam.get_role(RoleName=EVENT_FORWARDING_ROLE)["Role"]
        assert made["AssumeRolePolicyDocument"] == forwarding_role.trust_policy
        [(name, document)] = forwarding_role.inline_policies.items()
        assert iam.list_role_policies(RoleName=EVENT_FORWARDING_ROLE)["PolicyNames"] == [name]
        forwarding = iam.get_role_policy(RoleName=EVENT_FORWARDING_ROLE, PolicyName=name)
        assert _document(forwarding["PolicyDocument"]) == document
    assert any(role.wanted for role in event_role_specs(shape)) is (region != "us-east-1")
    # Each rule the audit looks for is there, as the spec has it: no finding.
    for spec in event_rule_specs(shape):
        events = boto3.client("events", region_name=spec.region, **_in_account(spec.account_id))
        assert compare_event_rule(spec, collect_event_rule(events, spec)) == []
        target = events.list_targets_by_rule(Rule=EVENT_RULE)["Targets"][0]
        assert target["Id"] == EVENT_TARGET_ID
        assert target.get("RoleArn") == spec.role_arn
    # And no rule where the audit looks for none (a destination's in the lab's Region).
    if region != "us-east-1" and not lab.single_account:
        events = boto3.client("events", region_name=region, **_in_account(lab.destination.account_id))
        assert events.list_rules(NamePrefix=EVENT_RULE)["Rules"] == []


@pytest.mark.usefixtures("moto_in_process")
def test_without_change_events_the_stack_makes_the_role_only() -> None:
    template = stack_set_template(
        operator_account=OPERATOR, external_id="classroom-2026", change_events=False
    )
    credentials = _in_account("100000000001")
    _stack(template, "us-east-1", "origin", credentials)
    assert (
        boto3.client("iam", **credentials).get_role(RoleName=ACCESS_ROLE)["Role"]["RoleName"] == ACCESS_ROLE
    )
    assert boto3.client("events", region_name="us-east-1", **credentials).list_rules()["Rules"] == []


@pytest.mark.usefixtures("moto_in_process")
def test_the_stacks_role_may_simulate_exactly_itself_under_the_name_given() -> None:
    """`auditor doctor` simulates the role on its own ARN: the stack's role may, under the AccessRoleName
    the StackSet gives it, and may simulate no other role, nor itself in another account."""
    template = stack_set_template(part="daemon", operator_account=OPERATOR, external_id="classroom-2026")
    credentials = _in_account("100000000001")
    _stack(template, "us-east-1", "origin", credentials, AccessRoleName="Auditor")
    iam = boto3.client("iam", **credentials)
    role = iam.get_role(RoleName="Auditor")["Role"]
    assert role["Arn"] == "arn:aws:iam::100000000001:role/Auditor"
    document = iam.get_role_policy(RoleName="Auditor", PolicyName=PART_POLICY_NAMES[PolicyPart.DAEMON])
    held = [parse_policy(_document(document["PolicyDocument"]))]
    simulate = "iam:SimulatePrincipalPolicy"
    assert is_allowed(held, simulate, role["Arn"])
    assert not is_allowed(held, simulate, f"arn:aws:iam::100000000001:role/{ACCESS_ROLE}")
    assert not is_allowed(held, simulate, "arn:aws:iam::100000000001:role/Lambda-Assume-Roles")
    assert not is_allowed(held, simulate, "arn:aws:iam::200000000001:role/Auditor")
