"""Judging the function's answer (pure) and the local stand-in for the Lambda Python runtime."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from auditor.actual import ActualFunction
from auditor.config import AccountAccess, LabConfig, LabSettings
from auditor.invoke import MAX_ANSWER_BYTES, deployed_code, judge_answer, run_deployed
from auditor.local_lambda import LocalLambda
from auditor.package import code_sha256, packaged
from auditor.spec import render

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
    from auditor.invoke import CodeUnavailable

    other = code_sha256(archive_of("x = 1\n"))
    with pytest.raises(CodeUnavailable, match="cannot get the deployed code"):
        deployed_code(function(sha=other))
