"""`auditor demo --class`: six scripted students build the lab by hand on the embedded emulator; the
project follows and grades them (students at different steps, one stuck, one hardened, one late, one
under a near name), and its audits change nothing of theirs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import run_demo

pytestmark = pytest.mark.slow  # the class demo in a process of its own


@pytest.fixture(scope="module")
def class_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("class-demo")
    return run_demo(out, "--class"), out


@pytest.fixture(scope="module")
def grades(class_demo: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, dict[str, Any]]:
    completed, out = class_demo
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-3000:]
    document = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    assert document["schema"] == "auditor.grade/v1" and document["rubric"] == "guide"
    return {lab["lab"]: lab for lab in document["labs"]}


def steps(lab: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in lab["steps"]}


def test_the_class_demo_exits_0_and_says_nothing_unexpected(
    class_demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, _ = class_demo
    assert completed.returncode == 0, completed.stdout[-4000:]
    assert "unexpected" not in completed.stdout
    assert "students build the lab: set up the marker bucket and event rules only" in completed.stdout


def test_a_student_who_follows_the_guide_and_cleans_up_earns_every_point(grades: dict[str, Any]) -> None:
    ada = grades["pair-01"]
    assert ada["info"]["student_name"] == "Ada Lovelace"
    assert (ada["points"], ada["max_points"]) == (18, 18)
    assert {step["status"] for step in ada["steps"]} == {"done"}
    # Judged by running her code on the emulator: it assumed her own destination role.
    assert steps(ada)["function-run"]["first_done_at"] is not None


def test_a_narrowed_trust_that_still_works_is_hardened_and_credited(grades: dict[str, Any]) -> None:
    trust = steps(grades["pair-02"])["dest-trust"]
    assert (trust["status"], trust["earned"]) == ("hardened", trust["points"])
    assert "arn:aws:iam::333333333333:root" in trust["feedback"]


def test_a_student_who_stopped_is_stuck_at_the_next_step(grades: dict[str, Any]) -> None:
    alan = grades["pair-03"]
    assert alan["current_step"] == "origin-role" and alan["stuck_since"] is not None
    assert steps(alan)["origin-role"]["status"] == "missing"
    assert steps(alan)["function"]["status"] == "blocked"
    assert "Still there: role LambdaS3ListBuckets" in steps(alan)["cleanup"]["feedback"]


def test_the_guides_placeholder_fixed_after_the_due_time_is_late(grades: dict[str, Any]) -> None:
    code = steps(grades["pair-04"])["function-code"]
    assert (code["status"], code["earned"]) == ("late", 0)
    assert "after the due time" in code["feedback"]


def test_a_role_under_a_near_name_is_named_and_blocks_what_needs_it(grades: dict[str, Any]) -> None:
    edsger = steps(grades["pair-05"])
    assert edsger["dest-role"]["status"] == "wrong"
    assert edsger["dest-role"]["feedback"].startswith(
        "Found role lambdas3listbuckets in account 999999999992, the destination; the guide names it"
        " LambdaS3ListBuckets"
    )
    assert edsger["dest-trust"]["status"] == "blocked"


def test_a_trust_of_the_wrong_account_is_wrong_with_the_account_it_should_admit(
    grades: dict[str, Any],
) -> None:
    trust = steps(grades["pair-06"])["dest-trust"]
    assert trust["status"] == "wrong"
    assert "admits arn:aws:iam::999999999994:root" in trust["feedback"]
    assert "admit account 999999999993" in trust["feedback"]


def test_the_sheet_and_the_pages_per_student_are_written(
    class_demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = class_demo
    sheet = (out / "grades.csv").read_bytes()
    assert sheet.startswith(b"\xef\xbb\xbf")  # a byte-order mark, for a spreadsheet
    pages = sorted(path.name for path in (out / "class.students").glob("*.html"))
    assert pages == [f"pair-0{number}.html" for number in range(1, 7)]
    assert "Ada Lovelace" in (out / "class.students" / "pair-01.html").read_text(encoding="utf-8")
