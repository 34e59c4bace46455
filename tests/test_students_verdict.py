"""When students build the lab, their function is judged by what its run does: its code, handler,
variables and sizes are theirs, never findings; its role, state and runtime still are."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from auditor.domain.actual import ActualFunction
from auditor.domain.config import AccountAccess, LabConfig, LabSettings
from auditor.domain.model import InvokeResult, Verdict
from auditor.domain.spec import render
from auditor.policy import policy_engine
from auditor.resources.compare import judge_lab
from conftest import lab_as_built

EXPECTED = render(
    LabConfig("pair-07", AccountAccess("111111111111"), AccountAccess("222222222222")), LabSettings()
)
PROJECT_CODE = "project-code-sha"
TODAY = date(2026, 12, 10)
WORKS = InvokeResult(True, "ok", "listed 3 buckets of 222222222222, marker included")


def students_function(**changes: object) -> ActualFunction:
    """The guide's function as a student makes it: its own code, the console's handler, no variables,
    the console's 3-second timeout."""
    function = lab_as_built(EXPECTED, PROJECT_CODE).function
    mine = {"code_sha256": "students-own", "handler": "lambda_function.lambda_handler", "environment": {}}
    return replace(function, **{**mine, "timeout": 3, **changes})  # type: ignore[arg-type]


def judged(function: ActualFunction, code: str | None) -> tuple[Verdict, list[str]]:
    actual = lab_as_built(EXPECTED, PROJECT_CODE).with_function(function)
    judgement = judge_lab(EXPECTED, actual, code, TODAY, WORKS, engine=policy_engine())
    return judgement.verdict, [finding.code for finding in judgement.findings]


def test_a_students_working_function_is_conformant() -> None:
    assert judged(students_function(), None) == (Verdict.CONFORMANT, [])


def test_the_same_function_against_the_projects_code_is_broken() -> None:
    verdict, codes = judged(students_function(), PROJECT_CODE)
    assert verdict is Verdict.BROKEN
    assert {"lambda_code.modified", "lambda_config.modified"} <= set(codes)


def test_a_students_function_running_as_another_role_is_still_a_finding() -> None:
    other_role = "arn:aws:iam::111111111111:role/lambdalists3role"
    verdict, codes = judged(students_function(role=other_role), None)
    assert verdict is Verdict.BROKEN and codes == ["lambda_config.modified"]
