"""Bad input from the outside never crashes the auditor: it becomes a finding, a failed invoke, or a
dropped message, each with its cause.

Three doors let the outside in: policy documents that AWS hands back (judged by compare.judge_lab),
what the lab's function answers (invoke.judge_answer, and the local stand-in that runs it), and the
messages on the change-event queue (events.labs_for_message).
"""

from __future__ import annotations

import copy
import io
import json
import os
import select
import time
import zipfile
from dataclasses import replace
from datetime import date
from typing import Any
from urllib.parse import quote

import pytest

from auditor.aws.events import labs_for_message
from auditor.aws.invoke import MAX_ANSWER_BYTES, judge_answer, run_deployed
from auditor.aws.local_lambda import LocalLambda
from auditor.domain.actual import ActualFunction, ActualLab
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.model import Check, Severity, Verdict
from auditor.domain.spec import DESTINATION_POLICY, ORIGIN_POLICY, render
from auditor.policy import PolicyEngine
from auditor.resources.compare import judge_lab
from conftest import lab_as_built

TODAY = date(2026, 11, 29)
SHA = "packaged-sha"
ORIGIN, DESTINATION = "111111111111", "222222222222"
EXPECTED = render(LabConfig("pair-01", AccountAccess(ORIGIN), AccountAccess(DESTINATION)), LabSettings())
MARKER = EXPECTED.marker_bucket.name

# A judge that takes longer on hostile input is a denial of service on the auditor (one lab's student
# stalls the audit of the class). The policy engine gets POLICY_TIME_LIMIT for the lab (a short one, so
# the test is quick: the bound is what is tested, not its size); the whole judgement, parsing included,
# must stay within TIME_LIMIT. CPU seconds, not wall time: a loaded CI machine must not make it flaky.
POLICY_TIME_LIMIT = 0.5
TIME_LIMIT = 2.0
ENGINE = PolicyEngine(POLICY_TIME_LIMIT)


@pytest.fixture(autouse=True, scope="module")
def engine_loaded() -> None:
    """The action catalogue and the solver load once per process, before the clock starts: the limit
    is on what a hostile document costs, not on starting the program."""
    judge_lab(
        EXPECTED,
        with_role("destination", trust_policy=document(statement(Principal="*", Action="sts:*"))),
        SHA,
        TODAY,
        engine=ENGINE,
    )


def with_role(side: str, **changes: Any) -> ActualLab:
    actual = lab_as_built(EXPECTED, SHA)
    name = f"{side}_role"
    return actual.with_role(replace(getattr(actual, name), **changes))


def judged_in_time(actual: ActualLab) -> Any:
    started = time.process_time()
    judgement = judge_lab(EXPECTED, actual, SHA, TODAY, engine=ENGINE)
    assert time.process_time() - started < TIME_LIMIT, "judging took too much CPU"
    # Whatever came in, the result must be writable as the audit JSON of interface.md.
    json.dumps([finding.to_json() for finding in judgement.findings], default=str)
    return judgement


def statement(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **fields}


def document(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# ------------------------------------------------------------------------------- policy documents

# Documents IAM could never store, or that a broken proxy, an emulator or a hostile account could
# hand back anyway: each must be a finding about that document, never an exception.
MALFORMED: dict[str, Any] = {
    "none": None,
    "empty_text": "",
    "whitespace": " \n\t ",
    "truncated_json": '{"Version": "2012-10-17", "Statement": [',
    "broken_url_encoding": "%7B%22Version%22%3A%22",
    "bad_percent_escape": "%zz%7B",
    "double_url_encoded": quote(quote(json.dumps(document(statement(Action="s3:*", Resource="*"))))),
    "json_list": "[]",
    "json_number": "42",
    "json_string": '"Allow everything"',
    "a_number": 42,
    "a_list": [document(statement(Action="s3:*", Resource="*"))],
    "bytes_not_utf8": b"\xff\xfe\xfd",
    "statement_string": {"Version": "2012-10-17", "Statement": "Allow"},
    "statement_of_numbers": {"Version": "2012-10-17", "Statement": [1, 2, 3]},
    "effect_lower_case": document(statement(Effect="allow", Action="s3:*", Resource="*")),
    "action_number": document(statement(Action=12, Resource="*")),
    "action_nested_list": document(statement(Action=[["s3:*"]], Resource="*")),
    "action_empty_string": document(statement(Action="", Resource="*")),
    "resource_empty_list": document(statement(Action="s3:*", Resource=[])),
    "principal_empty": document(statement(Action="sts:AssumeRole", Principal={})),
    "principal_list_of_none": document(statement(Action="sts:AssumeRole", Principal={"AWS": [None]})),
    "condition_string": document(statement(Action="s3:*", Resource="*", Condition="StringLike")),
    "condition_value_object": document(
        statement(Action="s3:*", Resource="*", Condition={"StringLike": {"aws:UserAgent": {"x": 1}}})
    ),
    "unknown_key": document(statement(Action="s3:*", Resource="*", Shenanigans=True)),
    "version_from_the_future": {"Version": "2031-01-01", "Statement": []},
    "deeply_nested_text": "[" * 100_000 + "]" * 100_000,
    "deeply_nested_value": {"Version": "2012-10-17", "Statement": [[[[[[[[[[[]]]]]]]]]]]},
    "huge_number": '{"Version": "2012-10-17", "Statement": [], "Id": 1' + "0" * 10_000 + "}",
    "nul_bytes": '{"Version": "2012-10-17",\x00 "Statement": []}',
    "five_megabytes_of_a": "a" * 5_000_000,
}

# Documents that are valid IAM policies, but odd: every one must be judged, never crash.
ODD_BUT_VALID: dict[str, Any] = {
    "unicode_everywhere": document(
        statement(
            Sid="Ünïcødé‮gnirts⁦",  # right-to-left override, isolates
            Action="s3:ListAllMyBuckets",
            Resource="arn:aws:s3:::bücket-🪣-\u200b-\u0000",
            Condition={"StringLike": {"aws:UserAgent": "*AWS_Lambda_python*\U0010ffff"}},
        )
    ),
    "lone_surrogates": document(
        statement(Action="s3:ListAllMyBuckets", Resource="arn:aws:s3:::\ud800\udfff\ud800")
    ),
    "combining_characters": document(
        statement(Action="s3:ListAllMyBuckets", Resource="*" + "\u0301" * 10_000)
    ),
    "thousands_of_statements": document(
        *(statement(Action="s3:GetObject", Resource=f"arn:aws:s3:::bucket-{n}/*") for n in range(3_000))
    ),
    "thousands_of_actions": document(statement(Action=[f"s3:Get{n}" for n in range(5_000)], Resource="*")),
    "thousands_of_resources": document(
        statement(Action="s3:GetObject", Resource=[f"arn:aws:s3:::bucket-{n}/*" for n in range(5_000)])
    ),
    "every_wildcard_pattern": document(
        statement(Action=["*:*", "s3:*", "s3:Get*", "?3:*", "iam:*Role*", "*"], Resource="*")
    ),
    "pathological_globs": document(
        statement(Action="s3:ListAllMyBuckets", Resource=["*a" * 500 + "b", "a" * 5_000 + "*"])
    ),
    "thousands_of_condition_values": document(
        statement(
            Action="sts:AssumeRole",
            Resource="*",
            Condition={"StringLike": {"aws:UserAgent": [f"*{n}*" for n in range(5_000)]}},
        )
    ),
}


def _summary(judgement: Any) -> list[tuple[str, str, str]]:
    return [(f.check, f.resource, f.severity.value) for f in judgement.findings]


@pytest.mark.parametrize("document", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("where", ["destination_trust", "destination_inline", "origin_inline"])
def test_a_malformed_document_is_a_finding_not_a_crash(document: Any, where: str) -> None:
    if where == "destination_trust":
        actual = with_role("destination", trust_policy=document)
        check, resource = Check.TRUST_POLICY, EXPECTED.destination_role.arn
    elif where == "destination_inline":
        actual = with_role("destination", inline_policies={DESTINATION_POLICY: document})
        check, resource = Check.INLINE_POLICY, EXPECTED.destination_role.arn
    else:
        actual = with_role("origin", inline_policies={ORIGIN_POLICY: document})
        check, resource = Check.INLINE_POLICY, EXPECTED.origin_role.arn
    judgement = judged_in_time(actual)
    unreadable = [f for f in judgement.findings if f.check == check and f.resource.startswith(resource)]
    assert unreadable, _summary(judgement)
    assert any("cannot be read" in f.message for f in unreadable), [f.message for f in unreadable]
    assert all(f.code == f"{check}.unreadable" for f in unreadable if "cannot be read" in f.message)
    # A document nobody can read vouches for nothing: the lab cannot be shown to work.
    assert judgement.verdict is Verdict.BROKEN
    # What is shown of it is clipped: a 5 MB document does not become a 5 MB finding.
    assert all(len(str(f.actual)) <= 2_000 for f in unreadable)


@pytest.mark.parametrize("document", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_extra_or_managed_policy_or_boundary_is_a_finding(document: Any) -> None:
    actual = with_role(
        "destination",
        inline_policies={**EXPECTED.destination_role.inline_policies, "student-extra": document},
        managed_policies={f"arn:aws:iam::{DESTINATION}:policy/Odd": document},
        boundary_arn=f"arn:aws:iam::{DESTINATION}:policy/OddBoundary",
        boundary_policy=document,
    )
    judgement = judged_in_time(actual)
    checks = {f.check for f in judgement.findings if f.severity.rank >= Severity.LOW.rank}
    assert {Check.INLINE_POLICY, Check.MANAGED_POLICIES, Check.PERMISSIONS_BOUNDARY} <= checks
    # An unreadable boundary cannot be shown to let the listing through.
    assert judgement.verdict is Verdict.BROKEN


@pytest.mark.slow  # each may take the whole time limit, by design
@pytest.mark.parametrize("document", ODD_BUT_VALID.values(), ids=ODD_BUT_VALID.keys())
@pytest.mark.parametrize("where", ["destination_inline", "extra_inline", "destination_trust"])
def test_an_odd_but_valid_document_is_judged_in_time(document: Any, where: str) -> None:
    if where == "destination_inline":
        actual = with_role("destination", inline_policies={DESTINATION_POLICY: document})
    elif where == "extra_inline":
        policies = {**EXPECTED.destination_role.inline_policies, "odd": document}
        actual = with_role("destination", inline_policies=policies)
    else:
        trust = copy.deepcopy(document)
        for item in trust["Statement"]:
            item.pop("Resource", None)
            item["Principal"] = {"AWS": f"arn:aws:iam::{ORIGIN}:root"}
        actual = with_role("destination", trust_policy=trust)
    judgement = judged_in_time(actual)
    # None of them is the spec; each is reported as some difference (or as the same, for a superset
    # trust), and never as an unreadable document: they are valid.
    assert not any("cannot be read" in f.message for f in judgement.findings), _summary(judgement)
    assert judgement.verdict in (Verdict.CONFORMANT, Verdict.DRIFTED, Verdict.BROKEN)


def test_odd_names_and_values_in_the_function_are_judged() -> None:
    actual = lab_as_built(EXPECTED, SHA)
    actual = actual.with_function(
        replace(
            actual.function,
            runtime="python3.\u0661\u0662",  # Arabic-Indic digits
            handler="handler.\u202elambda_handler",
            environment={"\u0000": "x" * 100_000, "DESTINATION_ROLE_ARN": "\ud800"},
            state="\x1b[31mActive\x1b[0m",
        )
    )
    judgement = judged_in_time(actual)
    assert judgement.verdict is Verdict.BROKEN
    assert {Check.LAMBDA_CONFIG, Check.RESOURCE} <= {f.check for f in judgement.findings}


# ------------------------------------------------------------------------------- the function's answer


def answer(**fields: Any) -> str:
    return json.dumps({"ok": True, "destination_account": DESTINATION, "buckets": [MARKER], **fields})


ANSWERS: dict[str, tuple[str | bytes, str]] = {
    "python_repr": ("{'ok': True, 'buckets': [datetime.datetime(2020, 1, 1)]}", "bad_answer"),
    "html_error_page": ("<html><body>502 Bad Gateway</body></html>", "bad_answer"),
    "empty": ("", "bad_answer"),
    "empty_bytes": (b"", "bad_answer"),
    "whitespace": ("  \n ", "bad_answer"),
    "nul_bytes": (b"\x00\x00\x00", "bad_answer"),
    "utf16": (answer().encode("utf-16"), "ok"),  # json detects UTF-16; the proof is still the proof
    "bom_then_json": ("\ufeff" + answer(), "bad_answer"),
    "json_null": ("null", "bad_answer"),
    "json_string": ('"ok"', "bad_answer"),
    "json_true": ("true", "bad_answer"),
    "truncated": (answer()[:-5], "bad_answer"),
    "one_byte_too_many": ("[" + " " * MAX_ANSWER_BYTES + "]", "bad_answer"),
    "five_megabytes": ("x" * 5_000_000, "bad_answer"),
    "huge_number": ('{"ok": true, "destination_account": 1' + "0" * 10_000 + "}", "bad_answer"),
    "nan_and_infinity": ('{"ok": NaN, "destination_account": Infinity, "buckets": []}', "wrong_account"),
    "buckets_a_string": (answer(buckets=MARKER), "bad_answer"),
    "buckets_a_dict": (answer(buckets={MARKER: True}), "bad_answer"),
    "buckets_with_null": (answer(buckets=[MARKER, None]), "bad_answer"),
    "account_an_object": (answer(destination_account={"$ne": ""}), "wrong_account"),
    "account_a_number": (answer(destination_account=int(DESTINATION)), "wrong_account"),
    "account_with_nul": (answer(destination_account=DESTINATION + "\u0000"), "wrong_account"),
    "account_lookalike_digits": (answer(destination_account="２２２２２２２２２２２２"), "wrong_account"),
    "marker_lookalike": (answer(buckets=[MARKER.replace("-", "\u2010")]), "marker_missing"),
    "marker_with_zero_width": (answer(buckets=[MARKER + "\u200b"]), "marker_missing"),
    "ok_false_as_string": (answer(ok="false"), "ok"),  # only the boolean false means a failure
    "failure_with_object_fields": (
        json.dumps({"ok": False, "stage": {"a": 1}, "error_code": [1], "error": None}),
        "function_error",
    ),
    "failure_with_terminal_escapes": (
        json.dumps({"ok": False, "stage": "assume_role", "error": "\x1b[2J\x1b[31mowned\x07" * 1_000}),
        "assume_denied",
    ),
    "twenty_thousand_buckets": (answer(buckets=[f"b{n}" for n in range(20_000)]), "marker_missing"),
    "duplicate_keys": (
        '{"ok": true, "destination_account": "1", "destination_account": "222222222222", '
        f'"buckets": ["{MARKER}"]}}',
        "ok",
    ),
}


@pytest.mark.parametrize(("raw", "cause"), ANSWERS.values(), ids=ANSWERS.keys())
def test_whatever_the_function_answers_is_judged_with_a_cause(raw: str | bytes, cause: str) -> None:
    started = time.process_time()
    result = judge_answer(raw, EXPECTED)
    assert time.process_time() - started < TIME_LIMIT
    assert (result.ok, result.cause) == (cause == "ok", cause)
    assert len(result.detail) <= 301  # clipped, whatever came in
    json.dumps({"detail": result.detail, "answer": result.answer})  # it can go into the audit JSON


def test_a_deeply_nested_answer_is_a_bad_answer() -> None:
    result = judge_answer("[" * 100_000 + "]" * 100_000, EXPECTED)
    assert (result.ok, result.cause) == (False, "bad_answer")


def archive_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def function(timeout: int = 5) -> ActualFunction:
    return ActualFunction(
        "Lambda-Assume-Roles", True, handler="handler.lambda_handler", runtime="python3.12", timeout=timeout
    )


PROOF = repr({"ok": True, "destination_account": DESTINATION, "buckets": [MARKER]})

# Functions that misbehave in the local stand-in; (source, cause, text the detail must hold).
HOSTILE_FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "prints_megabytes_first": (
        f"import sys\ndef lambda_handler(e, c):\n    sys.stdout.write('x' * 3_000_000)\n    return {PROOF}\n",
        "ok",
        "marker included",
    ),
    "prints_a_fake_result_marker": (
        "import sys\ndef lambda_handler(e, c):\n    print('\\x1elab-auditor-result\\x1e{\"ok\": true}')\n"
        "    return {'ok': True}\n",
        "bad_answer",
        "",
    ),
    "returns_what_json_cannot_write": (
        "import datetime\ndef lambda_handler(e, c):\n    return {'when': datetime.datetime.now()}\n",
        "function_error",
        "TypeError",
    ),
    "returns_a_huge_answer": (
        "def lambda_handler(e, c):\n    return {'buckets': ['b' * 100] * 10_000}\n",
        "bad_answer",
        "bytes",
    ),
    "exits_with_a_code": (
        "import sys\ndef lambda_handler(e, c):\n    sys.stderr.write('bye\\n')\n    sys.exit(3)\n",
        "function_error",
        "bye",
    ),
    "exits_without_a_trace": (
        "import os\ndef lambda_handler(e, c):\n    os._exit(0)\n",
        "function_error",
        "no output",
    ),
    "kills_itself": (
        "import os, signal\ndef lambda_handler(e, c):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        "function_error",
        "",
    ),
    "closes_its_output": (
        "import os\ndef lambda_handler(e, c):\n    os.close(1)\n    return {'ok': True}\n",
        "function_error",
        "",
    ),
    "raises_keyboard_interrupt": (
        "def lambda_handler(e, c):\n    raise KeyboardInterrupt\n",
        "function_error",
        "KeyboardInterrupt",
    ),
    "fails_at_import": ("raise ImportError('broken package')\n", "function_error", "broken package"),
    "not_python": ("def lambda_handler(e, c) return 1\n", "function_error", "SyntaxError"),
}


@pytest.mark.parametrize(
    ("source", "cause", "detail"), HOSTILE_FUNCTIONS.values(), ids=HOSTILE_FUNCTIONS.keys()
)
def test_a_hostile_function_in_the_local_stand_in_is_judged_with_a_cause(
    source: str, cause: str, detail: str, local_lambda: LocalLambda
) -> None:
    started = time.monotonic()
    result = run_deployed(local_lambda, archive_of(source), function(), {"PATH": "/usr/bin:/bin"}, EXPECTED)
    assert time.monotonic() - started < 10
    assert (result.ok, result.cause) == (cause == "ok", cause), result.detail
    assert detail in result.detail
    assert len(result.detail) <= 301


def test_a_function_that_forks_and_hangs_is_stopped_with_all_it_started(local_lambda: LocalLambda) -> None:
    source = (
        "import os, time\ndef lambda_handler(e, c):\n"
        "    if os.fork() == 0:\n        time.sleep(60)\n    time.sleep(60)\n"
    )
    started = time.monotonic()
    result = run_deployed(local_lambda, archive_of(source), function(timeout=1), {}, EXPECTED)
    assert (result.ok, result.cause) == (False, "timeout")
    assert time.monotonic() - started < 10


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Wait for the process to end (it need not be our child): its pidfd turns readable when it does."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie no one has reaped yet
    except FileNotFoundError:
        return True


def test_what_a_function_leaves_running_goes_with_it(local_lambda: LocalLambda) -> None:
    source = (
        "import subprocess, sys\ndef lambda_handler(e, c):\n"
        "    stray = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "    return {'ok': False, 'stage': 'probe', 'error_code': '', 'error': str(stray.pid)}\n"
    )
    result = run_deployed(local_lambda, archive_of(source), function(), {"PATH": "/usr/bin:/bin"}, EXPECTED)
    assert result.detail.startswith("probe: "), result.detail  # no empty field for the empty error code
    pid = int(result.detail.split(": ", 1)[1])
    _wait_for_exit(pid, timeout=5)
    assert _gone(pid), "a process the function started outlived the run"


def test_a_function_that_kills_the_zygote_fails_alone(preforked_local_lambda: LocalLambda) -> None:
    """It may kill the zygote it was forked from: its own run fails with a cause, and the next run
    gets a new zygote."""
    local_lambda = preforked_local_lambda
    source = (
        "import os, signal\ndef lambda_handler(e, c):\n"
        "    with open(f'/proc/{os.getppid()}/cmdline', 'rb') as f:\n"
        "        if b'local_lambda/sandbox.py\\x00zygote' not in f.read():\n"
        "            return {'ok': False, 'stage': 'probe', 'error': 'not forked from the zygote'}\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return {'ok': False, 'stage': 'probe', 'error': 'still here'}\n"
    )
    result = run_deployed(local_lambda, archive_of(source), function(), {}, EXPECTED)
    assert (result.ok, result.cause) == (False, "function_error"), result.detail
    assert "local Lambda stand-in stopped" in result.detail
    proof = f"def lambda_handler(e, c):\n    return {PROOF}\n"
    result = run_deployed(local_lambda, archive_of(proof), function(), {}, EXPECTED)
    assert (result.ok, result.cause) == (True, "ok"), result.detail


def test_each_run_sees_only_its_own_environment(local_lambda: LocalLambda) -> None:
    """Credentials of one lab's run never reach another's: not in os.environ, not in the environment
    the process started with (/proc/self/environ)."""
    source = (
        "import json, os\ndef lambda_handler(e, c):\n"
        "    with open('/proc/self/environ', 'rb') as f:\n        initial = f.read().decode('utf-8', 'replace')\n"
        "    return {'ok': False, 'stage': 'probe', 'error_code': '',\n"
        "            'error': json.dumps([sorted(os.environ), initial.count('SECRET-OF-')])}\n"
    )
    seen = []
    for lab in ("LAB-A", "LAB-B"):
        environment = {"AWS_SECRET_ACCESS_KEY": f"SECRET-OF-{lab}", "ONLY_IN": lab}
        result = run_deployed(local_lambda, archive_of(source), function(), environment, EXPECTED)
        seen.append(json.loads(result.detail.split(": ", 1)[1]))
    for names, initial_secrets in seen:
        assert names == ["AWS_SECRET_ACCESS_KEY", "ONLY_IN"]
        assert initial_secrets <= 1  # at most its own, never the other lab's


# ------------------------------------------------------------------------------- queue messages

INDEX = {ORIGIN: ("pair-01",), DESTINATION: ("pair-01",)}


def event(**fields: Any) -> str:
    base: dict[str, Any] = {
        "detail-type": "AWS API Call via CloudTrail",
        "account": ORIGIN,
        "detail": {"eventName": "PutRolePolicy", "requestParameters": {"roleName": "Lambda-Assume-Roles"}},
    }
    base.update(fields)
    return json.dumps(base)


MESSAGES: dict[str, str] = {
    "empty": "",
    "whitespace": "   ",
    "not_json": "hello",
    "sns_wrapper_text": "This is a test notification",
    "json_null": "null",
    "json_list": "[]",
    "json_number": "42",
    "json_string": '"event"',
    "no_detail": json.dumps({"detail-type": "x", "account": ORIGIN}),
    "no_detail_type": json.dumps({"detail": {}, "account": ORIGIN}),
    "detail_null": event(detail=None),
    "detail_a_list": event(detail=[1, 2]),
    "detail_a_string": event(detail="PutRolePolicy"),
    "account_unknown": event(account="999999999999"),
    "account_an_object": event(account={"id": ORIGIN}),
    "account_a_list": event(account=[ORIGIN]),
    "account_a_number": event(account=1.5),
    "account_padded": event(account=f" {ORIGIN} "),
    "account_lookalike_digits": event(account="１１１１１１１１１１１１"),
    "another_resource": event(
        detail={"eventName": "PutRolePolicy", "requestParameters": {"roleName": "SomeoneElsesRole"}}
    ),
    "huge": event(padding="x" * 300_000, account="999999999999"),
    "odd_unicode": event(account="\u202e111111111111", detail={"eventName": "\ud800"}),
    "huge_number": '{"detail-type": "x", "detail": {}, "account": 1' + "0" * 10_000 + "}",
}


@pytest.mark.parametrize("body", MESSAGES.values(), ids=MESSAGES.keys())
def test_a_message_that_is_not_a_lab_event_matches_nothing_with_a_reason(body: str) -> None:
    match = labs_for_message(body, INDEX)
    assert match.labs == ()
    assert match.reason
    assert len(match.reason) < 200  # the reason is logged: it quotes at most a little of the input


def test_a_lab_event_still_matches() -> None:
    assert labs_for_message(event(), INDEX).labs == ("pair-01",)


def test_a_deeply_nested_message_matches_nothing() -> None:
    match = labs_for_message("[" * 100_000 + "]" * 100_000, INDEX)
    assert match.labs == ()
