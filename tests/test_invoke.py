"""Judging the function's answer (pure), AWS's faults in its run and its Invoke (retried, never a finding),
and the local stand-in for the Lambda Python runtime."""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from auditor.aws.accounts import AccountSessions, client_settings
from auditor.aws.invoke import (
    MAX_ANSWER_BYTES,
    deployed_code,
    function_error,
    invoke_lambda,
    judge_answer,
    run_deployed,
    run_with_retries,
)
from auditor.aws.local_lambda import LocalLambda
from auditor.domain.actual import ActualFunction
from auditor.domain.config import AccountAccess, AwsSettings, LabConfig, LabSettings
from auditor.domain.faults import AwsFault, LabRetries, RetryCounts, lab_budget
from auditor.domain.model import InvokeResult
from auditor.domain.package import code_sha256, packaged
from auditor.domain.spec import render

EXPECTED = render(
    LabConfig("pair-01", AccountAccess("111111111111"), AccountAccess("222222222222")), LabSettings()
)
MARKER = EXPECTED.marker_bucket.name


def answer(**fields: object) -> str:
    return json.dumps({"ok": True, "destination_account": "222222222222", "buckets": [MARKER], **fields})


CASES = {
    "proof": (answer(), True, "ok"),
    "origin_listing": (answer(destination_account="111111111111"), False, "wrong_account"),
    "no_marker": (answer(buckets=["other"]), False, "marker_missing"),
    "assume_denied": (
        json.dumps(
            {"ok": False, "stage": "assume_role", "error_code": "AccessDenied", "error": "not authorized"}
        ),
        False,
        "assume_denied",
    ),
    "listing_denied": (
        json.dumps({"ok": False, "stage": "list_buckets", "error_code": "AccessDenied", "error": "no"}),
        False,
        "listing_denied",
    ),
    "unhandled": (json.dumps({"ok": False, "stage": "unhandled", "error": "boom"}), False, "function_error"),
    "not_json": ("[{'Name': 'bucket', 'CreationDate': datetime(2020, 1, 1)}]", False, "bad_answer"),
    "a_list": ("[1, 2]", False, "bad_answer"),
    "buckets_not_names": (answer(buckets=[{"Name": MARKER}]), False, "bad_answer"),
    "huge": (json.dumps({"x": "y" * (MAX_ANSWER_BYTES + 1)}), False, "bad_answer"),
    "bytes_not_utf8": (b"\xff\xfe\x00", False, "bad_answer"),
}


@pytest.mark.parametrize("raw,ok,cause", CASES.values(), ids=CASES.keys())
def test_the_answer_is_judged_on_the_proof(raw: str | bytes, ok: bool, cause: str) -> None:
    result = judge_answer(raw, EXPECTED)
    assert (result.ok, result.cause) == (ok, cause)


def test_hostile_output_is_clipped_in_the_detail() -> None:
    raw = json.dumps({"ok": False, "stage": "assume_role", "error": "<script>" + "x" * 10_000})
    result = judge_answer(raw, EXPECTED)
    assert len(result.detail) < 400


def archive_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def function(handler: str = "handler.lambda_handler", timeout: int = 10, sha: str = "") -> ActualFunction:
    return ActualFunction(
        "Lambda-Assume-Roles", True, handler=handler, runtime="python3.12", timeout=timeout, code_sha256=sha
    )


ENVIRONMENT_PROBE = """
import json, os
from botocore.useragent import UserAgentString

def lambda_handler(event, context):
    return {"ok": False, "stage": "probe", "error_code": os.environ["AWS_EXECUTION_ENV"],
            "error": UserAgentString.from_environment().to_string()}
"""


def test_the_stand_in_sets_the_execution_environment_that_the_user_agent_carries(
    local_lambda: LocalLambda,
) -> None:
    environment = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "AWS_DEFAULT_REGION": "us-east-1"}
    result = run_deployed(local_lambda, archive_of(ENVIRONMENT_PROBE), function(), environment, EXPECTED)
    assert "AWS_Lambda_python3.12" in result.detail
    assert "exec-env/AWS_Lambda_python3.12" in result.detail


def test_an_exception_in_the_function_is_a_function_error(local_lambda: LocalLambda) -> None:
    source = "def lambda_handler(event, context):\n    raise RuntimeError('boom')\n"
    result = run_deployed(local_lambda, archive_of(source), function(), {}, EXPECTED)
    assert (result.ok, result.cause) == (False, "function_error")
    assert "boom" in result.detail


def test_a_missing_handler_is_a_function_error(local_lambda: LocalLambda) -> None:
    result = run_deployed(
        local_lambda, archive_of("x = 1\n"), function(handler="handler.nothing"), {}, EXPECTED
    )
    assert (result.ok, result.cause) == (False, "function_error")


def test_a_function_that_outlives_its_timeout_is_stopped(local_lambda: LocalLambda) -> None:
    source = "import time\ndef lambda_handler(event, context):\n    time.sleep(30)\n"
    result = run_deployed(local_lambda, archive_of(source), function(timeout=1), {}, EXPECTED)
    assert (result.ok, result.cause) == (False, "timeout")


def test_the_deployed_code_is_the_package_only_when_the_digests_match() -> None:
    archive, digest = packaged()
    assert deployed_code(function(sha=digest)) == archive


def test_unknown_deployed_code_is_refused_rather_than_replaced() -> None:
    from auditor.aws.invoke import CodeUnavailable

    other = code_sha256(archive_of("x = 1\n"))
    with pytest.raises(CodeUnavailable, match="cannot get the deployed code"):
        deployed_code(function(sha=other))


# ------------------------------------------------------------------------------------- AWS's faults in the run


def failed_at(stage: str, code: str, message: str = "Rate exceeded", **more: object) -> str:
    return json.dumps({"ok": False, "stage": stage, "error_code": code, "error": message, **more})


REPORTED = {
    "assume_role_throttled": (
        failed_at("assume_role", "Throttling", http_status=400, attempts=3),
        "aws_fault",
        "AWS throttled sts:AssumeRole in the function's run 3 times (Throttling: Rate exceeded)",
    ),
    "listing_answered_503": (
        failed_at("list_buckets", "ServiceUnavailable", "Service Unavailable", http_status=503, attempts=3),
        "aws_fault",
        "AWS answered 503 to s3:ListBuckets in the function's run 3 times (ServiceUnavailable: Service Unavailable)",
    ),
    "listing_slowed_down": (
        failed_at(
            "list_buckets", "SlowDown", "Please reduce your request rate.", http_status=503, attempts=3
        ),
        "aws_fault",
        "AWS throttled s3:ListBuckets in the function's run 3 times (SlowDown: Please reduce your request rate.)",
    ),
    "assume_role_reset": (
        failed_at(
            "assume_role",
            "ConnectionClosedError",
            "Connection was closed before we received a valid response",
        ),
        "aws_fault",
        "the connection was reset during sts:AssumeRole in the function's run at least once"
        " (ConnectionClosedError: Connection was closed before we received a valid response)",
    ),
    "listing_timed_out": (
        failed_at("list_buckets", "ReadTimeoutError", 'Read timeout on endpoint URL: "http://s3/"'),
        "aws_fault",
        "s3:ListBuckets timed out in the function's run at least once"
        ' (ReadTimeoutError: Read timeout on endpoint URL: "http://s3/")',
    ),
    "unhandled_client_error": (
        failed_at(
            "unhandled",
            "ClientError",
            "An error occurred (ThrottlingException) when calling the AssumeRole operation"
            " (reached max retries: 4): Rate exceeded",
        ),
        "aws_fault",
        "AWS throttled sts:AssumeRole in the function's run 5 times (ThrottlingException: Rate exceeded)",
    ),
    "assume_role_denied": (
        failed_at("assume_role", "AccessDenied", "not authorized", http_status=403, attempts=1),
        "assume_denied",
        "assume_role: AccessDenied: not authorized",
    ),
    "listing_denied": (
        failed_at("list_buckets", "AccessDenied", "Access Denied", http_status=403, attempts=1),
        "listing_denied",
        "list_buckets: AccessDenied: Access Denied",
    ),
    "unhandled_denial": (
        failed_at(
            "unhandled",
            "ClientError",
            "An error occurred (AccessDenied) when calling the ListBuckets operation: no",
        ),
        "function_error",
        "unhandled: ClientError: An error occurred (AccessDenied) when calling the ListBuckets operation: no",
    ),
    "unknown_code_as_before": (
        failed_at("assume_role", "RegionDisabledException", "STS is not activated", http_status=403),
        "assume_denied",
        "assume_role: RegionDisabledException: STS is not activated",
    ),
}


@pytest.mark.parametrize("raw,cause,detail", REPORTED.values(), ids=REPORTED.keys())
def test_the_error_a_run_reports_is_judged_the_labs_or_awss(raw: str, cause: str, detail: str) -> None:
    result = judge_answer(raw, EXPECTED)
    assert (result.ok, result.cause, result.detail) == (False, cause, detail)
    assert (result.fault is not None) == (cause == "aws_fault")
    assert "denied" not in result.detail.lower() or cause != "aws_fault"


def test_the_function_reports_its_own_retries() -> None:
    assert judge_answer(answer(retries=2), EXPECTED).retries == 2
    assert (
        judge_answer(failed_at("assume_role", "Throttling", http_status=400, attempts=3), EXPECTED).retries
        == 2
    )


LAMBDA_FUNCTION_ERRORS = {
    "throttled": (
        {
            "errorType": "ClientError",
            "errorMessage": "An error occurred (Throttling) when calling the AssumeRole operation"
            " (reached max retries: 2): Rate exceeded",
        },
        "aws_fault",
    ),
    "timed_out_inside": ({"errorType": "ReadTimeoutError", "errorMessage": "Read timeout"}, "aws_fault"),
    "its_own_bug": ({"errorType": "KeyError", "errorMessage": "'Buckets'"}, "function_error"),
    "lambda_timeout": ({"errorMessage": "Task timed out after 15.02 seconds"}, "function_error"),
}


@pytest.mark.parametrize("payload,cause", LAMBDA_FUNCTION_ERRORS.values(), ids=LAMBDA_FUNCTION_ERRORS.keys())
def test_an_error_that_lambda_reports_for_the_function_is_judged_the_same_way(
    payload: dict[str, str], cause: str
) -> None:
    assert function_error(json.dumps(payload).encode(), 10).cause == cause


# ------------------------------------------------------------------------------------- runs again


class NoWait:
    """A clock that only waits move (the lab's budget is counted, no real time passes)."""

    def __init__(self) -> None:
        self.now, self.waits = 0.0, 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.waits += 1


def budget(retries: int = 10) -> LabRetries:
    clock = NoWait()
    return LabRetries(retries, 60, clock=clock, sleep=clock.sleep)


def runs_answering(*answers: str) -> Any:
    left = list(answers)

    def run() -> InvokeResult:
        run.count += 1  # type: ignore[attr-defined]
        return judge_answer(left.pop(0), EXPECTED)

    run.count = 0  # type: ignore[attr-defined]
    return run


THROTTLED = failed_at("assume_role", "Throttling", http_status=400, attempts=3)


def test_a_run_that_aws_failed_is_run_again_within_the_labs_budget() -> None:
    run, counts = runs_answering(THROTTLED, THROTTLED, answer()), RetryCounts()
    with lab_budget(budget()):
        result = run_with_retries(run, counts)
    assert (result.ok, run.count) == (True, 3)
    assert counts.snapshot() == {"run": 2, "function": 4}


def test_a_run_that_aws_fails_past_the_budget_is_an_aws_fault_not_a_finding() -> None:
    run = runs_answering(THROTTLED, THROTTLED, THROTTLED, answer())
    with lab_budget(budget(retries=2)), pytest.raises(AwsFault) as raised:
        run_with_retries(run, RetryCounts())
    assert str(raised.value) == (
        "AWS throttled sts:AssumeRole in the function's run 9 times, over 3 runs (Throttling: Rate exceeded)"
    )
    assert run.count == 3


def test_a_denied_run_is_not_run_again() -> None:
    run = runs_answering(failed_at("list_buckets", "AccessDenied", http_status=403), answer())
    with lab_budget(budget()):
        result = run_with_retries(run, RetryCounts())
    assert (result.cause, run.count) == ("listing_denied", 1)


# ------------------------------------------------------------------------------------- the Invoke API


ORIGIN = AccountAccess("111111111111")


def lambda_sessions() -> AccountSessions:
    # Nothing listens there: every answer below is the Stubber's, standing in for AWS Lambda.
    endpoint = "http://127.0.0.1:9"
    return AccountSessions(client_settings(AwsSettings(endpoint_url=endpoint), "us-east-1", 1, endpoint))


def stubbed_lambda(sessions: AccountSessions) -> Stubber:
    # The client invoke_lambda asks for: the same view, so the Stubber answers its calls.
    client = sessions.client(ORIGIN, "lambda", read_timeout=EXPECTED.function.timeout_seconds + 10)
    return Stubber(client)


def invoked(payload: bytes) -> dict[str, Any]:
    return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(payload), len(payload))}


def test_invoke_is_retried_on_429_and_5xx_within_the_labs_budget() -> None:
    sessions = lambda_sessions()
    stubber = stubbed_lambda(sessions)
    stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    stubber.add_client_error("invoke", "ServiceException", "Internal error", 500)
    stubber.add_client_error("invoke", "ServiceUnavailableException", "Unavailable", 503)
    stubber.add_response("invoke", invoked(answer().encode()))
    with stubber, lab_budget(budget()):
        result = invoke_lambda(sessions, ORIGIN, EXPECTED)
    stubber.assert_no_pending_responses()
    assert (result.ok, result.cause) == (True, "ok")
    assert sessions.retries.snapshot() == {"lab": 3}


def test_invoke_that_aws_keeps_throttling_is_an_aws_fault_naming_lambda_invoke() -> None:
    sessions = lambda_sessions()
    stubber = stubbed_lambda(sessions)
    for _ in range(3):
        stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
    with stubber, lab_budget(budget(retries=2)), pytest.raises(AwsFault) as raised:
        invoke_lambda(sessions, ORIGIN, EXPECTED)
    assert str(raised.value) == (
        "AWS throttled lambda:Invoke in account 111111111111 3 times (TooManyRequestsException: Rate exceeded)"
    )


def test_a_function_error_of_awss_fault_through_invoke_is_run_again() -> None:
    sessions = lambda_sessions()
    stubber = stubbed_lambda(sessions)
    unhandled = {
        "errorType": "ClientError",
        "errorMessage": "An error occurred (Throttling) when calling the AssumeRole operation"
        " (reached max retries: 2): Rate exceeded",
    }
    stubber.add_response("invoke", {**invoked(json.dumps(unhandled).encode()), "FunctionError": "Unhandled"})
    stubber.add_response("invoke", invoked(answer().encode()))
    with stubber, lab_budget(budget()):
        result = run_with_retries(lambda: invoke_lambda(sessions, ORIGIN, EXPECTED), sessions.retries)
    assert (result.ok, sessions.retries.snapshot()) == (True, {"run": 1, "function": 2})


def test_invoke_refused_for_the_functions_own_reserved_concurrency_is_the_labs_not_retried() -> None:
    sessions = lambda_sessions()
    stubber = stubbed_lambda(sessions)
    reason = {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User"}
    stubber.add_client_error(
        "invoke", "TooManyRequestsException", "Rate Exceeded.", 429, modeled_fields=reason
    )
    with stubber, lab_budget(budget()):
        result = invoke_lambda(sessions, ORIGIN, EXPECTED)
    assert (result.ok, result.cause) == (False, "function_throttled")
    assert sessions.retries.snapshot() == {}


# The guide's function returns `str(s3list['Buckets'])`: Python's text of the listing, sent as JSON.
def guide_answer(*names: str) -> str:
    buckets = [
        {"Name": name, "CreationDate": datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)}
        for name in names
    ]
    return json.dumps(str(buckets))


def test_the_guides_own_answer_passes_on_the_marker_when_students_build() -> None:
    marker = EXPECTED.marker_bucket.name
    result = judge_answer(guide_answer("class-photos", marker), EXPECTED, guide_answers=True)
    assert (result.ok, result.cause) == (True, "ok")
    assert result.detail == f"listed 2 buckets of {EXPECTED.destination_account}, marker included"


def test_the_guides_answer_without_the_marker_is_not_the_destinations_listing() -> None:
    result = judge_answer(guide_answer("origin-own-bucket"), EXPECTED, guide_answers=True)
    assert (result.ok, result.cause) == (False, "marker_missing")


def test_a_text_answer_is_no_proof_when_the_project_builds_the_lab() -> None:
    result = judge_answer(guide_answer(EXPECTED.marker_bucket.name), EXPECTED)
    assert (result.ok, result.cause) == (False, "bad_answer")


def test_the_marker_named_outside_a_bucket_name_is_no_listing() -> None:
    text = json.dumps(f"could not list; expected {EXPECTED.marker_bucket.name}")
    assert judge_answer(text, EXPECTED, guide_answers=True).cause == "marker_missing"
