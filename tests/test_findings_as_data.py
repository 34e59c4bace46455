"""A finding is data (design rule 6): each kind declares its codes beside its module; the report's schema,
the watched calls, the CloudTrail map and each finding's fix are derived from those declarations, and a
bad data file is refused naming the file and the key."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from auditor.domain.actual import ActualLab, ActualLogGroup, ActualRole
from auditor.domain.config import LabSettings
from auditor.domain.declarations import SHIPPED, Catalogue, DeclarationError, load_declaration
from auditor.domain.model import Action, Finding, InvokeResult, Step, check_of
from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, WATCHED_CALLS, render
from auditor.policy import policy_engine
from auditor.report import SCHEMA_PATH, report_schema
from auditor.resources.compare import invoke_finding, judge_lab
from auditor.resources.registry import REGISTRY
from conftest import lab_as_built, pair

LAB = pair(1)
EXPECTED = render(LAB, LabSettings())
LOG_GROUP = EXPECTED.log_group
BUILT = lab_as_built(EXPECTED, "sha")
OPEN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
MANAGED = f"arn:aws:iam::{LAB.destination.account_id}:policy/Admin"
BOUNDARY = f"arn:aws:iam::{LAB.destination.account_id}:policy/Boundary"
ORIGIN_ROLE = EXPECTED.origin_role.arn
SOURCE_IP = {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}


def with_destination(**changes: object) -> ActualLab:
    return BUILT.with_role(replace(BUILT.destination_role, **changes))  # type: ignore[arg-type]


def judged(actual: ActualLab, invoke: InvokeResult | None = None) -> tuple[Finding, ...]:
    return judge_lab(EXPECTED, actual, "sha", date(2026, 11, 29), invoke, engine=policy_engine()).findings


def fixes(finding: Finding, actual: ActualLab = BUILT) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (step.kind, step.account_id, step.owner, step.name, step.action.value, step.reason)
        for step in REGISTRY.fixes(finding, EXPECTED, actual)
    ]


def drifted_everywhere() -> list[Finding]:
    """The findings of labs drifted in every way the kinds report (as many codes as pure data reaches)."""
    destination = with_destination(
        trust_policy="{not json",
        inline_policies={DESTINATION_POLICY: ADMIN, "extra": ADMIN, "odd": "{"},
        managed_policies={MANAGED: ADMIN, f"{MANAGED}2": None},
        boundary_arn=BOUNDARY,
        boundary_policy=ADMIN,
    )
    origin_gone = BUILT.with_role(ActualRole(LAB.origin.account_id, EXPECTED.origin_role.name, exists=False))
    function = replace(BUILT.function, timeout=1, code_sha256="other", state="Failed")
    lost = BUILT.with_function(replace(BUILT.function, exists=False))
    failed = InvokeResult(False, "timeout", "the function ran out of time")
    found = [
        *judged(destination),
        *judged(origin_gone),
        *judged(destination.with_function(function), failed),
        *judged(lost),
        *judged(with_destination(trust_policy=OPEN_TRUST)),
        *judged(with_destination(inline_policies={})),
        *judged(with_destination(trust_policy=statement("sts:AssumeRole", {"AWS": ORIGIN_ROLE}))),
        *judged(with_destination(trust_policy=statement("sts:AssumeRole", {"AWS": "*"}, SOURCE_IP))),
        *judged(with_destination(inline_policies={DESTINATION_POLICY: statement("s3:ListBucket")})),
        *judged(with_destination(boundary_arn=BOUNDARY, boundary_policy=None)),
        *judged(BUILT.with_role(replace(BUILT.origin_role, inline_policies={ORIGIN_POLICY: "{"}))),
        *judged(BUILT.with_entries({LOG_GROUP.key: ActualLogGroup(LOG_GROUP.name, exists=False)})),
        *judged(BUILT.with_entries({LOG_GROUP.key: ActualLogGroup(LOG_GROUP.name, True, 30)})),
    ]
    return found


def statement(action: str, principal: object = None, condition: object = None) -> dict[str, object]:
    body: dict[str, object] = {"Effect": "Allow", "Action": action}
    body.update({"Principal": principal} if principal else {"Resource": "*"})
    if condition:
        body["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [body]}


# ------------------------------------------------------------------------------------- the shipped data


def test_every_finding_the_kinds_report_has_a_code_its_subject_s_kind_declares() -> None:
    findings = drifted_everywhere()
    undeclared = [(f.code, f.subject) for f in findings if SHIPPED.declared(f) is None]
    assert undeclared == []
    assert all(f.check == check_of(f.code) for f in findings)
    assert len({f.code for f in findings}) >= 20  # the scenarios reach most codes


def test_a_finding_is_fixed_by_its_code_s_step_on_its_subject_and_nothing_parses_its_resource() -> None:
    for finding in drifted_everywhere():
        declared = SHIPPED.declared(finding)
        assert declared is not None and finding.subject is not None
        steps = REGISTRY.fixes(finding, EXPECTED, BUILT)
        own = [step for step in steps if step.key == finding.subject.key]
        assert finding.fixable == bool(steps), finding
        assert [step.action for step in own] == ([declared.step] if declared.step else []), finding
        assert all(step.resource == finding.resource for step in steps)


def test_the_shipped_kinds_watch_the_calls_they_always_watched() -> None:
    assert WATCHED_CALLS == {
        "aws.iam": (
            "AttachRolePolicy",
            "CreateRole",
            "DeleteRole",
            "DeleteRolePermissionsBoundary",
            "DeleteRolePolicy",
            "DetachRolePolicy",
            "PutRolePermissionsBoundary",
            "PutRolePolicy",
            "UpdateAssumeRolePolicy",
        ),
        "aws.lambda": (
            "CreateFunction20150331",
            "DeleteFunction20150331",
            "UpdateFunctionCode20150331v2",
            "UpdateFunctionConfiguration20150331v2",
        ),
    }


def test_the_report_schema_file_lists_the_checks_and_codes_the_kinds_declare() -> None:
    on_disk = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert on_disk == report_schema(REGISTRY), (
        "auditor/report/report.schema.json is not current: set $defs.finding.properties.check.enum and "
        ".code.enum to auditor.report.report_schema()'s"
    )
    assert set(on_disk["$defs"]["finding"]["properties"]["check"]["enum"]) == {
        "resource",
        "trust_policy",
        "inline_policy",
        "managed_policies",
        "permissions_boundary",
        "lambda_config",
        "lambda_code",
        "invoke",
        "log_group",
        "event_role",
        "event_rule",
        "change_events",
    }


def test_every_kind_has_its_data_file_and_every_data_file_its_kind() -> None:
    assert set(SHIPPED.kinds()) == set(REGISTRY.names())


# --------------------------------------------------------------- the fixes, as the kinds' code had them


def test_a_missing_role_is_created_with_its_inline_policies() -> None:
    [missing] = [f for f in judged(BUILT.with_role(replace(BUILT.destination_role, exists=False)))]
    role, account = EXPECTED.destination_role.name, LAB.destination.account_id
    assert missing.code == "resource.missing"
    assert fixes(missing) == [
        ("role", account, role, role, "create", ""),
        ("inline_policy", account, role, DESTINATION_POLICY, "create", ""),
    ]


def test_an_attached_managed_policy_is_detached_and_a_boundary_removed_by_their_arns() -> None:
    findings = judged(with_destination(managed_policies={MANAGED: ADMIN}, boundary_arn=BOUNDARY))
    role, account = EXPECTED.destination_role.name, LAB.destination.account_id
    attached = next(f for f in findings if f.code == "managed_policies.attached")
    boundary = next(f for f in findings if f.check == "permissions_boundary")
    assert fixes(attached) == [
        ("managed_policy", account, role, MANAGED, "delete", "detach; the policy itself stays")
    ]
    assert fixes(boundary) == [("permissions_boundary", account, role, BOUNDARY, "delete", boundary.message)]


def test_an_unreadable_inline_policy_is_put_back_if_the_spec_has_it_and_deleted_if_not() -> None:
    findings = judged(with_destination(inline_policies={DESTINATION_POLICY: "{", "extra": "{"}))
    role, account = EXPECTED.destination_role.name, LAB.destination.account_id
    by_code = {f.code: f for f in findings}
    spec_one, extra = by_code["inline_policy.unreadable"], by_code["inline_policy.unexpected_unreadable"]
    assert fixes(spec_one) == [
        ("inline_policy", account, role, DESTINATION_POLICY, "update", spec_one.message)
    ]
    assert fixes(extra) == [("inline_policy", account, role, "extra", "delete", extra.message)]


def test_a_deleted_origin_policy_is_put_back_and_the_access_path_finding_of_the_role_is_not_a_step() -> None:
    origin = BUILT.with_role(replace(BUILT.origin_role, inline_policies={}))
    findings = judged(origin)
    deleted = next(f for f in findings if f.code == "inline_policy.missing")
    role, account = EXPECTED.origin_role.name, LAB.origin.account_id
    assert fixes(deleted, origin) == [
        ("inline_policy", account, role, ORIGIN_POLICY, "create", deleted.message)
    ]
    assert all(fixes(f, origin) == [] for f in findings if f.code == "inline_policy.denies_lab")


def test_a_failed_run_has_no_step_and_its_code_s_remediation() -> None:
    failure = invoke_finding(EXPECTED, InvokeResult(False, "timeout", "ran out of time"))
    assert failure is not None and failure.code == "invoke.failed"
    assert REGISTRY.fixes(failure, EXPECTED, BUILT) == []
    assert "no provisioning step" in REGISTRY.remediation(failure)


def test_a_finding_recorded_without_a_subject_has_no_fix() -> None:
    failure = invoke_finding(EXPECTED, InvokeResult(False, "timeout", "ran out of time"))
    assert failure is not None
    trust = replace(failure, code="trust_policy.widened", subject=None)
    assert REGISTRY.fixes(trust, EXPECTED, BUILT) == []


def test_steps_of_a_plan_are_those_of_the_findings_subjects() -> None:
    actual = with_destination(trust_policy=OPEN_TRUST)
    findings = judged(actual)
    plan: list[Step] = REGISTRY.plan(EXPECTED, actual, findings)
    changing = [step for step in plan if step.changes]
    assert [(s.kind, s.action) for s in changing] == [("role", Action.UPDATE)]
    assert {f.subject.key for f in findings if f.subject} == {s.key for s in changing}


# ------------------------------------------------------------------------------------ bad data files


GOOD = """
kind = "toy"
replaced_by = ["iam:DeleteRole"]

[codes."toy.missing"]
title = "A toy is missing"
severity = "low"
remediation = "make the toy"
step = "create"
reason = ""
changed_by = ["iam:TagRole"]
"""


def test_a_good_data_file_loads() -> None:
    declaration = load_declaration("toy.toml", GOOD)
    [code] = declaration.codes
    assert (declaration.kind, code.code, code.check, code.step, code.reason) == (
        "toy",
        "toy.missing",
        "toy",
        Action.CREATE,
        "",
    )
    assert code.changed_by == ("iam:TagRole",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('severity = "low"', 'severity = "urgent"'), "toy.toml: codes.toy.missing.severity: 'urgent'"),
        (('step = "create"', 'step = "rebuild"'), "toy.toml: codes.toy.missing.step: 'rebuild'"),
        (('title = "A toy is missing"\n', ""), "toy.toml: codes.toy.missing.title: a sentence is required"),
        (('reason = ""', 'reasons = ""'), "toy.toml: codes.toy.missing.reasons: unknown key"),
        (('["iam:TagRole"]', '["TagRole"]'), "toy.toml: codes.toy.missing.changed_by: 'TagRole'"),
        (('[codes."toy.missing"]', '[codes."missing"]'), "toy.toml: codes.missing: a code is its check"),
        (('kind = "toy"', 'kind = "Toy"'), "toy.toml: kind: a name"),
        (('kind = "toy"', 'kind = "toy"\nkinds = 1'), "toy.toml: kinds: unknown key"),
        (("replaced_by = [", "replaced_by = "), "toy.toml: not TOML"),
    ],
)
def test_a_bad_data_file_is_refused_naming_the_file_and_the_key(
    change: tuple[str, str], message: str
) -> None:
    with pytest.raises(DeclarationError) as refused:
        load_declaration("toy.toml", GOOD.replace(*change))
    assert str(refused.value).startswith(message)


def test_two_files_declaring_one_kind_or_answering_an_undeclared_code_are_refused(tmp_path: Path) -> None:
    toy = load_declaration("toy.toml", GOOD)
    with pytest.raises(DeclarationError, match=r"other\.toml: kind: 'toy' is declared by toy\.toml too"):
        Catalogue((toy, replace(toy, source="other.toml")))
    answering = GOOD + '[[answers]]\nkind = "role"\ncode = "x.y"\nstep = "create"\n'
    with pytest.raises(DeclarationError, match=r"toy\.toml: answers: kind 'role' declares no code 'x\.y'"):
        SHIPPED.including([load_declaration("toy.toml", answering)])
