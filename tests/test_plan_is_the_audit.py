"""The plan is the audit, on the moto server: whatever a student changes in a provisioned lab, the resources
with a finding are exactly the resources `provision --dry-run` would change, and a provision followed by
an audit (with the function's run) is conformant.

Hypothesis chooses among the changes a student can make to the roles, their policies, attachments and
boundaries, the function's configuration and code, the log group and the marker bucket.
"""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.domain.model import Finding, InvokeResult, LabAudit, Step, Verdict
from auditor.domain.spec import (
    DESTINATION_POLICY,
    DESTINATION_ROLE,
    FUNCTION,
    ORIGIN_POLICY,
    ORIGIN_ROLE,
    render,
)
from auditor.policy import policy_engine
from auditor.resources.compare import invoke_finding, judge_lab
from auditor.resources.registry import REGISTRY
from conftest import lab_as_built, make_config, pair
from provisioner.provision import provision_targets

pytestmark = pytest.mark.server

LAB = pair(1)


@dataclass(frozen=True)
class Student:
    """A student at work in the lab's two accounts, with the lab's own account access."""

    context: Context

    def client(self, side: str, service: str) -> Any:
        return self.context.sessions.client(getattr(LAB, side), service)

    def iam(self, side: str) -> Any:
        return self.client(side, "iam")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str, resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def code_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", text)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- what a student can do

Change = Callable[[Student, Any], None]


def open_the_trust(student: Student, _: Any) -> None:
    trust = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"})
    student.iam("destination").update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=trust)


def narrow_the_trust_to_the_origin_role(student: Student, _: Any) -> None:
    origin_role = f"arn:aws:iam::{LAB.origin.account_id}:role/{ORIGIN_ROLE}"
    trust = policy({"Effect": "Allow", "Principal": {"AWS": origin_role}, "Action": "sts:AssumeRole"})
    student.iam("destination").update_assume_role_policy(RoleName=DESTINATION_ROLE, PolicyDocument=trust)


def trust_another_service(student: Student, _: Any) -> None:
    trust = policy(
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )
    student.iam("origin").update_assume_role_policy(RoleName=ORIGIN_ROLE, PolicyDocument=trust)


def widen_the_destination_policy(student: Student, _: Any) -> None:
    student.iam("destination").put_role_policy(
        RoleName=DESTINATION_ROLE, PolicyName=DESTINATION_POLICY, PolicyDocument=policy(allow("s3:*"))
    )


def delete_the_origin_policy(student: Student, _: Any) -> None:
    student.iam("origin").delete_role_policy(RoleName=ORIGIN_ROLE, PolicyName=ORIGIN_POLICY)


def add_an_inline_policy(student: Student, wide: Any) -> None:
    statement = allow("*") if wide else allow("s3:ListAllMyBuckets")
    student.iam("origin").put_role_policy(
        RoleName=ORIGIN_ROLE, PolicyName="student-extra", PolicyDocument=policy(statement)
    )


def attach_a_managed_policy(student: Student, side: Any) -> None:
    iam = student.iam(side)
    arn = iam.create_policy(PolicyName="StudentReadOnly", PolicyDocument=policy(allow("s3:Get*")))["Policy"][
        "Arn"
    ]
    role = ORIGIN_ROLE if side == "origin" else DESTINATION_ROLE
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)


def set_a_boundary(student: Student, side: Any) -> None:
    iam = student.iam(side)
    arn = iam.create_policy(PolicyName="StudentBoundary", PolicyDocument=policy(allow("s3:GetObject")))[
        "Policy"
    ]["Arn"]
    role = ORIGIN_ROLE if side == "origin" else DESTINATION_ROLE
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=arn)


def change_the_timeout(student: Student, seconds: Any) -> None:
    student.client("origin", "lambda").update_function_configuration(FunctionName=FUNCTION, Timeout=seconds)


def change_the_memory(student: Student, megabytes: Any) -> None:
    student.client("origin", "lambda").update_function_configuration(
        FunctionName=FUNCTION, MemorySize=megabytes
    )


def add_a_variable(student: Student, _: Any) -> None:
    lambda_client = student.client("origin", "lambda")
    variables = lambda_client.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    lambda_client.update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {**variables, "DEBUG": "1"}}
    )


def remove_the_variables(student: Student, _: Any) -> None:
    student.client("origin", "lambda").update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {}}
    )


def change_the_handler(student: Student, _: Any) -> None:
    student.client("origin", "lambda").update_function_configuration(
        FunctionName=FUNCTION, Handler="main.handler"
    )


def change_the_runtime(student: Student, _: Any) -> None:
    student.client("origin", "lambda").update_function_configuration(
        FunctionName=FUNCTION, Runtime="python3.13"
    )


def replace_the_code(student: Student, _: Any) -> None:
    student.client("origin", "lambda").update_function_code(
        FunctionName=FUNCTION, ZipFile=code_zip("def lambda_handler(event, context):\n    return {}\n")
    )


def change_the_retention(student: Student, days: Any) -> None:
    logs = student.client("origin", "logs")
    if days is None:
        logs.delete_retention_policy(logGroupName=f"/aws/lambda/{FUNCTION}")
    else:
        logs.put_retention_policy(logGroupName=f"/aws/lambda/{FUNCTION}", retentionInDays=days)


def delete_the_log_group(student: Student, _: Any) -> None:
    student.client("origin", "logs").delete_log_group(logGroupName=f"/aws/lambda/{FUNCTION}")


def delete_the_marker_bucket(student: Student, _: Any) -> None:
    name = render(LAB, student.context.config.lab).marker_bucket.name
    student.client("destination", "s3").delete_bucket(Bucket=name)


def delete_the_function(student: Student, _: Any) -> None:
    student.client("origin", "lambda").delete_function(FunctionName=FUNCTION)


def delete_a_role(student: Student, side: Any) -> None:
    """As IAM makes a student do it: its inline policies, attachments and boundary first."""
    iam = student.iam(side)
    role = ORIGIN_ROLE if side == "origin" else DESTINATION_ROLE
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role, PolicyArn=attached["PolicyArn"])
    if iam.get_role(RoleName=role)["Role"].get("PermissionsBoundary"):
        iam.delete_role_permissions_boundary(RoleName=role)
    iam.delete_role(RoleName=role)


SIDES = ("origin", "destination")
NOTHING = (None,)
# Each change with the values it may take; removals last, so that every change lands first.
CHANGES: dict[str, tuple[Change, tuple[Any, ...]]] = {
    "open_the_trust": (open_the_trust, NOTHING),
    "narrow_the_trust_to_the_origin_role": (narrow_the_trust_to_the_origin_role, NOTHING),
    "trust_another_service": (trust_another_service, NOTHING),
    "widen_the_destination_policy": (widen_the_destination_policy, NOTHING),
    "delete_the_origin_policy": (delete_the_origin_policy, NOTHING),
    "add_an_inline_policy": (add_an_inline_policy, (False, True)),
    "attach_a_managed_policy": (attach_a_managed_policy, SIDES),
    "set_a_boundary": (set_a_boundary, SIDES),
    "change_the_timeout": (change_the_timeout, (1, 3, 60, 900)),
    "change_the_memory": (change_the_memory, (256, 1024)),
    "add_a_variable": (add_a_variable, NOTHING),
    "remove_the_variables": (remove_the_variables, NOTHING),
    "change_the_handler": (change_the_handler, NOTHING),
    "change_the_runtime": (change_the_runtime, NOTHING),
    "replace_the_code": (replace_the_code, NOTHING),
    "change_the_retention": (change_the_retention, (None, 1, 30)),
    "delete_the_log_group": (delete_the_log_group, NOTHING),
    "delete_the_marker_bucket": (delete_the_marker_bucket, NOTHING),
    "delete_the_function": (delete_the_function, NOTHING),
    "delete_a_role": (delete_a_role, SIDES),
}


@st.composite
def student_work(draw: st.DrawFn) -> list[tuple[str, Any]]:
    names = draw(st.lists(st.sampled_from(sorted(CHANGES)), min_size=1, max_size=4, unique=True))
    ordered = sorted(names, key=list(CHANGES).index)
    return [(name, draw(st.sampled_from(CHANGES[name][1]))) for name in ordered]


# ------------------------------------------------------------------------------------------ the test


def reset(moto_server: str) -> None:
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def audited(context: Context, *, invoke: bool) -> LabAudit:
    run = audit_targets(context, context.targets(), invoke=invoke)
    assert run.labs[0].verdict is not Verdict.ERROR, run.labs[0].error
    return run.labs[0]


def planned(context: Context, *, dry_run: bool) -> list[Step]:
    outcome = provision_targets(context, context.targets(), dry_run=dry_run)[0]
    assert outcome.ok and outcome.result is not None, outcome.error
    return list(outcome.result.steps)


def each_change_alone(test: Callable[..., None]) -> Callable[..., None]:
    """Every change at least once, with its first value; hypothesis adds combinations and the other values."""
    for name, (_, values) in reversed(CHANGES.items()):
        test = example(work=[(name, values[0])])(test)
    return test


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@each_change_alone
@given(work=student_work())
def test_the_resources_with_a_finding_are_the_resources_the_plan_changes(
    moto_server: str, work: list[tuple[str, Any]]
) -> None:
    reset(moto_server)
    with open_context(make_config((LAB,), endpoint_url=moto_server)) as context:
        assert all(step.changes for step in planned(context, dry_run=False))
        student = Student(context)
        for name, value in work:
            CHANGES[name][0](student, value)

        findings = audited(context, invoke=False).findings
        assert findings, f"the audit did not see {work}"
        plan = planned(context, dry_run=True)
        assert {f.resource for f in findings} == {s.resource for s in plan if s.changes}, (
            work,
            findings,
            plan,
        )
        assert all(step.reason or step.action.value == "create" for step in plan if step.changes)

        planned(context, dry_run=False)
        after = audited(context, invoke=True)
        assert after.verdict is Verdict.CONFORMANT, (work, after.findings, after.invoke)
        assert after.findings == ()


# ------------------------------------------------------------------------- no fix for a failed run

EXPECTED = render(LAB, make_config((LAB,)).lab)


def fixes(found: Finding) -> list[Step]:
    return REGISTRY.fixes(found, EXPECTED, lab_as_built(EXPECTED, "sha"))


def test_a_failed_run_is_a_finding_no_provisioning_fixes() -> None:
    failure = invoke_finding(EXPECTED, InvokeResult(False, "timeout", "the function ran out of time"))
    assert failure is not None and failure.breaks_lab
    assert fixes(failure) == []


def test_a_drifted_timeout_is_a_low_lambda_config_finding_fixed_by_updating_the_function() -> None:
    built = lab_as_built(EXPECTED, "sha")
    actual = built.with_function(replace(built.function, timeout=1))
    judgement = judge_lab(EXPECTED, actual, "sha", date(2026, 11, 29), engine=policy_engine())
    assert judgement.verdict is Verdict.DRIFTED
    [finding] = judgement.findings
    assert (finding.check, finding.severity.value, finding.breaks_lab) == (
        "lambda_config",
        "low",
        False,
    )
    assert [(s.kind, s.action.value, s.resource) for s in fixes(finding)] == [
        ("function", "update", EXPECTED.function.arn)
    ]


def test_every_kind_is_found_by_the_registry() -> None:
    assert set(REGISTRY.names()) == {
        "role",
        "inline_policy",
        "managed_policy",
        "permissions_boundary",
        "function",
        "function_code",
        "log_group",
        "marker_bucket",
        "event_role",
        "event_rule",
        "trail",
    }
