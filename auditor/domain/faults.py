"""One classification of what AWS answers: a cause in the lab, or a fault of AWS's (interface.md, "A fault
is never drift").

A denial, something missing and the function's own error are the lab's: they may make it `broken`. A
call that AWS throttled or could not answer (throttling, HTTP 5xx, a timeout, a reset connection) is
AWS's fault: it is retried within the lab's budget, and if it still fails the lab is `error`, with a
sentence that names the call and the fault ("AWS throttled sts:AssumeRole in the function's run 4
times"), never `broken` and never "denied".

The classification is botocore's own, the checkers of its standard retry mode (throttling codes, modeled
retryable errors, transient statuses and connection errors), with interface.md's denial codes first
(a denial is never AWS's fault). One module, used wherever an AWS error is judged: the auditor's own
requests (every account's client, auditor/aws/accounts.py), the Invoke API call, the local execution
role's AssumeRole, and what the function's run reports (its error code and HTTP status, a botocore
exception's class name, or an unhandled ClientError's message in botocore's own words).

The lab's budget: botocore's attempts of each call first (`[aws] max_attempts`, with the retry quota
the accounts of a service share); past them, while the quota is empty or every attempt failed, a lab
has `LabRetries`: a bounded number of further retries, within a bounded time, each after botocore's
jittered exponential backoff. Every retry is counted (`RetryCounts`).
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import botocore.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.retries.standard import (
    ExponentialBackoff,
    ModeledRetryErrorDetector,
    RetryContext,
    RetryEventAdapter,
    ThrottlingErrorDetector,
    TransientRetryableChecker,
)

from auditor.common.errors import LabFault

T = TypeVar("T")

# ------------------------------------------------------------------------------------- classification


class FaultKind(StrEnum):
    """How AWS failed a call (the lab's causes have no kind)."""

    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    RESET = "reset"
    UNREACHABLE = "unreachable"


# interface.md's denials, and the other ways AWS services say "not allowed". Checked before anything
# else: a denial is the lab's, whatever its HTTP status.
DENIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "AuthorizationErrorException",
        "UnauthorizedAccess",
        "UnauthorizedException",
        "Forbidden",
        "ForbiddenException",
        "AllAccessDisabled",
        "403",
    }
)
# A request that took too long on AWS's side: botocore retries them as transient.
_TIMEOUT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})
# What services answer with a 5xx status. Only needed where the status is not known: an unhandled
# ClientError's message in a replaced function names the code alone.
_SERVER_ERROR_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "InternalServiceError",
        "InternalServiceException",
        "ServiceFailure",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)

# Throttling that the lab set itself, not AWS's load: Lambda refuses to run a function whose reserved
# concurrency (set to 0 to disable it) is used up.
_LABS_OWN_LIMITS = frozenset({"ReservedFunctionConcurrentInvocationLimitExceeded"})

_THROTTLING = ThrottlingErrorDetector(RetryEventAdapter())
_TRANSIENT = TransientRetryableChecker()
_MODELED = ModeledRetryErrorDetector()


def is_denial(code: str | None) -> bool:
    return bool(code) and code in DENIAL_CODES


def is_labs_own_limit(error: ClientError) -> bool:
    """A throttling by a limit of the lab's own (the function's reserved concurrency): the lab's cause."""
    return str(error.response.get("Reason", "")) in _LABS_OWN_LIMITS


class _StatusOnly:
    """What botocore's checkers read of an HTTP response: its status and headers."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


def retry_context(
    code: str | None = None,
    status: int | None = None,
    exception: BaseException | None = None,
    operation_model: Any = None,
    attempt: int = 1,
) -> RetryContext:
    """A failed attempt as botocore's retry checkers and backoff see it."""
    return RetryContext(
        attempt_number=attempt,
        operation_model=operation_model,
        parsed_response={"Error": {"Code": code}} if code else None,
        http_response=_StatusOnly(status) if status else None,
        caught_exception=exception,
    )


def classify(
    code: str | None = None,
    status: int | None = None,
    exception: BaseException | None = None,
    operation_model: Any = None,
) -> FaultKind | None:
    """AWS's fault, and which; None for the lab's (a denial, something missing, anything unknown)."""
    if is_denial(code):
        return None
    if exception is not None:
        return _kind_of_exception(exception)
    if status is None and code and code.isdigit():
        status = int(code)  # botocore's code for an error answer without a body (S3's HEAD): its status
    context = retry_context(code, status, operation_model=operation_model)
    if code in _TIMEOUT_CODES:
        return FaultKind.TIMEOUT
    if _THROTTLING.is_throttling_error_from_context(context):
        return FaultKind.THROTTLED
    if (
        _TRANSIENT.is_retryable(context)
        or _MODELED.detect_error_type(context) == _MODELED.TRANSIENT_ERROR
        or code in _SERVER_ERROR_CODES
    ):
        return FaultKind.SERVER_ERROR
    return None


def _kind_of_exception(exception: BaseException) -> FaultKind | None:
    if isinstance(exception, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return FaultKind.TIMEOUT
    if isinstance(exception, builtins.ConnectionError):  # ConnectionResetError, BrokenPipeError, ...
        return FaultKind.RESET
    if not _TRANSIENT.is_retryable(retry_context(exception=exception)):
        return None
    if isinstance(exception, HTTPClientError):  # the connection closed or broke in the exchange
        return FaultKind.RESET
    return FaultKind.UNREACHABLE  # botocore's ConnectionError: no connection was made


def exception_named(name: str) -> BaseException | None:
    """An instance (uninitialised: only its class matters) of the botocore or built-in exception class
    a run reported by name, for the classification; None for any other name."""
    for module, family in ((botocore.exceptions, BotoCoreError), (builtins, OSError)):
        found = getattr(module, name, None) if name else None
        if isinstance(found, type) and issubclass(found, family):
            exception_class: type[BaseException] = found
            return exception_class.__new__(exception_class)
    return None


# ------------------------------------------------------------------------------------- one failure


@dataclass(frozen=True)
class Failure:
    """One failed call: what it was, what AWS answered (or that it did not), and whose fault it is."""

    call: str  # "sts:AssumeRole"; an operation's name alone when the service is not known
    code: str  # the error code, or the exception's class name
    message: str = ""
    status: int | None = None
    kind: FaultKind | None = None  # AWS's fault; None: the lab's
    attempts: int | None = None  # how many attempts ended so, when known

    @property
    def label(self) -> str:
        """What AWS answered, in a word: its status for a server error (else its code)."""
        if self.kind is FaultKind.SERVER_ERROR and self.status:
            return str(self.status)
        return self.code

    @property
    def detail(self) -> str:
        message = " ".join(self.message.split())
        text = f"{self.code}: {message}" if message else self.code
        return text if len(text) <= 200 else text[:200] + "…"


def failure_of(error: BaseException, call: str = "", operation_model: Any = None) -> Failure:
    """A ClientError or botocore exception, classified."""
    if isinstance(error, ClientError):
        response = error.response
        details, metadata = response.get("Error", {}), response.get("ResponseMetadata", {})
        code, status = str(details.get("Code", "")), metadata.get("HTTPStatusCode")
        retried = metadata.get("RetryAttempts")
        kind = None if is_labs_own_limit(error) else classify(code, status, operation_model=operation_model)
        return Failure(
            call or getattr(error, "operation_name", "") or "",
            code,
            str(details.get("Message", "")),
            status,
            kind,
            retried + 1 if isinstance(retried, int) else None,
        )
    return Failure(call, type(error).__name__, str(error), kind=classify(exception=error))


# botocore's words for a ClientError, which an unhandled one in a function carries as its message.
_CLIENT_ERROR = re.compile(
    r"An error occurred \((?P<code>[^)]*)\) when calling the (?P<operation>\w+) operation"
    r"(?: \(reached max retries: (?P<retries>\d+)\))?: ?(?P<message>.*)",
    re.DOTALL,
)
# The services of the calls a lab's function makes, to name a call that a message names by operation.
_SERVICE_OF = {
    "AssumeRole": "sts",
    "GetCallerIdentity": "sts",
    "ListBuckets": "s3",
    "CreateLogGroup": "logs",
    "CreateLogStream": "logs",
    "PutLogEvents": "logs",
}


def call_named(operation: str) -> str:
    service = _SERVICE_OF.get(operation)
    return f"{service}:{operation}" if service else operation


def reported_failure(
    code: str,
    message: str,
    *,
    call: str = "",
    status: int | None = None,
    attempts: int | None = None,
) -> Failure:
    """A failure the function's run reported: its code and HTTP status (the project's function), a
    botocore exception's class name, or an unhandled ClientError in botocore's words."""
    said = _CLIENT_ERROR.search(message)
    if said is not None:
        code = said["code"]
        call = call or call_named(said["operation"])
        message = said["message"]
        if said["retries"] is not None and attempts is None:
            attempts = int(said["retries"]) + 1
    exception = exception_named(code) if said is None and status is None else None
    kind = classify(exception=exception) if exception is not None else classify(code, status)
    return Failure(call, code, message, status, kind, attempts)


# ------------------------------------------------------------------------------------- sentences


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _phrase(call: str, kind: FaultKind, label: str) -> str:
    call = call or "a call"
    match kind:
        case FaultKind.THROTTLED:
            return f"AWS throttled {call}"
        case FaultKind.SERVER_ERROR:
            return f"AWS answered {label} to {call}"
        case FaultKind.TIMEOUT:
            return f"{call} timed out"
        case FaultKind.RESET:
            return f"the connection was reset during {call}"
        case FaultKind.UNREACHABLE:
            return f"AWS could not be reached for {call}"


_Key = tuple[str, FaultKind, str]  # the call, the fault, what AWS answered


@dataclass
class Tally:
    """AWS's faults that one call (or the function's runs) met, attempt by attempt, and the last one."""

    counts: Counter[_Key] = field(default_factory=Counter)
    uncounted: set[_Key] = field(default_factory=set)  # a failure that did not say its attempts: "at least"
    last: Failure | None = None
    runs: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, failure: Failure, attempts: int | None = 1) -> None:
        assert failure.kind is not None, "only AWS's faults are tallied"
        key = (failure.call, failure.kind, failure.label)
        if attempts is None:
            self.uncounted.add(key)
        self.counts[key] += attempts or 1
        self.last = failure

    def _how_often(self, key: _Key) -> str:
        return ("at least " if key in self.uncounted else "") + times(self.counts[key])

    def sentence(self, where: str = "") -> str:
        """'AWS throttled sts:AssumeRole in the function's run 4 times (Throttling: Rate exceeded)'."""
        assert self.last is not None, "no fault to tell"
        runs = f", over {self.runs} runs" if self.runs > 1 else ""
        if len(self.counts) == 1:
            (key,) = self.counts
            return f"{_phrase(*key)}{where} {self._how_often(key)}{runs} ({self.last.detail})"
        clauses = ", ".join(f"{_phrase(*key)} {self._how_often(key)}" for key in self.counts)
        lead = f"{where.strip()}: " if where else ""
        return f"{lead}{clauses}{runs} (last: {self.last.detail})"


class AwsFault(LabFault):
    """A call that AWS throttled or could not answer, still failing past the lab's budget: the lab is
    `error`, and this sentence says which call and what fault."""


def describe(error: BaseException) -> str | None:
    """The sentence for an AWS fault (None for anything else): AwsFault's own, or a ClientError's or
    botocore exception's that no lab's budget retried (outside an audit)."""
    if isinstance(error, AwsFault):
        return str(error)
    if not isinstance(error, (ClientError, BotoCoreError)):
        return None
    failure = failure_of(error)
    if failure.kind is None:
        return None
    tally = Tally()
    tally.add(failure, failure.attempts)
    return tally.sentence()


# ------------------------------------------------------------------------------------- counting


class RetryCounts:
    """Retries made, by whom: "botocore" (its own attempts), "lab" (the lab's further retries of a
    call), "run" (the function's runs again) and "function" (the function's own botocore retries, as
    its runs report them). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, kind: str, count: int = 1) -> None:
        if count:
            with self._lock:
                self._counts[kind] = self._counts.get(kind, 0) + count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


# ------------------------------------------------------------------------------------- the lab's budget

# Past botocore's attempts: retries a lab may make in all, and for how long after its audit began.
LAB_RETRIES = 40
LAB_RETRY_SECONDS = 60.0
# The longest wait between two of them (botocore's own is 20 s: a lab's budget would go in three).
MAX_BACKOFF = 5.0


class LabRetries:
    """One lab's budget of retries beyond botocore's, shared by its threads: bounded in count and in
    time; each retry waits botocore's jittered exponential backoff (1 s a step for throttling, 50 ms
    otherwise, up to MAX_BACKOFF)."""

    def __init__(
        self,
        retries: int = LAB_RETRIES,
        seconds: float = LAB_RETRY_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.left = retries
        self.deadline = clock() + seconds
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._backoff = ExponentialBackoff(max_backoff=MAX_BACKOFF, throttling_detector=_THROTTLING)

    def wait_for_retry(self, failure: Failure, attempt: int, operation_model: Any = None) -> bool:
        """Whether `failure` may be retried; if so, after waiting the backoff of its `attempt`."""
        exception = exception_named(failure.code) if failure.status is None else None
        context = retry_context(failure.code, failure.status, exception, operation_model, max(1, attempt))
        delay = self._backoff.delay_amount(context)
        with self._lock:
            if self.left <= 0 or self._clock() + delay > self.deadline:
                return False
            self.left -= 1
        self._sleep(delay)
        return True


_BUDGET: contextvars.ContextVar[LabRetries | None] = contextvars.ContextVar("lab_retries", default=None)


@contextlib.contextmanager
def lab_budget(budget: LabRetries | None = None) -> Iterator[LabRetries]:
    """Calls made in this context (and on the request workers it hands work to) have `budget`."""
    budget = budget or LabRetries()
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def current_budget() -> LabRetries | None:
    return _BUDGET.get()


# ------------------------------------------------------------------------------------- one call


@dataclass
class _Call:
    """The attempts of one API call under way in this thread (botocore's and the lab's)."""

    name: str
    tally: Tally = field(default_factory=Tally)


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("aws_call", default=None)


def observe_attempt(
    attempts: int,
    response: Any = None,
    caught_exception: BaseException | None = None,
    operation: Any = None,
    **_: Any,
) -> None:
    """botocore's `needs-retry`, after every attempt: a failed one counts towards its call's tally."""
    call = _CALL.get()
    if call is None:
        return
    if caught_exception is not None:
        failure = failure_of(caught_exception, call.name)
    else:
        http, parsed = response if response is not None else (None, {})
        if http is None or http.status_code < 300:
            return
        code = str(parsed.get("Error", {}).get("Code", ""))
        message = str(parsed.get("Error", {}).get("Message", ""))
        kind = classify(code, http.status_code, operation_model=operation)
        failure = Failure(call.name, code, message, http.status_code, kind)
    if failure.kind is not None:
        call.tally.add(failure)


def call_within_budget(
    call: Callable[[], T],
    name: str,
    *,
    where: str = "",
    operation_model: Callable[[], Any] = lambda: None,
    counts: RetryCounts | None = None,
) -> T:
    """`call()`, with the lab's retries past botocore's for AWS's faults. Outside a lab's budget it is
    `call()` as such. A fault that outlasts the budget is an AwsFault whose sentence names `name`
    (service:Operation) `where` (" in account ...") and each fault it met. `operation_model()` (for
    botocore's modeled retryable errors) is asked only when a call fails."""
    budget = _BUDGET.get()
    if budget is None:
        return call()
    attempt = _Call(name)
    token = _CALL.set(attempt)
    try:
        while True:
            tallied = attempt.tally.total
            try:
                return call()
            except (ClientError, BotoCoreError) as error:
                model = operation_model()
                failure = failure_of(error, name, model)
                if failure.kind is None:
                    raise
                if attempt.tally.total == tallied:  # an answer that never reached botocore's retries
                    attempt.tally.add(failure)
                if not budget.wait_for_retry(failure, attempt.tally.total, model):
                    raise AwsFault(attempt.tally.sentence(where)) from error
                if counts is not None:
                    counts.add("lab")
    finally:
        _CALL.reset(token)
