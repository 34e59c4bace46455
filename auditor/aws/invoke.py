"""Run the lab's function and judge its answer against the proof of lab.md.

Two ways to run it: the Lambda Invoke API (real AWS), or the local Lambda stand-in (for emulators
that cannot run code; auditor/aws/local_lambda/) that runs the *deployed* code in a process of its own
with the execution role's credentials and `AWS_EXECUTION_ENV` set as Lambda sets it.

A run that failed for AWS's fault (the error its run reports, judged by auditor/domain/faults.py) is no
finding: it is run again within the lab's budget (`run_with_retries`), and past it the lab is `error`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from auditor.aws.accounts import AccountSessions
from auditor.aws.emulator import FUNCTION_CODE_PATH
from auditor.aws.local_lambda import LocalLambda, base_environment
from auditor.common.errors import is_not_found
from auditor.common.lru import LruCache
from auditor.domain.actual import ActualFunction
from auditor.domain.config import AccountAccess
from auditor.domain.faults import (
    AwsFault,
    Failure,
    RetryCounts,
    Tally,
    current_budget,
    describe,
    failure_of,
    is_labs_own_limit,
    reported_failure,
)
from auditor.domain.model import AwsCall, InvokeResult
from auditor.domain.package import code_sha256, packaged
from auditor.domain.spec import ExpectedLab

MAX_ANSWER_BYTES = 256 * 1024
_DETAIL_LIMIT = 300
IN_THE_RUN = " in the function's run"
# A run is a process and three requests, each already retried by the function's botocore: at most this
# many runs an audit, within the lab's budget.
MAX_RUNS = 5
# The calls of the project's function, by the stage it reports.
_STAGE_CALLS = {"assume_role": "sts:AssumeRole", "list_buckets": "s3:ListBuckets"}


# ------------------------------------------------------------------------------------- judging (pure)


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "…"


def _results(duration_ms: int) -> Callable[..., InvokeResult]:
    """How a judge words its result: the detail clipped, the run's duration."""

    def result(ok: bool, cause: str, detail: str, answer: Any = None, **more: Any) -> InvokeResult:
        return InvokeResult(ok, cause, _clip(detail), duration_ms, answer, **more)

    return result


def judge_answer(
    raw: bytes | str, expected: ExpectedLab, duration_ms: int = 0, *, guide_answers: bool = False
) -> InvokeResult:
    """Pass only on the proof: the destination account answered and its marker bucket is listed.

    With `guide_answers` (students build the lab), the answer may also be the guide's own: the listing
    as text (`str(s3list['Buckets'])`); the marker bucket's name in it is the proof, since that bucket
    exists only in the destination account (bucket names are global)."""
    result = _results(duration_ms)
    if len(raw) > MAX_ANSWER_BYTES:
        return result(False, "bad_answer", f"the answer is {len(raw)} bytes, more than {MAX_ANSWER_BYTES}")
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deep enough to exhaust the stack
        return result(False, "bad_answer", "the function's answer is not JSON")
    if guide_answers and isinstance(answer, str):
        return _judge_text_listing(answer, expected, result)
    if not isinstance(answer, dict):
        return result(False, "bad_answer", f"the function answered a {type(answer).__name__}, not an object")
    if answer.get("ok") is False:
        return _judge_failure(answer, result)
    return _judge_listing(answer, expected, result)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _judge_failure(answer: dict[str, Any], result: Any) -> InvokeResult:
    stage, code, message = (
        str(answer.get("stage", "")),
        str(answer.get("error_code", "")),
        str(answer.get("error", "")),
    )
    failure = reported_failure(
        code,
        message,
        call=_STAGE_CALLS.get(stage, ""),
        status=_count(answer.get("http_status")),
        attempts=_count(answer.get("attempts")),
    )
    if failure.kind is not None:
        return _aws_fault(failure, result)
    # The lab's: a denial, something missing, the function's own error (as before: by its stage).
    cause = {"assume_role": "assume_denied", "list_buckets": "listing_denied"}.get(stage, "function_error")
    retries = (_count(answer.get("attempts")) or 1) - 1
    return result(False, cause, ": ".join(part for part in (stage, code, message) if part), retries=retries)


def _aws_fault(failure: Failure, result: Any) -> InvokeResult:
    """A run that failed for AWS's fault: no finding; the audit runs it again, or the lab is `error`."""
    tally = Tally()
    tally.add(failure, failure.attempts)
    return result(
        False, "aws_fault", tally.sentence(IN_THE_RUN), fault=failure, retries=(failure.attempts or 1) - 1
    )


def _judge_text_listing(answer: str, expected: ExpectedLab, result: Any) -> InvokeResult:
    """The guide's answer: the bucket list as Python prints it (`[{'Name': 'a', ...}, ...]`)."""
    names = re.findall(r"""['"]Name['"]\s*:\s*['"]([^'"]+)['"]""", answer)
    summary = {"destination_account": expected.destination_account, "buckets": len(names)}
    if expected.marker_bucket.name not in names:
        return result(
            False,
            "marker_missing",
            f"the listing lacks the marker bucket {expected.marker_bucket.name}",
            summary,
        )
    listed = f"{len(names)} bucket{'s' if len(names) != 1 else ''}"
    return result(True, "ok", f"listed {listed} of {expected.destination_account}, marker included", summary)


def _judge_listing(answer: dict[str, Any], expected: ExpectedLab, result: Any) -> InvokeResult:
    account = answer.get("destination_account")
    buckets = answer.get("buckets")
    if not isinstance(buckets, list) or not all(isinstance(b, str) for b in buckets):
        return result(False, "bad_answer", "the answer has no list of bucket names")
    summary = {"destination_account": str(account), "buckets": len(buckets)}
    if account != expected.destination_account:
        return result(
            False,
            "wrong_account",
            f"listed the buckets of account {account}, not of the destination {expected.destination_account}",
            summary,
        )
    if expected.marker_bucket.name not in buckets:
        return result(
            False,
            "marker_missing",
            f"the listing lacks the marker bucket {expected.marker_bucket.name}",
            summary,
        )
    listed = f"{len(buckets)} bucket{'s' if len(buckets) != 1 else ''}"
    return result(
        True,
        "ok",
        f"listed {listed} of {account}, marker included",
        summary,
        retries=_count(answer.get("retries")) or 0,
    )


# ------------------------------------------------------------------------------------- AWS's faults


def run_with_retries(
    run: Callable[[], InvokeResult], counts: RetryCounts, max_runs: int = MAX_RUNS
) -> InvokeResult:
    """The function's run, again while it fails for AWS's fault and the lab's budget allows (its
    function only reads), `max_runs` at most; past that, an AwsFault: "AWS throttled sts:AssumeRole in
    the function's run 6 times, over 2 runs (Throttling: Rate exceeded)". Any other outcome is the
    run's result."""
    tally = Tally()
    while True:
        result = run()
        counts.add("function", result.retries)
        if result.fault is None or result.fault.kind is None:
            return result
        tally.add(result.fault, result.fault.attempts)
        tally.runs += 1
        budget = current_budget()
        if tally.runs >= max_runs or budget is None or not budget.wait_for_retry(result.fault, tally.runs):
            raise AwsFault(tally.sentence(IN_THE_RUN))
        counts.add("run")


def function_error(payload: bytes, duration_ms: int) -> InvokeResult:
    """What Lambda answers for a function that raised: its own error, or AWS's fault that it met (an
    unhandled ClientError in botocore's words, or a botocore exception, by its class name)."""
    text = payload.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except (ValueError, RecursionError):
        answer = None
    if isinstance(answer, dict):
        failure = reported_failure(str(answer.get("errorType", "")), str(answer.get("errorMessage", "")))
        if failure.kind is not None:
            return _aws_fault(failure, _results(duration_ms))
    return InvokeResult(False, "function_error", _clip(text), duration_ms)


# ------------------------------------------------------------------------------------- Invoke API


def invoke_lambda(
    sessions: AccountSessions, origin: AccountAccess, expected: ExpectedLab, *, guide_answers: bool = False
) -> InvokeResult:
    # Retried as any call (the lab's function only reads, so running it twice does no harm); the read
    # timeout outlasts the function's own, so that a slow run is not taken for AWS's silence.
    client = sessions.client(origin, "lambda", read_timeout=expected.function.timeout_seconds + 10)
    started = time.monotonic()
    try:
        response = client.invoke(FunctionName=expected.function.name, InvocationType="RequestResponse")
    except ClientError as error:
        if is_not_found(error):
            return InvokeResult(False, "function_missing", "the function does not exist")
        if is_labs_own_limit(error):
            return InvokeResult(
                False,
                "function_throttled",
                "Lambda refused to run the function: its reserved concurrency is used up"
                " (ReservedFunctionConcurrentInvocationLimitExceeded)",
            )
        raise
    payload = response["Payload"].read(MAX_ANSWER_BYTES + 1)
    duration = int((time.monotonic() - started) * 1000)
    if response.get("FunctionError"):
        return function_error(payload, duration)
    return judge_answer(payload, expected, duration, guide_answers=guide_answers)


# ------------------------------------------------------------------------------------- local stand-in


class CodeUnavailable(Exception):
    pass


def deployed_code(function: ActualFunction, endpoint_url: str | None = None) -> bytes:
    """The deployed zip: the packaged lambda_src when the digests say so, else fetched, and kept only
    when its SHA-256 is the deployed CodeSha256.

    Emulators give no downloadable location (theirs points at a real AWS host that never served the
    code): a zip whose digest equals the deployed CodeSha256 *is* the deployed code, so the packaged
    lambda_src is used when the digests match, without a download; another (a student's own) comes
    from the embedded emulator, which serves the code moto keeps (auditor/aws/emulator.py).
    """
    archive, digest = packaged()
    if digest == function.code_sha256:
        return archive
    with _CODE_LOCK:
        known = _CODES.get(function.code_sha256)
    if known is not None:
        return known
    for url in _code_urls(function, endpoint_url):
        downloaded = _download(url)
        if downloaded is not None and code_sha256(downloaded) == function.code_sha256:
            with _CODE_LOCK:
                _CODES.put(function.code_sha256, downloaded)
            return downloaded
    raise CodeUnavailable(
        f"cannot get the deployed code (CodeSha256 {function.code_sha256[:12]}… is not the packaged"
        " lambda_src, and the code could not be downloaded)"
    )


# Deployed code by its SHA-256: content-addressed, so an entry can never be another function's code.
_CODES: LruCache[str, bytes] = LruCache(64)
_CODE_LOCK = threading.Lock()
_MAX_CODE_BYTES = 50 * 1024 * 1024  # Lambda's own limit for a zip uploaded directly


def _code_urls(function: ActualFunction, endpoint_url: str | None) -> list[str]:
    urls = []
    if function.code_location.startswith(("http://", "https://")):
        urls.append(function.code_location)
    parts = function.arn.split(":")  # arn:aws:lambda:REGION:ACCOUNT:function:NAME
    if endpoint_url and len(parts) >= 7:
        query = urllib.parse.urlencode({"account": parts[4], "region": parts[3], "function": parts[6]})
        urls.append(f"{endpoint_url.rstrip('/')}{FUNCTION_CODE_PATH}?{query}")
    return urls


def _download(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read(_MAX_CODE_BYTES + 1)
    except (OSError, ValueError):
        return None
    return body if len(body) <= _MAX_CODE_BYTES else None


def invoke_local(
    local_lambda: LocalLambda,
    sessions: AccountSessions,
    origin: AccountAccess,
    expected: ExpectedLab,
    function: ActualFunction,
    endpoint_url: str | None,
    *,
    guide_answers: bool = False,
) -> InvokeResult:
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    try:
        archive = deployed_code(function, endpoint_url)
    except CodeUnavailable as error:
        return InvokeResult(False, "code_unavailable", str(error))
    try:
        environment = _execution_environment(sessions, origin, function, expected, endpoint_url)
    except ClientError as error:
        if failure_of(error).kind is not None:  # AWS's fault, not the role's: the lab is `error`
            raise AwsFault(describe(error) or str(error)) from error
        return InvokeResult(
            False, "execution_role", f"cannot assume the execution role {function.role}: {error}"
        )
    return run_deployed(local_lambda, archive, function, environment, expected, guide_answers=guide_answers)


def _execution_environment(
    sessions: AccountSessions,
    origin: AccountAccess,
    function: ActualFunction,
    expected: ExpectedLab,
    endpoint_url: str | None,
) -> dict[str, str]:
    credentials = sessions.client(origin, "sts").assume_role(
        RoleArn=function.role, RoleSessionName=function.name[:64], DurationSeconds=900
    )["Credentials"]
    version = function.runtime.removeprefix("python") or "3.12"
    environment = base_environment()
    environment.update(function.environment)
    environment.update(
        {
            # botocore puts exec-env/<this> into the User-Agent, which the lab's condition checks.
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_REGION": expected.region,
            "AWS_DEFAULT_REGION": expected.region,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }
    )
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    return environment


def run_deployed(
    local_lambda: LocalLambda,
    archive: bytes,
    function: ActualFunction,
    environment: dict[str, str],
    expected: ExpectedLab,
    *,
    guide_answers: bool = False,
) -> InvokeResult:
    """Run the handler in the local Lambda stand-in, with exactly `environment`, and judge its answer."""
    timeout = max(1, function.timeout or expected.function.timeout_seconds)
    started = time.monotonic()
    completed = local_lambda.run(archive, function.handler, environment, timeout)
    if completed.returncode is None:
        return InvokeResult(False, "timeout", f"no answer within {function.timeout} s")
    duration = int((time.monotonic() - started) * 1000)
    answer, calls = completed.answer, _calls_of(completed.calls)
    if completed.returncode != 0 or answer is None:
        tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return InvokeResult(False, "function_error", _clip(tail[0]), duration, calls=calls)
    return dataclasses.replace(
        judge_answer(answer, expected, duration, guide_answers=guide_answers), calls=calls
    )


def _calls_of(recorded: tuple[dict[str, str], ...]) -> tuple[AwsCall, ...]:
    return tuple(
        AwsCall(call.get("service", ""), call.get("operation", ""), call.get("role_arn"), call.get("error"))
        for call in recorded
    )
