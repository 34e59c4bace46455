"""One classification of AWS errors (auditor/domain/faults.py): a denial, something missing and anything unknown
are the lab's; throttling, 5xx, timeouts and resets are AWS's, retried within the lab's budget and, past
it, told in a sentence that names the call and the fault, never "denied"."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from auditor.app.fleet import describe_fault
from auditor.domain.faults import (
    AwsFault,
    Failure,
    FaultKind,
    LabRetries,
    RetryCounts,
    Tally,
    call_within_budget,
    classify,
    describe,
    failure_of,
    is_denial,
    lab_budget,
    reported_failure,
)

# interface.md, "A fault is never drift"
INTERFACE_THROTTLING = (
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
)
INTERFACE_DENIALS = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")
LABS_OWN = (
    "NoSuchEntity",
    "ResourceNotFoundException",
    "NoSuchBucket",
    "ValidationError",
    "InvalidClientTokenId",
)


def client_error(
    code: str, status: int, operation: str = "GetRole", retries: int | None = None
) -> ClientError:
    metadata: dict[str, Any] = {"HTTPStatusCode": status}
    if retries is not None:
        metadata["RetryAttempts"] = retries
    response: Any = {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": metadata}
    return ClientError(response, operation)


# ------------------------------------------------------------------------------------- codes and statuses


@pytest.mark.parametrize("code", INTERFACE_THROTTLING)
def test_each_throttling_code_of_the_interface_is_awss_throttling(code: str) -> None:
    assert classify(code, 400) is FaultKind.THROTTLED
    assert classify(code) is FaultKind.THROTTLED  # a code alone, as a function's message names it


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_each_server_status_of_the_interface_is_awss_fault_whatever_the_code(status: int) -> None:
    assert classify("SomethingWentWrong", status) is FaultKind.SERVER_ERROR
    assert classify(str(status)) is FaultKind.SERVER_ERROR  # botocore's code for an answer without body


@pytest.mark.parametrize(
    "code", ["InternalFailure", "InternalError", "ServiceUnavailable", "ServiceException"]
)
def test_a_server_errors_code_without_its_status_is_awss_fault(code: str) -> None:
    assert classify(code) is FaultKind.SERVER_ERROR


def test_429_without_a_modeled_code_is_throttling() -> None:
    assert classify("429") is FaultKind.THROTTLED
    assert classify("SomethingElse", 429) is FaultKind.THROTTLED


def test_a_request_timeout_answered_by_aws_is_a_timeout() -> None:
    assert classify("RequestTimeout", 400) is FaultKind.TIMEOUT


@pytest.mark.parametrize("code", INTERFACE_DENIALS)
@pytest.mark.parametrize("status", [400, 403, 429, 500, 503])
def test_a_denial_is_never_awss_fault_whatever_the_status(code: str, status: int) -> None:
    assert is_denial(code)
    assert classify(code, status) is None


@pytest.mark.parametrize("code", LABS_OWN)
def test_something_missing_or_unknown_stays_the_labs(code: str) -> None:
    assert classify(code, 400) is None
    assert classify(code, 404) is None


# ------------------------------------------------------------------------------------- no answer at all

URL = "https://sts.amazonaws.com/"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ReadTimeoutError(endpoint_url=URL), FaultKind.TIMEOUT),
        (ConnectTimeoutError(endpoint_url=URL), FaultKind.TIMEOUT),
        (ConnectionClosedError(endpoint_url=URL), FaultKind.RESET),
        (ConnectionResetError(104, "Connection reset by peer"), FaultKind.RESET),
        (EndpointConnectionError(endpoint_url=URL), FaultKind.UNREACHABLE),
        (NoCredentialsError(), None),  # the auditor's own setup, not AWS's answer
        (RuntimeError("boom"), None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_connection_errors_are_awss_faults_and_other_exceptions_are_not(
    error: BaseException, kind: FaultKind | None
) -> None:
    assert classify(exception=error) is kind
    assert failure_of(error, "sts:AssumeRole").kind is kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ReadTimeoutError", FaultKind.TIMEOUT),
        ("ConnectTimeoutError", FaultKind.TIMEOUT),
        ("ConnectionClosedError", FaultKind.RESET),
        ("EndpointConnectionError", FaultKind.UNREACHABLE),
        ("ConnectionResetError", FaultKind.RESET),
        ("NoCredentialsError", None),
        ("ParamValidationError", None),
        ("RuntimeError", None),
        ("KeyError", None),
    ],
)
def test_a_run_that_reports_an_exception_by_its_class_name_is_judged_by_that_class(
    name: str, kind: FaultKind | None
) -> None:
    assert reported_failure(name, "whatever it said").kind is kind


# ------------------------------------------------------------------------------------- what a run reports


def test_an_unhandled_client_error_in_botocores_words_names_its_code_call_and_attempts() -> None:
    message = "An error occurred (Throttling) when calling the AssumeRole operation (reached max retries: 2): Rate exceeded"
    failure = reported_failure("ClientError", message)
    assert failure == Failure("sts:AssumeRole", "Throttling", "Rate exceeded", None, FaultKind.THROTTLED, 3)


def test_an_unhandled_denial_in_botocores_words_stays_the_labs() -> None:
    message = "An error occurred (AccessDenied) when calling the ListBuckets operation: Access Denied"
    failure = reported_failure("ClientError", message)
    assert (failure.call, failure.code, failure.kind) == ("s3:ListBuckets", "AccessDenied", None)


def test_a_reported_code_with_its_status_is_judged_by_both() -> None:
    assert (
        reported_failure("ServiceUnavailable", "Service Unavailable", status=503).kind
        is FaultKind.SERVER_ERROR
    )
    assert reported_failure("AccessDenied", "no", status=403).kind is None


def test_a_client_error_tells_its_attempts_from_botocores_metadata() -> None:
    failure = failure_of(client_error("Throttling", 400, retries=4), "iam:GetRole")
    assert (failure.kind, failure.attempts, failure.call) == (FaultKind.THROTTLED, 5, "iam:GetRole")


# ------------------------------------------------------------------------------------- sentences


def test_the_sentence_names_the_call_the_fault_and_how_often() -> None:
    tally = Tally()
    tally.add(Failure("sts:AssumeRole", "Throttling", "Rate exceeded", 400, FaultKind.THROTTLED), 4)
    assert tally.sentence(" in the function's run") == (
        "AWS throttled sts:AssumeRole in the function's run 4 times (Throttling: Rate exceeded)"
    )


def test_a_server_error_is_told_by_its_status() -> None:
    tally = Tally()
    tally.add(
        Failure("s3:ListBuckets", "ServiceUnavailable", "Service Unavailable", 503, FaultKind.SERVER_ERROR), 3
    )
    tally.runs = 2
    assert tally.sentence(" in the function's run") == (
        "AWS answered 503 to s3:ListBuckets in the function's run 3 times, over 2 runs"
        " (ServiceUnavailable: Service Unavailable)"
    )


def test_faults_of_several_kinds_are_each_told_and_unknown_attempts_say_at_least() -> None:
    tally = Tally()
    tally.add(Failure("iam:GetRole", "Throttling", "Rate exceeded", 400, FaultKind.THROTTLED), 2)
    tally.add(Failure("iam:GetRole", "ConnectionClosedError", "closed", None, FaultKind.RESET), None)
    sentence = tally.sentence(" in account 222222222222")
    assert sentence == (
        "in account 222222222222: AWS throttled iam:GetRole twice, the connection was reset during"
        " iam:GetRole at least once (last: ConnectionClosedError: closed)"
    )


@pytest.mark.parametrize("code", [*INTERFACE_THROTTLING, "InternalFailure", "503"])
def test_a_fault_is_never_told_as_a_denial(code: str) -> None:
    error = client_error(code, 503 if code.isdigit() else 400, "AssumeRole", retries=4)
    text = describe_fault(error)
    assert "denied" not in text.lower()
    assert "AssumeRole" in text and code in text and "5 times" in text, text


def test_a_denial_keeps_its_own_words() -> None:
    error = client_error("AccessDenied", 403, "GetRole")
    assert describe(error) is None
    assert describe_fault(error) == "GetRole: AccessDenied: Rate exceeded"


# ------------------------------------------------------------------------------------- the lab's budget


class Clock:
    """A clock that only the waits move: no real time passes in these tests."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(errors: list[BaseException], answer: str = "done") -> Any:
    """A call that raises each of `errors` in turn, then answers; it counts its calls."""

    def call() -> str:
        call.calls += 1  # type: ignore[attr-defined]
        if errors:
            raise errors.pop(0)
        return answer

    call.calls = 0  # type: ignore[attr-defined]
    return call


def test_awss_faults_are_retried_within_the_labs_budget_and_counted() -> None:
    clock, counts = Clock(), RetryCounts()
    call = failing([client_error("Throttling", 400), ConnectionClosedError(endpoint_url=URL)])
    with lab_budget(LabRetries(5, 60, clock=clock, sleep=clock.sleep)):
        assert call_within_budget(call, "iam:GetRole", counts=counts) == "done"
    assert call.calls == 3
    assert counts.snapshot() == {"lab": 2}
    assert len(clock.waits) == 2 and all(0 <= wait <= 5 for wait in clock.waits)


def test_outside_a_labs_budget_a_fault_is_raised_as_botocore_raised_it() -> None:
    error = client_error("Throttling", 400)
    call = failing([error])
    with pytest.raises(ClientError) as raised:
        call_within_budget(call, "iam:GetRole")
    assert raised.value is error and call.calls == 1


def test_a_denial_is_not_retried_and_stays_a_client_error() -> None:
    clock = Clock()
    call = failing([client_error("AccessDenied", 403)])
    with lab_budget(LabRetries(5, 60, clock=clock, sleep=clock.sleep)), pytest.raises(ClientError):
        call_within_budget(call, "iam:GetRole")
    assert call.calls == 1 and clock.waits == []


def test_past_the_budgets_count_the_fault_is_an_aws_fault_naming_the_call() -> None:
    clock = Clock()
    call = failing([client_error("Throttling", 400, retries=4) for _ in range(10)])
    with lab_budget(LabRetries(3, 60, clock=clock, sleep=clock.sleep)), pytest.raises(AwsFault) as raised:
        call_within_budget(call, "iam:GetRole", where=" in account 222222222222")
    assert call.calls == 4  # the first call and 3 retries
    assert str(raised.value) == (
        "AWS throttled iam:GetRole in account 222222222222 4 times (Throttling: Rate exceeded)"
    )


def test_past_the_budgets_time_no_retry_is_made() -> None:
    clock = Clock()
    budget = LabRetries(100, 10, clock=clock, sleep=clock.sleep)
    clock.now = 10.0  # the lab's time is up
    call = failing([client_error("InternalFailure", 500)])
    with lab_budget(budget), pytest.raises(AwsFault, match="AWS answered 500 to lambda:Invoke once"):
        call_within_budget(call, "lambda:Invoke")
    assert call.calls == 1 and clock.waits == []


def test_one_budget_is_shared_by_the_labs_calls() -> None:
    clock = Clock()
    with lab_budget(LabRetries(2, 60, clock=clock, sleep=clock.sleep)):
        assert call_within_budget(failing([client_error("Throttling", 400)]), "iam:GetRole") == "done"
        assert call_within_budget(failing([client_error("SlowDown", 503)]), "s3:HeadBucket") == "done"
        with pytest.raises(AwsFault):
            call_within_budget(failing([client_error("Throttling", 400)]), "iam:ListRolePolicies")
