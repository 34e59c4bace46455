"""Run the lab's function and judge its answer against the proof of lab.md.

Two ways to run it: the Lambda Invoke API (real AWS), or a local stand-in for the Lambda Python
runtime (for emulators that cannot run code) that runs the *deployed* code in a subprocess with the
execution role's credentials and `AWS_EXECUTION_ENV` set as Lambda sets it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from typing import Any

from botocore.exceptions import ClientError

from auditor.accounts import AccountSessions
from auditor.collect import ActualFunction, is_not_found
from auditor.config import AccountAccess
from auditor.model import InvokeResult
from auditor.spec import ExpectedLab
from provisioner.package import code_sha256, packaged

MAX_ANSWER_BYTES = 256 * 1024
_DETAIL_LIMIT = 300
_RESULT_MARKER = "\x1elab-auditor-result\x1e"


# ------------------------------------------------------------------------------------- judging (pure)


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "…"


def judge_answer(raw: bytes | str, expected: ExpectedLab, duration_ms: int = 0) -> InvokeResult:
    """Pass only on the proof: the destination account answered and its marker bucket is listed."""

    def result(ok: bool, cause: str, detail: str, answer: Any = None) -> InvokeResult:
        return InvokeResult(ok, cause, _clip(detail), duration_ms, answer)

    if len(raw) > MAX_ANSWER_BYTES:
        return result(False, "bad_answer", f"the answer is {len(raw)} bytes, more than {MAX_ANSWER_BYTES}")
    try:
        answer = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return result(False, "bad_answer", "the function's answer is not JSON")
    if not isinstance(answer, dict):
        return result(False, "bad_answer", f"the function answered a {type(answer).__name__}, not an object")
    if answer.get("ok") is False:
        return _judge_failure(answer, result)
    return _judge_listing(answer, expected, result)


def _judge_failure(answer: dict[str, Any], result: Any) -> InvokeResult:
    stage, code, message = (
        str(answer.get("stage", "")),
        str(answer.get("error_code", "")),
        str(answer.get("error", "")),
    )
    cause = {"assume_role": "assume_denied", "list_buckets": "listing_denied"}.get(stage, "function_error")
    return result(False, cause, f"{stage}: {code}: {message}".strip(": "))


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
    return result(True, "ok", f"listed {len(buckets)} buckets of {account}, marker included", summary)


# ------------------------------------------------------------------------------------- Invoke API


def invoke_lambda(sessions: AccountSessions, origin: AccountAccess, expected: ExpectedLab) -> InvokeResult:
    # A retried Invoke runs the function twice, so no automatic retries; and the read timeout must
    # outlast the function's own timeout.
    client = sessions.client(
        origin,
        "lambda",
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=expected.function.timeout_seconds + 10,
    )
    started = time.monotonic()
    try:
        response = client.invoke(FunctionName=expected.function.name, InvocationType="RequestResponse")
    except ClientError as error:
        if is_not_found(error):
            return InvokeResult(False, "function_missing", "the function does not exist")
        raise
    payload = response["Payload"].read(MAX_ANSWER_BYTES + 1)
    duration = int((time.monotonic() - started) * 1000)
    if response.get("FunctionError"):
        return InvokeResult(False, "function_error", _clip(payload.decode("utf-8", "replace")), duration)
    return judge_answer(payload, expected, duration)


# ------------------------------------------------------------------------------------- local stand-in


class CodeUnavailable(Exception):
    pass


def deployed_code(function: ActualFunction) -> bytes:
    """The deployed zip: fetched from Lambda's code location, or recognised by its digest.

    Emulators give no downloadable location. A zip whose SHA-256 equals the deployed CodeSha256 *is*
    the deployed code, so the packaged lambda_src is used only when the digests match.
    """
    if function.code_location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(function.code_location, timeout=10) as response:
                archive: bytes = response.read(50 * 1024 * 1024)
            if code_sha256(archive) == function.code_sha256:
                return archive
        except OSError:
            pass
    archive, digest = packaged()
    if digest == function.code_sha256:
        return archive
    raise CodeUnavailable(
        f"cannot get the deployed code (CodeSha256 {function.code_sha256[:12]}… is not the packaged lambda_src)"
    )


_RUNNER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
module_name, function_name = sys.argv[2].rsplit(".", 1)
try:
    answer = getattr(importlib.import_module(module_name), function_name)({}, None)
    text = json.dumps(answer)
except Exception as error:
    text = json.dumps({"ok": False, "stage": "unhandled", "error_code": type(error).__name__, "error": str(error)})
sys.stdout.write(sys.argv[3] + text)
"""


def invoke_local(
    sessions: AccountSessions,
    origin: AccountAccess,
    expected: ExpectedLab,
    function: ActualFunction,
    endpoint_url: str | None,
) -> InvokeResult:
    if not function.exists:
        return InvokeResult(False, "function_missing", "the function does not exist")
    try:
        archive = deployed_code(function)
    except CodeUnavailable as error:
        return InvokeResult(False, "code_unavailable", str(error))
    try:
        environment = _runtime_environment(sessions, origin, function, expected, endpoint_url)
    except ClientError as error:
        return InvokeResult(
            False, "execution_role", f"cannot assume the execution role {function.role}: {error}"
        )
    return _run_in_subprocess(archive, function, environment, expected)


def _runtime_environment(
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
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "AUDITOR_"))
    }
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


def _run_in_subprocess(
    archive: bytes, function: ActualFunction, environment: dict[str, str], expected: ExpectedLab
) -> InvokeResult:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lab-auditor-invoke-") as folder:
        zipfile.ZipFile(io.BytesIO(archive)).extractall(folder)
        try:
            completed = subprocess.run(
                [sys.executable, "-I", "-c", _RUNNER, folder, function.handler, _RESULT_MARKER],
                env=environment,
                capture_output=True,
                timeout=max(1, function.timeout or expected.function.timeout_seconds),
                cwd=folder,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return InvokeResult(False, "timeout", f"no answer within {function.timeout} s")
    duration = int((time.monotonic() - started) * 1000)
    stdout = completed.stdout.decode("utf-8", "replace")
    if completed.returncode != 0 or _RESULT_MARKER not in stdout:
        tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return InvokeResult(False, "function_error", _clip(tail[0]), duration)
    return judge_answer(stdout.split(_RESULT_MARKER, 1)[1], expected, duration)
