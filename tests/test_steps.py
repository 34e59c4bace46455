"""Each step of the guide judged in an audit (auditor/resources/steps.py): done, hardened, wrong or missing,
with a sentence the student can act on; by behaviour, never by text. Pure (the lab as data, findings from
the audit's own judgement), and once through the audit on moto in process."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from botocore.exceptions import ClientError

import auditor.app.audit as audit_module
from auditor.app.audit import audit_targets
from auditor.app.context import open_context
from auditor.domain.actual import ActualLab
from auditor.domain.config import AccountAccess, ClassSettings, LabConfig, LabSettings
from auditor.domain.model import AwsCall, InvokeResult, Verdict
from auditor.domain.rubric_file import shipped_rubric
from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, ExpectedLab, render
from auditor.domain.steps import Rubric, RubricStep, StepResult, StepStatus
from auditor.policy import policy_engine
from auditor.resources.compare import judge_lab
from auditor.resources.steps import judge_steps, role_asked_for, subject_of
from conftest import lab_as_built, make_config, pair
from provisioner.apply import apply
from provisioner.plan import plan

TODAY = date(2026, 11, 29)
SHA = "packaged-sha"
ENGINE = policy_engine()
ORIGIN, DESTINATION = "111111111111", "222222222222"
EXPECTED = render(LabConfig("pair-07", AccountAccess(ORIGIN), AccountAccess(DESTINATION)), LabSettings())
GUIDE = shipped_rubric()
CLASS_STEPS = [step.step for step in GUIDE.steps if not step.after_class]

RAN = InvokeResult(
    True,
    "ok",
    f"listed 3 buckets of {DESTINATION}, marker included",
    answer={"destination_account": DESTINATION, "buckets": 3},
)
DENIED_BY_TRUST = InvokeResult(
    False,
    "assume_denied",
    f"assume_role: AccessDenied: User: arn:aws:sts::{ORIGIN}:assumed-role/Lambda-Assume-Roles/ab12c-s3 is"
    f" not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets",
)


def guide_error(role_arn: str) -> InvokeResult:
    """The guide's code re-raises: Lambda answers its error, which names the role it asked for."""
    payload = {
        "errorMessage": "An error occurred (AccessDenied) when calling the AssumeRole operation: User: "
        f"arn:aws:sts::{ORIGIN}:assumed-role/Lambda-Assume-Roles/Lambda-Assume-Roles is not authorized"
        f" to perform: sts:AssumeRole on resource: {role_arn}",
        "errorType": "ClientError",
    }
    return InvokeResult(False, "function_error", json.dumps(payload))


def judged(
    actual: ActualLab,
    invoke: InvokeResult | None = RAN,
    hardening: str = "drift",
    expected: ExpectedLab = EXPECTED,
    rubric: Rubric = GUIDE,
) -> dict[str, StepResult]:
    """The steps as an audit judges them: the findings of the audit's own judgement of the lab."""
    findings = judge_lab(expected, actual, SHA, TODAY, invoke, engine=ENGINE).findings
    results = judge_steps(rubric, expected, actual, findings, invoke, hardening, today=TODAY, engine=ENGINE)
    assert [result.step for result in results] == [step.step for step in rubric.steps]
    return {result.step: result for result in results}


def status(results: dict[str, StepResult]) -> dict[str, StepStatus]:
    return {step: result.status for step, result in results.items()}


def built() -> ActualLab:
    return lab_as_built(EXPECTED, SHA)


def with_role(side: str, **changes: Any) -> ActualLab:
    actual = built()
    return actual.with_role(replace(getattr(actual, f"{side}_role"), **changes))


def with_function(**changes: Any) -> ActualLab:
    actual = built()
    return actual.with_function(replace(actual.function, **changes))


def destination_trust(principal: Any) -> ActualLab:
    trust = copy.deepcopy(EXPECTED.destination_role.trust_policy)
    trust["Statement"][0]["Principal"] = {"AWS": principal}
    return with_role("destination", trust_policy=trust)


# ------------------------------------------------------------------------------ done, as the guide builds it


def test_the_lab_as_the_guide_builds_it_has_every_step_of_the_class_done() -> None:
    results = judged(built())
    for step in CLASS_STEPS:
        assert results[step] == StepResult(step, StepStatus.DONE), step


def test_a_single_account_lab_as_built_has_every_step_done() -> None:
    solo = render(LabConfig("solo", AccountAccess(ORIGIN), AccountAccess(ORIGIN)), LabSettings())
    results = judged(
        lab_as_built(solo, SHA), replace(RAN, answer={"destination_account": ORIGIN}), expected=solo
    )
    assert {status(results)[step] for step in CLASS_STEPS} == {StepStatus.DONE}


def test_the_audits_own_judgement_is_what_the_steps_read() -> None:
    # The pair helper's accounts: another lab, the same verdict on each step.
    expected = render(pair(3), LabSettings())
    run = replace(RAN, answer={"destination_account": expected.destination_account})
    results = judged(lab_as_built(expected, SHA), run, expected=expected)
    assert {status(results)[step] for step in CLASS_STEPS} == {StepStatus.DONE}


# ------------------------------------------------------------------------------ missing


@pytest.mark.parametrize(
    "side,steps",
    [
        ("destination", ("dest-role", "dest-trust", "dest-policy")),
        ("origin", ("origin-role", "origin-policy")),
    ],
)
def test_a_step_whose_role_is_absent_is_missing(side: str, steps: tuple[str, ...]) -> None:
    results = judged(with_role(side, exists=False), invoke=DENIED_BY_TRUST)
    for step in steps:
        assert results[step].status is StepStatus.MISSING, step
        assert "No role" in (results[step].feedback or "")
    role = EXPECTED.destination_role if side == "destination" else EXPECTED.origin_role
    assert f"No role {role.name} in account {role.account_id}" in (results[steps[0]].feedback or "")


def test_the_function_steps_are_missing_without_the_function() -> None:
    results = judged(
        with_function(exists=False), InvokeResult(False, "function_missing", "the function does not exist")
    )
    for step in ("function", "function-code", "function-run"):
        assert results[step].status is StepStatus.MISSING, step
    assert f"No function Lambda-Assume-Roles in account {ORIGIN}" in (results["function"].feedback or "")
    assert status(results)["dest-trust"] is StepStatus.DONE


@pytest.mark.parametrize(
    "side,near,step",
    [("destination", "lambdas3listbuckets", "dest-role"), ("origin", "Lambda-Assume-Role", "origin-role")],
)
def test_a_role_under_a_near_name_is_wrong_and_the_feedback_names_both(
    side: str, near: str, step: str
) -> None:
    results = judged(with_role(side, exists=False, near_name=near), invoke=DENIED_BY_TRUST)
    role = EXPECTED.destination_role if side == "destination" else EXPECTED.origin_role
    assert results[step].status is StepStatus.WRONG
    assert f"Found role {near} in account {role.account_id}" in (results[step].feedback or "")
    assert f"the guide names it {role.name}" in (results[step].feedback or "")


def test_a_function_under_a_near_name_is_wrong_and_the_run_is_not_judged() -> None:
    missing = InvokeResult(False, "function_missing", "the function does not exist")
    results = judged(with_function(exists=False, near_name="lambda-assume-roles"), missing)
    assert results["function"].status is StepStatus.WRONG
    assert "Found function lambda-assume-roles" in (results["function"].feedback or "")
    assert "the guide names it Lambda-Assume-Roles" in (results["function"].feedback or "")
    assert results["function-code"].status is StepStatus.MISSING


def test_the_steps_judged_by_the_run_are_missing_when_it_was_not_run() -> None:
    results = judged(built(), invoke=None)
    assert results["function-code"].status is StepStatus.MISSING
    assert results["function-run"].status is StepStatus.MISSING
    assert "did not run the function" in (results["function-run"].feedback or "")
    assert status(results)["function"] is StepStatus.DONE


# ------------------------------------------------------------------------------ wrong


def test_a_trust_opened_to_another_account_is_wrong_and_says_what_was_found() -> None:
    results = judged(destination_trust([f"arn:aws:iam::{ORIGIN}:root", "arn:aws:iam::999999999999:root"]))
    assert results["dest-trust"].status is StepStatus.WRONG
    feedback = results["dest-trust"].feedback or ""
    assert "arn:aws:iam::999999999999:root" in feedback  # what was found
    assert f"admit account {ORIGIN}" in feedback and "no one else" in feedback  # what the step asks
    assert status(results)["dest-role"] is StepStatus.DONE
    assert status(results)["function-run"] is StepStatus.DONE  # it still works: only that step is wrong


def test_a_trust_of_another_account_instead_is_wrong() -> None:
    results = judged(destination_trust("arn:aws:iam::333333333333:root"), invoke=DENIED_BY_TRUST)
    assert results["dest-trust"].status is StepStatus.WRONG
    assert "333333333333" in (results["dest-trust"].feedback or "")
    assert results["function-code"].status is StepStatus.DONE  # it asks for the right role
    assert results["function-run"].status is StepStatus.WRONG


def test_a_trust_narrowed_to_another_role_breaks_the_lab_and_is_wrong_not_hardened() -> None:
    results = judged(destination_trust(f"arn:aws:iam::{ORIGIN}:role/SomethingElse"), invoke=DENIED_BY_TRUST)
    assert results["dest-trust"].status is StepStatus.WRONG
    assert "can no longer assume" in (results["dest-trust"].feedback or "")


def test_an_inline_policy_granting_every_s3_action_is_wrong() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    results = judged(with_role("destination", inline_policies={DESTINATION_POLICY: document}))
    assert results["dest-policy"].status is StepStatus.WRONG
    assert "s3:ListAllMyBuckets and nothing more" in (results["dest-policy"].feedback or "")
    assert status(results)["dest-trust"] is StepStatus.DONE


def test_a_managed_policy_on_the_destination_role_is_wrong() -> None:
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    results = judged(
        with_role("destination", managed_policies={"arn:aws:iam::aws:policy/AdministratorAccess": admin})
    )
    assert results["dest-policy"].status is StepStatus.WRONG
    assert "no managed policy" in (results["dest-policy"].feedback or "")


@pytest.mark.parametrize("side,step", [("destination", "dest-policy"), ("origin", "origin-policy")])
def test_a_role_without_its_policy_is_wrong(side: str, step: str) -> None:
    failed = InvokeResult(False, "listing_denied", "list_buckets: AccessDenied: Access Denied")
    results = judged(with_role(side, inline_policies={}), invoke=failed)
    assert results[step].status is StepStatus.WRONG
    assert "was deleted" in (results[step].feedback or "")
    assert results["function-run"].status is StepStatus.WRONG


def test_the_origin_trust_opened_to_everyone_is_wrong() -> None:
    trust = copy.deepcopy(EXPECTED.origin_role.trust_policy)
    trust["Statement"][0]["Principal"] = {"AWS": "*"}
    results = judged(with_role("origin", trust_policy=trust))
    assert results["origin-role"].status is StepStatus.WRONG
    assert "Lambda may assume" in (results["origin-role"].feedback or "")


# ------------------------------------------------------------------------------ the same by meaning


def test_a_policy_under_another_name_that_grants_the_same_is_done() -> None:
    document = copy.deepcopy(EXPECTED.destination_role.inline_policies[DESTINATION_POLICY])
    document["Statement"][0]["Action"] = "s3:listallmybuckets"
    results = judged(with_role("destination", inline_policies={"MyListPolicy": document}))
    assert results["dest-policy"] == StepResult("dest-policy", StepStatus.DONE)


# ------------------------------------------------------------------------------ hardened


@pytest.mark.parametrize("hardening", ["credit", "drift"])
def test_a_trust_narrowed_to_the_origin_role_with_the_lab_working_is_hardened(hardening: str) -> None:
    results = judged(destination_trust(EXPECTED.origin_role.arn), hardening=hardening)
    assert results["dest-trust"].status is StepStatus.HARDENED
    feedback = results["dest-trust"].feedback or ""
    assert "lab still works" in feedback
    assert ("earns the step" in feedback) is (hardening == "credit")


def test_a_hardening_without_a_working_run_is_only_done() -> None:
    failed = InvokeResult(False, "function_error", "Task timed out")
    results = judged(destination_trust(EXPECTED.origin_role.arn), invoke=failed)
    assert results["dest-trust"] == StepResult("dest-trust", StepStatus.DONE)


def test_a_narrower_policy_under_another_name_with_the_lab_working_is_hardened() -> None:
    document = copy.deepcopy(EXPECTED.destination_role.inline_policies[DESTINATION_POLICY])
    document["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}
    results = judged(with_role("destination", inline_policies={"OnlyOverTls": document}))
    assert results["dest-policy"].status is StepStatus.HARDENED


# ------------------------------------------------------------------------------ the function, by behaviour


def test_another_handler_environment_code_and_runtime_with_a_working_run_is_not_a_failure() -> None:
    students_own = with_function(
        handler="lambda_function.lambda_handler",
        environment={},
        code_sha256="the-students-own",
        runtime="python3.13",
    )
    results = judged(students_own)
    for step in ("function", "function-code", "function-run"):
        assert results[step] == StepResult(step, StepStatus.DONE), step


@pytest.mark.parametrize("runtime", ["python3.6", "python3.9", "nodejs20.x"])
def test_a_runtime_that_is_not_a_supported_python_is_wrong(runtime: str) -> None:
    results = judged(with_function(runtime=runtime))
    assert results["function"].status is StepStatus.WRONG
    assert f"runs on {runtime}" in (results["function"].feedback or "")
    assert "supported Python runtime" in (results["function"].feedback or "")


def test_the_guides_step_6_role_is_wrong_and_the_feedback_says_which_to_choose() -> None:
    results = judged(with_function(role=f"arn:aws:iam::{ORIGIN}:role/lambdalists3role"))
    assert results["function"].status is StepStatus.WRONG
    feedback = results["function"].feedback or ""
    assert "lambdalists3role" in feedback and f"arn:aws:iam::{ORIGIN}:role/Lambda-Assume-Roles" in feedback


def test_the_origin_role_under_a_path_is_the_origin_role() -> None:
    results = judged(with_function(role=f"arn:aws:iam::{ORIGIN}:role/service-role/Lambda-Assume-Roles"))
    assert results["function"].status is StepStatus.DONE


def test_a_failed_function_is_wrong() -> None:
    results = judged(with_function(state="Failed"))
    assert results["function"].status is StepStatus.WRONG
    assert "not Active" in (results["function"].feedback or "")


# ------------------------------------------------------------------------------ function-code, by the run


def test_a_typo_in_the_role_the_run_asks_for_is_wrong_as_interface_md_says() -> None:
    typo = replace(DENIED_BY_TRUST, detail=DENIED_BY_TRUST.detail.removesuffix("s"))
    results = judged(with_function(code_sha256="the-guides-code"), invoke=typo)
    assert results["function-code"] == StepResult(
        "function-code",
        StepStatus.WRONG,
        f"The function assumes arn:aws:iam::{DESTINATION}:role/LambdaS3ListBucket; your role in account"
        f" {DESTINATION} is LambdaS3ListBuckets.",
    )


def test_the_guides_code_raising_names_the_role_it_asked_for() -> None:
    results = judged(built(), invoke=guide_error(f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBucket"))
    assert results["function-code"].status is StepStatus.WRONG
    assert (results["function-code"].feedback or "").startswith(
        f"The function assumes arn:aws:iam::{DESTINATION}:role/LambdaS3ListBucket;"
    )


def test_a_role_in_the_students_own_account_is_wrong() -> None:
    results = judged(built(), invoke=guide_error(f"arn:aws:iam::{ORIGIN}:role/LambdaS3ListBuckets"))
    assert results["function-code"].feedback == (
        f"The function assumes a role in account {ORIGIN}, your own; your partner's destination is {DESTINATION}."
    )
    assert results["function-code"].status is StepStatus.WRONG


def test_a_listing_of_the_students_own_account_is_wrong_for_the_code() -> None:
    own = InvokeResult(
        False,
        "wrong_account",
        f"listed the buckets of account {ORIGIN}",
        answer={"destination_account": ORIGIN},
    )
    results = judged(built(), invoke=own)
    assert results["function-code"].feedback == (
        f"The function assumes a role in account {ORIGIN}, your own; your partner's destination is {DESTINATION}."
    )
    assert results["function-run"].status is StepStatus.WRONG


def test_the_guides_placeholder_left_in_the_code_is_wrong() -> None:
    invalid = InvokeResult(
        False,
        "function_error",
        "An error occurred (ValidationError) when calling the AssumeRole operation: "
        "arn:aws:iam::account2:role/LambdaS3ListBuckets is invalid",
    )
    results = judged(built(), invoke=invalid)
    assert results["function-code"].status is StepStatus.WRONG
    assert "replace account2 with the account id" in (results["function-code"].feedback or "")


def test_a_role_arn_cut_off_by_the_detail_is_no_typo() -> None:
    clipped = InvokeResult(
        False, "function_error", f"... on resource: arn:aws:iam::{DESTINATION}:role/LambdaS3Li…"
    )
    assert role_asked_for(clipped) is None
    results = judged(built(), invoke=clipped)
    assert "LambdaS3Li;" not in (results["function-code"].feedback or "")


def test_the_role_from_the_answer_of_a_run() -> None:
    answer = {"assumed_role_arn": f"arn:aws:sts::{DESTINATION}:assumed-role/LambdaS3ListBuckets/ab12c-s3"}
    assert role_asked_for(replace(RAN, answer=answer)) == (
        f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets",
        DESTINATION,
        "LambdaS3ListBuckets",
    )


def test_the_recorded_assume_role_decides_the_code_even_when_the_listing_came_back() -> None:
    # On the emulator, which enforces no IAM, the guide's placeholder `account2` is assumed and an empty
    # account listed: the run's recorded AssumeRole, not its answer, says what the code asks for.
    placeholder = "arn:aws:iam::account2:role/LambdaS3ListBuckets"
    run = InvokeResult(
        False,
        "marker_missing",
        "the listing lacks the marker bucket",
        answer="[]",
        calls=(AwsCall("sts", "AssumeRole", placeholder), AwsCall("s3", "ListBuckets")),
    )
    results = judged(built(), invoke=run)
    assert results["function-code"].status is StepStatus.WRONG
    assert f"The function assumes {placeholder}: replace account2 with the account id" in (
        results["function-code"].feedback or ""
    )
    assert role_asked_for(run) == (placeholder, "account2", "LambdaS3ListBuckets")


def test_the_last_recorded_assume_role_is_the_one_the_code_asks_for() -> None:
    first = f"arn:aws:iam::{ORIGIN}:role/Lambda-Assume-Roles"
    last = f"arn:aws:iam::{DESTINATION}:role/LambdaS3ListBuckets"
    run = replace(RAN, calls=(AwsCall("sts", "AssumeRole", first), AwsCall("sts", "AssumeRole", last)))
    assert role_asked_for(run) == (last, DESTINATION, "LambdaS3ListBuckets")
    assert judged(built(), invoke=run)["function-code"].status is StepStatus.DONE


def test_a_run_that_could_not_start_judges_no_code() -> None:
    unavailable = InvokeResult(False, "code_unavailable", "cannot get the deployed code")
    results = judged(with_function(code_sha256="the-students-own"), invoke=unavailable)
    assert results["function-code"].status is StepStatus.MISSING
    assert (results["function-code"].feedback or "").startswith("Not judged")


# ------------------------------------------------------------------------------ function-run


def test_a_listing_without_the_marker_is_wrong_for_the_run_but_the_code_is_done() -> None:
    marker = EXPECTED.marker_bucket.name
    lacking = InvokeResult(
        False,
        "marker_missing",
        f"the listing lacks the marker bucket {marker}",
        answer={"destination_account": DESTINATION, "buckets": 1},
    )
    results = judged(built(), invoke=lacking)
    assert results["function-code"].status is StepStatus.DONE
    assert results["function-run"].status is StepStatus.WRONG
    assert f"the buckets of account {DESTINATION}, {marker} among them" in (
        results["function-run"].feedback or ""
    )


# ------------------------------------------------------------------------------ the guide's own errors


def test_the_guides_log_statement_for_us_east_1_costs_nothing_in_another_region() -> None:
    expected = render(
        LabConfig("pair-07", AccountAccess(ORIGIN), AccountAccess(DESTINATION)),
        LabSettings(region="eu-west-1"),
    )
    actual = lab_as_built(expected, SHA)
    as_printed = json.loads(
        json.dumps(expected.origin_role.inline_policies[ORIGIN_POLICY]).replace(
            "arn:aws:logs:eu-west-1:", "arn:aws:logs:us-east-1:"
        )
    )
    actual = actual.with_role(replace(actual.origin_role, inline_policies={ORIGIN_POLICY: as_printed}))
    results = judged(actual, expected=expected)
    assert results["origin-policy"].status is StepStatus.DONE
    assert "logs will not be written" in (results["origin-policy"].feedback or "")


# ------------------------------------------------------------------------------ cleanup


def test_cleanup_is_done_when_the_function_and_both_roles_are_gone() -> None:
    gone = ActualLab.before_collection(EXPECTED)
    results = judged(gone, InvokeResult(False, "function_missing", "the function does not exist"))
    assert results["cleanup"] == StepResult("cleanup", StepStatus.DONE)


def test_cleanup_is_wrong_while_something_remains() -> None:
    remains = ActualLab.before_collection(EXPECTED).with_role(built().destination_role)
    results = judged(remains, InvokeResult(False, "function_missing", "the function does not exist"))
    assert results["cleanup"].status is StepStatus.WRONG
    assert f"role LambdaS3ListBuckets in account {DESTINATION}" in (results["cleanup"].feedback or "")
    assert "function" not in (results["cleanup"].feedback or "").split(";")[0]


# ------------------------------------------------------------------------------ a rubric built by hand


def test_a_rubric_built_by_hand_without_subjects_is_judged_by_the_guides_ids() -> None:
    rubric = Rubric(
        "by-hand",
        (
            RubricStep("dest-role", "Create the role", 1, fails_on=("resource.missing",)),
            RubricStep(
                "dest-trust",
                "Trust account 1",
                2,
                needs=("dest-role",),
                fails_on=("trust_policy.widened",),
                hardened_by=("trust_policy.narrowed",),
            ),
            RubricStep("function", "Create the function", 2),
            RubricStep("cleanup", "Tear down", 2, after_class=True),
        ),
    )
    assert [subject_of(step) for step in rubric.steps] == [
        "destination_role",
        "destination_role",
        "function",
        "lab",
    ]
    results = judged(destination_trust(EXPECTED.origin_role.arn), rubric=rubric)
    assert status(results) == {
        "dest-role": StepStatus.DONE,
        "dest-trust": StepStatus.HARDENED,
        "function": StepStatus.DONE,
        "cleanup": StepStatus.WRONG,
    }


# ------------------------------------------------------------------------------ through the audit, on moto


@pytest.mark.usefixtures("moto_in_process")
def test_the_audit_fills_the_steps_in_students_mode_only(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = pair(1)
    project = make_config((lab,))
    builder = open_context(project)
    target = builder.targets()[0]
    apply(builder.sessions, target, plan(builder, target), sleep=lambda _: None)  # the lab, as the guide's
    # A student opens the trust to another account.
    destination = builder.sessions.client(lab.destination, "iam")
    trust = copy.deepcopy(target.expected.destination_role.trust_policy)
    trust["Statement"][0]["Principal"] = {
        "AWS": [f"arn:aws:iam::{lab.origin.account_id}:root", "999999999999"]
    }
    destination.update_assume_role_policy(
        RoleName=target.expected.destination_role.name, PolicyDocument=json.dumps(trust)
    )

    students = open_context(replace(project, classroom=ClassSettings(built_by="students")))
    [audit] = audit_targets(students, students.targets(), invoke=False).labs
    results = {result.step: result for result in audit.steps}
    assert [result.step for result in audit.steps] == [step.step for step in GUIDE.steps]
    assert results["dest-trust"].status is StepStatus.WRONG
    assert "999999999999" in (results["dest-trust"].feedback or "")
    for step in ("dest-role", "dest-policy", "origin-role", "origin-policy", "function"):
        assert results[step].status is StepStatus.DONE, step
    assert results["function-run"].status is StepStatus.MISSING  # not run: --no-invoke
    assert audit.to_json()["steps"][1]["status"] == "wrong"

    [by_the_project] = audit_targets(builder, builder.targets(), invoke=False).labs
    assert by_the_project.steps == ()
    assert "steps" not in by_the_project.to_json()

    def unreachable(*args: Any, **named: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "GetRole")

    monkeypatch.setattr(audit_module, "collect_lab", unreachable)
    [failed] = audit_targets(students, students.targets(), invoke=False).labs
    assert failed.verdict is Verdict.ERROR and failed.steps == ()


@pytest.mark.usefixtures("moto_in_process")
def test_the_audit_looks_for_a_near_name_only_when_students_build_and_only_for_what_is_missing() -> None:
    lab = pair(2)
    project = make_config((lab,))
    builder = open_context(project)
    target = builder.targets()[0]
    origin = builder.sessions.client(lab.origin, "iam")
    origin_role = target.expected.origin_role
    # The origin role made as `lambda-assume-roles`, and another role nowhere near the name.
    for name in ("lambda-assume-roles", "OrganizationAccountAccessRole"):
        origin.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(origin_role.trust_policy))

    students = open_context(replace(project, classroom=ClassSettings(built_by="students")))
    [audit] = audit_targets(students, students.targets(), invoke=False).labs
    results = {result.step: result for result in audit.steps}
    assert results["origin-role"].status is StepStatus.WRONG
    assert (results["origin-role"].feedback or "").startswith(
        f"Found role lambda-assume-roles in account {lab.origin.account_id}, the origin; the guide names it"
        f" {origin_role.name}"
    )
    assert results["dest-role"].status is StepStatus.MISSING  # nothing near it in the destination
    assert students.sessions.calls.get("iam:ListRoles", 0) == 2  # one account each, for what is missing
    assert students.sessions.calls.get("lambda:ListFunctions", 0) == 1

    audit_targets(builder, builder.targets(), invoke=False)
    assert "iam:ListRoles" not in builder.sessions.calls  # the project's own class: never looked for
