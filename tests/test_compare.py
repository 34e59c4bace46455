"""The lab-level comparison on plain data: function checks, the access path, verdicts (no AWS)."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from auditor.domain.actual import ActualLab
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.model import Check, Effect, InvokeResult, Severity, Status, Verdict
from auditor.domain.spec import DESTINATION_POLICY, render
from auditor.iam.evaluate import allows
from auditor.policy import parse_policy, policy_engine, witness_request
from auditor.resources.access import access_path
from auditor.resources.compare import judge_lab
from conftest import lab_as_built

TODAY = date(2026, 11, 29)
SHA = "packaged-sha"
ENGINE = policy_engine()
EXPECTED = render(
    LabConfig("pair-01", AccountAccess("111111111111"), AccountAccess("222222222222")), LabSettings()
)


def judged(actual: ActualLab, invoke: InvokeResult | None = None) -> Any:
    return judge_lab(EXPECTED, actual, SHA, TODAY, invoke, engine=ENGINE)


def with_function(**changes: Any) -> ActualLab:
    actual = lab_as_built(EXPECTED, SHA)
    return actual.with_function(replace(actual.function, **changes))


def with_role(side: str, **changes: Any) -> ActualLab:
    actual = lab_as_built(EXPECTED, SHA)
    name = f"{side}_role"
    return actual.with_role(replace(getattr(actual, name), **changes))


def significant(judgement: Any) -> list[tuple[Check, Status, Effect, Severity]]:
    return [
        (f.check, f.status, f.effect, f.severity)
        for f in judgement.findings
        if f.severity is not Severity.INFO
    ]


def test_the_lab_as_built_is_conformant() -> None:
    judgement = judged(lab_as_built(EXPECTED, SHA))
    assert judgement.verdict is Verdict.CONFORMANT
    assert judgement.findings == ()


def test_the_lab_as_built_passes_every_step_of_the_access_path() -> None:
    links = access_path(EXPECTED, lab_as_built(EXPECTED, SHA), ENGINE)
    assert [link.works for link in links] == [True, True, True, True]


def test_a_single_account_lab_as_built_is_conformant() -> None:
    single = render(
        LabConfig("solo", AccountAccess("111111111111"), AccountAccess("111111111111")), LabSettings()
    )
    judgement = judge_lab(single, lab_as_built(single, SHA), SHA, TODAY, engine=ENGINE)
    assert judgement.verdict is Verdict.CONFORMANT


FUNCTION_CASES = {
    "role_changed": (
        {"role": "arn:aws:iam::111111111111:role/Other"},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.CHANGED, Severity.HIGH),
        Verdict.BROKEN,
    ),
    "handler_changed": (
        {"handler": "main.handler"},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.CHANGED, Severity.MEDIUM),
        Verdict.BROKEN,
    ),
    "deprecated_runtime": (
        {"runtime": "python3.9"},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.NONE, Severity.MEDIUM),
        Verdict.DRIFTED,
    ),
    "other_supported_runtime": (
        {"runtime": "python3.13"},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.NONE, Severity.LOW),
        Verdict.DRIFTED,
    ),
    "role_variable_removed": (
        {"environment": {}},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.CHANGED, Severity.MEDIUM),
        Verdict.BROKEN,
    ),
    "role_variable_elsewhere": (
        {"environment": {"DESTINATION_ROLE_ARN": "arn:aws:iam::999999999999:role/LambdaS3ListBuckets"}},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.CHANGED, Severity.HIGH),
        Verdict.BROKEN,
    ),
    "extra_variable": (
        {"environment": {**EXPECTED.function.environment, "DEBUG": "1"}},
        (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.CHANGED, Severity.LOW),
        Verdict.DRIFTED,
    ),
    "code_replaced": (
        {"code_sha256": "something-else"},
        (Check.LAMBDA_CODE, Status.MODIFIED, Effect.CHANGED, Severity.HIGH),
        Verdict.DRIFTED,
    ),
    "function_failed": (
        {"state": "Failed"},
        (Check.RESOURCE, Status.FAILED, Effect.NONE, Severity.MEDIUM),
        Verdict.BROKEN,
    ),
    "function_missing": (
        {"exists": False},
        (Check.RESOURCE, Status.MISSING, Effect.NARROWED, Severity.MEDIUM),
        Verdict.BROKEN,
    ),
}


@pytest.mark.parametrize("changes,finding,verdict", FUNCTION_CASES.values(), ids=FUNCTION_CASES.keys())
def test_function_checks(changes: dict[str, Any], finding: tuple[Any, ...], verdict: Verdict) -> None:
    judgement = judged(with_function(**changes))
    assert finding in significant(judgement)
    assert judgement.verdict is verdict


def test_a_runtime_deprecated_later_is_not_flagged_before_its_date() -> None:
    judgement = judge_lab(EXPECTED, with_function(runtime="python3.11"), SHA, date(2026, 1, 1), engine=ENGINE)
    assert (Check.LAMBDA_CONFIG, Status.MODIFIED, Effect.NONE, Severity.LOW) in significant(judgement)


ROLE_CASES = {
    "destination_role_missing": ("destination", {"exists": False}, Check.RESOURCE, Verdict.BROKEN),
    "origin_role_missing": ("origin", {"exists": False}, Check.RESOURCE, Verdict.BROKEN),
    "origin_trust_not_lambda": (
        "origin",
        {
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ec2.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        },
        Check.TRUST_POLICY,
        Verdict.BROKEN,
    ),
    "unreadable_inline_policy": (
        "destination",
        {"inline_policies": {"LambdaS3ListBucketsPolicy": "{not json"}},
        Check.INLINE_POLICY,
        Verdict.BROKEN,
    ),
}


@pytest.mark.parametrize("side,changes,check,verdict", ROLE_CASES.values(), ids=ROLE_CASES.keys())
def test_role_breakages(side: str, changes: dict[str, Any], check: Check, verdict: Verdict) -> None:
    judgement = judged(with_role(side, **changes))
    assert judgement.verdict is verdict
    assert any(f.check == check and f.breaks_lab for f in judgement.findings)


def test_a_boundary_that_admits_the_lab_is_drift_but_not_a_breakage() -> None:
    boundary = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}],
    }
    judgement = judged(
        with_role("destination", boundary_arn="arn:aws:iam::222222222222:policy/B", boundary_policy=boundary)
    )
    assert judgement.verdict is Verdict.DRIFTED
    # s3:List* takes away none of what the spec grants (s3:ListAllMyBuckets): IAM's evaluation is
    # unchanged, so the effect is none, a low drift (issue 11: it was "narrowed, medium").
    assert (Check.PERMISSIONS_BOUNDARY, Status.UNEXPECTED, Effect.NONE, Severity.LOW) in significant(
        judgement
    )


def test_a_boundary_that_blocks_the_listing_breaks_the_lab() -> None:
    boundary = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
    }
    judgement = judged(
        with_role("destination", boundary_arn="arn:aws:iam::222222222222:policy/B", boundary_policy=boundary)
    )
    assert judgement.verdict is Verdict.BROKEN
    blamed = [f for f in judgement.findings if f.breaks_lab]
    assert [f.check for f in blamed] == [Check.PERMISSIONS_BOUNDARY]
    assert "can no longer list buckets" in blamed[0].message


def listing_denied_when(via_aws_service: str) -> ActualLab:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:ViaAWSService": via_aws_service}},
            },
        ],
    }
    return with_role("destination", inline_policies={DESTINATION_POLICY: document})


@pytest.mark.parametrize(
    "via_aws_service,verdict,severity",
    [("true", Verdict.DRIFTED, Severity.LOW), ("false", Verdict.BROKEN, Severity.MEDIUM)],
)
def test_the_lab_calls_s3_itself_not_through_a_service(
    via_aws_service: str, verdict: Verdict, severity: Severity
) -> None:
    """IAM sets aws:ViaAWSService to false on a principal's own calls: a Deny on true never meets the
    lab's listing (a hardening), a Deny on false always does (a breakage)."""
    judgement = judged(listing_denied_when(via_aws_service))
    assert judgement.verdict is verdict
    finding = next(f for f in judgement.findings if f.check == Check.INLINE_POLICY)
    assert (finding.effect, finding.severity) == (Effect.NARROWED, severity)
    assert finding.witness is not None
    assert finding.witness.action == "s3:ListAllMyBuckets"
    assert finding.witness.context == {"aws:ViaAWSService": via_aws_service}


def trust_with(condition: dict[str, Any]) -> ActualLab:
    trust = copy.deepcopy(EXPECTED.destination_role.trust_policy)
    trust["Statement"][0]["Condition"] = condition
    return with_role("destination", trust_policy=trust)


def trust_until_or_from_2099(operator: str) -> ActualLab:
    return trust_with({operator: {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})


AUDITED_AT = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "operator,verdict,severity",
    [("DateLessThan", Verdict.DRIFTED, Severity.LOW), ("DateGreaterThan", Verdict.BROKEN, Severity.MEDIUM)],
)
def test_the_clock_is_the_audits(operator: str, verdict: Verdict, severity: Severity) -> None:
    """Every request carries aws:CurrentTime: a trust until 2099 lets the lab's request through now
    (a hardening), a trust from 2099 on refuses it now (a breakage)."""
    judgement = judge_lab(
        EXPECTED, trust_until_or_from_2099(operator), SHA, AUDITED_AT.date(), engine=ENGINE, now=AUDITED_AT
    )
    assert judgement.verdict is verdict
    finding = next(f for f in judgement.findings if f.check == Check.TRUST_POLICY)
    assert (finding.effect, finding.severity) == (Effect.NARROWED, severity)


def test_without_the_audits_moment_the_clock_cannot_be_told() -> None:
    judgement = judged(trust_until_or_from_2099("DateLessThan"))
    assert judgement.verdict is Verdict.DRIFTED
    assert any("aws:CurrentTime, which the auditor cannot know" in f.message for f in judgement.findings)


def test_every_assume_role_names_its_session_though_the_name_is_unknown() -> None:
    """AssumeRole requires RoleSessionName: any name (`*`) lets the lab's request through; one name
    in particular cannot be proven (the function picks it at random)."""
    any_name = judged(trust_with({"StringLike": {"sts:RoleSessionName": "*"}}))
    assert any_name.verdict is Verdict.DRIFTED
    assert (Check.TRUST_POLICY, Status.MODIFIED, Effect.NARROWED, Severity.LOW) in significant(any_name)
    one_name = judged(trust_with({"StringEquals": {"sts:RoleSessionName": "lab"}}))
    assert one_name.verdict is Verdict.DRIFTED
    assert any("sts:RoleSessionName, which the auditor cannot know" in f.message for f in one_name.findings)


def test_a_witness_names_a_resource_of_its_actions_kind() -> None:
    """`logs:PutLogEvents` on `*` newly allowed: the witness writes to a log stream, not to a role."""
    basic = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
        ],
    }
    judgement = judged(
        with_role("origin", managed_policies={"arn:aws:iam::111111111111:policy/Basic": basic})
    )
    finding = next(f for f in judgement.findings if f.check == Check.MANAGED_POLICIES)
    witness = finding.witness
    assert witness is not None and witness.action.startswith("logs:")
    assert re.fullmatch(r"arn:aws:logs:[^:]+:\d{12}:log-group:[^:]+(:log-stream:.+)?", witness.resource)
    request = witness_request(witness)
    assert allows([parse_policy(basic)], request)
    assert not allows([parse_policy(d) for d in EXPECTED.origin_role.inline_policies.values()], request)


def test_an_attached_admin_policy_is_critical() -> None:
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    judgement = judged(
        with_role("origin", managed_policies={"arn:aws:iam::111111111111:policy/Admin": admin})
    )
    assert (Check.MANAGED_POLICIES, Status.UNEXPECTED, Effect.WIDENED, Severity.CRITICAL) in significant(
        judgement
    )
    assert judgement.verdict is Verdict.DRIFTED


def test_a_failed_invoke_breaks_the_lab_and_names_its_cause() -> None:
    judgement = judged(
        lab_as_built(EXPECTED, SHA), InvokeResult(False, "listing_denied", "list_buckets: AccessDenied: no")
    )
    assert judgement.verdict is Verdict.BROKEN
    failure = next(f for f in judgement.findings if f.check == Check.INVOKE)
    assert failure.status is Status.FAILED
    assert "listing denied" in failure.message


def test_a_passing_invoke_adds_nothing() -> None:
    assert judged(lab_as_built(EXPECTED, SHA), InvokeResult(True, "ok", "listed")).findings == ()


def test_the_worst_findings_come_first() -> None:
    actual = with_role(
        "destination",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
        },
    )
    actual = actual.with_function(replace(actual.function, runtime="python3.13"))
    severities = [f.severity for f in judged(actual).findings]
    assert severities == sorted(severities, key=lambda s: -s.rank)
    assert severities[0] is Severity.CRITICAL
