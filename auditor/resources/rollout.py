"""The rollout kit for real accounts: what `auditor permissions` reads of the configuration, and the
CloudFormation template it writes for a StackSet over the lab accounts (pure: values in, values out).

The template makes, in each lab account, the role the auditor assumes (its least-privilege policies,
one inline policy a part, and its trust to the operator's account with the external id) and, with
change events on, the EventBridge rule of auditor/resources/kinds/event_rule.py, forwarding the account's
IAM and Lambda calls to the operator's bus. The rule is the one the audit expects, to the letter: a rule
per (account, Region) that sees the lab's changes, IAM's calls in us-east-1, Lambda's in the lab's Region
for the account holding the function; the rule in us-east-1 sends to a bus in another Region when the
lab's Region is not us-east-1, and then through the execution role of
auditor/resources/kinds/event_role.py (AWS requires one there), made from the same documents as
`auditor provision` makes it. A rule in the bus's Region has none, as provision's.

A StackSet deploys the same template to every account and Region; the roles are global, so they are
made in us-east-1 only (which every class needs anyway, for IAM's events).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from auditor.domain.config import Config, ConfigError, LabConfig
from auditor.domain.spec import (
    EVENT_FORWARDING_POLICY,
    EVENT_FORWARDING_ROLE,
    EVENT_RULE,
    EVENT_TARGET_ID,
    IAM_EVENTS_REGION,
    change_event_pattern,
    event_forwarding_policy,
    event_forwarding_trust,
)
from auditor.resources.base import Caller
from auditor.resources.permissions import (
    ACCESS_ROLE,
    POLICY_VERSION,
    PolicyPart,
    check_access_role,
    check_built_by,
    check_part,
    policy_statements,
    queue_arn_from_url,
)
from auditor.resources.registry import REGISTRY, Registry
from auditor.resources.support import ACCESS_ROLE_ITSELF

# The inline policy of each part on the access role.
PART_POLICY_NAMES = {PolicyPart.DAEMON: "lab-auditor-daemon", PolicyPart.PROVISION: "lab-auditor-provision"}
TEMPLATE_FORMAT_VERSION = "2010-09-09"

_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/(?P<path>(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]+)$")


# ------------------------------------------------------------------------ what the configuration says


@dataclass(frozen=True)
class ConfiguredAccess:
    """What `auditor permissions` takes from a configuration file (None: the file does not say)."""

    access_role: str | None  # the role name of every account's role_arn
    external_id: str | None  # the external_id of those accounts
    operator_account: str | None  # the account of [events] queue_url: the operator's queue
    queue_arn: str | None
    built_by: str
    lab_region: str
    change_events: bool
    warnings: tuple[str, ...] = ()


def _reached_by_role(labs: Sequence[LabConfig]) -> dict[str, list[tuple[str, str | None]]]:
    """Each role_arn of the labs' accounts, with the labs reaching it and their external ids."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    for lab in labs:
        for access in dict.fromkeys((lab.origin, lab.destination)):
            if access.role_arn:
                found.setdefault(access.role_arn, []).append((lab.name, access.external_id))
    return found


def _role_name(config: Config, arns: Sequence[str]) -> str | None:
    names: dict[str, list[str]] = {}
    for arn in arns:
        matched = _ROLE_ARN.match(arn)
        if matched is None:
            continue  # the configuration's own validation refused anything else
        if matched["path"]:
            raise ConfigError(
                config.path,
                "role_arn",
                f"{arn} has a path (/{matched['path']}): `auditor permissions` writes policies for a role "
                "without one; give --access-role NAME for a role of its own",
            )
        names.setdefault(matched["name"], []).append(arn)
    if len(names) > 1:
        shown = ", ".join(sorted(names))
        raise ConfigError(
            config.path,
            "role_arn",
            f"the labs' accounts are reached through roles of {len(names)} names ({shown}): one role "
            "name in every account, or give --access-role NAME",
        )
    return next(iter(names), None)


def _external_id(
    config: Config, reached: dict[str, list[tuple[str, str | None]]]
) -> tuple[str | None, list[str]]:
    given = {external_id for uses in reached.values() for _, external_id in uses if external_id}
    if len(given) > 1:
        raise ConfigError(
            config.path,
            "external_id",
            f"the labs' accounts use {len(given)} external ids: the trust policy takes one; give every "
            "account the same external_id, or give --external-id TEXT",
        )
    chosen = next(iter(given), None)
    without = sorted({lab for uses in reached.values() for lab, external_id in uses if not external_id})
    warnings = []
    if chosen is not None and without:
        warnings.append(
            f"{config.path}: external_id: {', '.join(without)} reach their role without the external id "
            "this trust requires: give their accounts external_id too"
        )
    return chosen, warnings


def configured_access(config: Config) -> ConfiguredAccess:
    """The role name, external id and operator account a configuration names, for `auditor permissions`
    (a ConfigError names the key when its labs disagree)."""
    reached = _reached_by_role(config.labs)
    external_id, warnings = _external_id(config, reached)
    queue_url = config.events.queue_url if config.events is not None else ""
    queue_arn = None
    if queue_url:
        try:
            queue_arn = queue_arn_from_url(queue_url)
        except ValueError as error:
            raise ConfigError(config.path, "events.queue_url", str(error)) from None
    return ConfiguredAccess(
        access_role=_role_name(config, list(reached)),
        external_id=external_id,
        operator_account=queue_arn.split(":")[4] if queue_arn else None,
        queue_arn=queue_arn,
        built_by=config.classroom.built_by,
        lab_region=config.lab.region,
        change_events=config.events is not None,
        warnings=tuple(warnings),
    )


# ------------------------------------------------------------------------------------- the template


def _parameters(
    access_role: str,
    operator_account: str | None,
    external_id: str | None,
    lab_region: str,
    change_events: bool,
) -> dict[str, Any]:
    operator: dict[str, Any] = {
        "Type": "String",
        "AllowedPattern": r"^\d{12}$",
        "ConstraintDescription": "an AWS account id: 12 digits",
        "Description": "The operator's AWS account: the one trusted to assume the access role, whose "
        "default event bus receives the change events.",
    }
    external: dict[str, Any] = {
        "Type": "String",
        "NoEcho": True,
        "MinLength": 2,
        "MaxLength": 1224,
        "AllowedPattern": r"^[\w+=,.@:/-]+$",
        "ConstraintDescription": "2 to 1224 letters, digits and +=,.@:/-",
        "Description": "The external id the operator gives when assuming the access role (every "
        "account's external_id in the auditor's configuration).",
    }
    if operator_account is not None:
        operator["Default"] = operator_account
    if external_id is not None:
        external["Default"] = external_id
    return {
        "OperatorAccountId": operator,
        "ExternalId": external,
        "AccessRoleName": {
            "Type": "String",
            "Default": access_role,
            "AllowedPattern": r"^[\w+=,.@-]{1,64}$",
            "Description": "The role the auditor assumes (the role_arn of each account in its configuration).",
        },
        "LabRegion": {
            "Type": "String",
            "Default": lab_region,
            "AllowedPattern": r"^[a-z]{2}(-[a-z]+)+-\d$",
            "Description": "The lab's Region ([lab] region): where the function and the operator's bus are.",
        },
        "LabSide": {
            "Type": "String",
            "Default": "origin",
            "AllowedValues": ["origin", "destination"],
            "Description": "origin: this account holds the lab's function (a single-account lab too); "
            "destination: it holds only the role the function assumes. Override per account.",
        },
        "ChangeEvents": {
            "Type": "String",
            "Default": "true" if change_events else "false",
            "AllowedValues": ["true", "false"],
            "Description": "true: forward this account's IAM and Lambda calls to the operator's bus "
            "(the auditor's [events]).",
        },
    }


def _conditions() -> dict[str, Any]:
    region = {"Ref": "AWS::Region"}
    return {
        "InIamRegion": {"Fn::Equals": [region, IAM_EVENTS_REGION]},
        "InLabRegion": {"Fn::Equals": [region, {"Ref": "LabRegion"}]},
        "HoldsFunction": {"Fn::Equals": [{"Ref": "LabSide"}, "origin"]},
        "EventsOn": {"Fn::Equals": [{"Ref": "ChangeEvents"}, "true"]},
        "WatchesLambda": {"Fn::And": [{"Condition": "HoldsFunction"}, {"Condition": "InLabRegion"}]},
        "WatchesIam": {"Fn::And": [{"Condition": "EventsOn"}, {"Condition": "InIamRegion"}]},
        # The rule of us-east-1 sends to the operator's bus in another Region: through the execution role.
        "CrossesRegions": {
            "Fn::And": [{"Condition": "WatchesIam"}, {"Fn::Not": [{"Condition": "InLabRegion"}]}]
        },
        "ForwardsChanges": {
            "Fn::And": [
                {"Condition": "EventsOn"},
                {"Fn::Or": [{"Condition": "InIamRegion"}, {"Condition": "WatchesLambda"}]},
            ]
        },
    }


def _access_role(access_policies: list[dict[str, Any]], part: PolicyPart, built_by: str) -> dict[str, Any]:
    trust = {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "LabAuditorOperator",
                "Effect": "Allow",
                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${OperatorAccountId}:root"}},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            }
        ],
    }
    return {
        "Type": "AWS::IAM::Role",
        "Condition": "InIamRegion",
        "Properties": {
            "RoleName": {"Ref": "AccessRoleName"},
            "Description": f"lab-auditor's access to this lab account (part {part.value}, labs built by {built_by})",
            "AssumeRolePolicyDocument": trust,
            "Policies": access_policies,
        },
    }


def _role_statements(part: PolicyPart, built_by: str, registry: Registry) -> list[dict[str, Any]]:
    """A part's statements on the access role, which names itself as the stack makes it (its
    AccessRoleName, in the stack's account): the role may simulate exactly itself."""
    itself = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AccessRoleName}"}
    return [
        {**statement, "Resource": itself} if statement["Sid"] == ACCESS_ROLE_ITSELF.sid else statement
        for statement in policy_statements(part, built_by, Caller.LAB_ACCOUNT, registry=registry)
    ]


_OPERATOR_BUS = "arn:${AWS::Partition}:events:${LabRegion}:${OperatorAccountId}:event-bus/default"


def _forwarding_role() -> dict[str, Any]:
    """The rule's execution role, as `auditor provision` makes it (event_role.py): EventBridge, for this
    account's rules, may put events on the operator's bus, and nothing else."""
    policy = event_forwarding_policy({"Fn::Sub": _OPERATOR_BUS})
    return {
        "Type": "AWS::IAM::Role",
        "Condition": "CrossesRegions",
        "Properties": {
            "RoleName": EVENT_FORWARDING_ROLE,
            "Description": "lab-auditor: the change-event rules forward to the operator's event bus",
            "AssumeRolePolicyDocument": event_forwarding_trust({"Ref": "AWS::AccountId"}),
            "Policies": [{"PolicyName": EVENT_FORWARDING_POLICY, "PolicyDocument": policy}],
        },
    }


def _event_rule() -> dict[str, Any]:
    """The audit's rule to the letter (auditor/domain/spec.py event_rule_specs): IAM's calls in us-east-1,
    Lambda's in the lab's Region for the account holding the function, both in one rule when those meet;
    the execution role on its target only when it sends to another Region."""
    iam, lambda_, both = (
        change_event_pattern(s) for s in (["aws.iam"], ["aws.lambda"], ["aws.iam", "aws.lambda"])
    )
    pattern = {"Fn::If": ["InIamRegion", {"Fn::If": ["WatchesLambda", both, iam]}, lambda_]}
    role_arn = {
        "Fn::If": ["CrossesRegions", {"Fn::GetAtt": ["ChangeEventsRole", "Arn"]}, {"Ref": "AWS::NoValue"}]
    }
    return {
        "Type": "AWS::Events::Rule",
        "Condition": "ForwardsChanges",
        "Properties": {
            "Name": EVENT_RULE,
            "Description": "lab-auditor: change events of this lab account",
            "State": "ENABLED",
            "EventPattern": pattern,
            "Targets": [{"Id": EVENT_TARGET_ID, "Arn": {"Fn::Sub": _OPERATOR_BUS}, "RoleArn": role_arn}],
        },
    }


def template_parts(part: str) -> tuple[PolicyPart, ...]:
    """The parts a template's role holds: a role of the provision part alone could not read what it builds."""
    chosen = check_part(part)
    if chosen is PolicyPart.PROVISION:
        raise ValueError(
            "a template's role holds the daemon's part too: give --part all (the daemon's and provision's "
            "policies, one inline policy each) or --part daemon"
        )
    return (PolicyPart.DAEMON,) if chosen is PolicyPart.DAEMON else (PolicyPart.DAEMON, PolicyPart.PROVISION)


def stack_set_template(
    *,
    part: str = PolicyPart.ALL,
    built_by: str = "provisioner",
    access_role: str = ACCESS_ROLE,
    operator_account: str | None = None,
    external_id: str | None = None,
    lab_region: str = IAM_EVENTS_REGION,
    change_events: bool = True,
    registry: Registry = REGISTRY,
) -> dict[str, Any]:
    """A CloudFormation template for a StackSet over the lab accounts (deployed to us-east-1 and the
    lab's Region): the access role with the part's policies, and the change-event rule with its role.
    Values the configuration does not know are parameters without a default."""
    parts = template_parts(part)
    check_built_by(built_by)
    check_access_role(access_role)
    policies = [
        {
            "PolicyName": PART_POLICY_NAMES[each],
            "PolicyDocument": {
                "Version": POLICY_VERSION,
                "Statement": _role_statements(each, built_by, registry),
            },
        }
        for each in parts
    ]
    chosen = check_part(part)
    return {
        "AWSTemplateFormatVersion": TEMPLATE_FORMAT_VERSION,
        "Description": (
            f"lab-auditor in a lab account (auditor permissions --part {chosen.value}, labs built by "
            f"{built_by}): the role the auditor assumes, and the change-event rule. A StackSet over the "
            f"lab accounts, in {IAM_EVENTS_REGION} (first) and the lab's Region."
        ),
        "Parameters": _parameters(access_role, operator_account, external_id, lab_region, change_events),
        "Conditions": _conditions(),
        "Resources": {
            "AccessRole": _access_role(policies, chosen, built_by),
            "ChangeEventsRole": _forwarding_role(),
            "ChangeEventRule": _event_rule(),
        },
        "Outputs": {
            "AccessRoleArn": {
                "Condition": "InIamRegion",
                "Description": "The role_arn of this account in the auditor's configuration.",
                "Value": {"Fn::GetAtt": ["AccessRole", "Arn"]},
            }
        },
    }
