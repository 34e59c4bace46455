"""`auditor grade` (interface.md, "Students build it"): the grades from the recorded history, in process."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from auditor.cli.main import main
from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.domain.rubric_file import shipped_rubric
from auditor.domain.steps import StepResult, StepStatus
from auditor.store import Store, upgrade
from conftest import write_config

T0 = datetime(2026, 12, 10, 16, 0, tzinfo=UTC)
GUIDE = shipped_rubric()
CLASS_STEPS = [step.step for step in GUIDE.steps if not step.after_class]
STUDENT = "Zoë Ångström-Ñúñez"

LABS = f"""
[[labs]]
name = "pair-01"
origin = {{ account_id = "100000000001" }}
destination = {{ account_id = "200000000001" }}
info = {{ student_name = "{STUDENT}", student_email = "zoe@example.edu" }}

[[labs]]
name = "pair-02"
origin = {{ account_id = "100000000002" }}
destination = {{ account_id = "200000000002" }}
info = {{ student_name = "=HYPERLINK(\\"x\\")" }}
"""
CLASS = """
[class]
built_by = "students"
due = "2026-12-10T17:00:00Z"
ends = "2026-12-10T18:00:00Z"
hardening = "credit"
"""


def steps(done: int) -> tuple[StepResult, ...]:
    """The first `done` steps of the class done, the others missing; cleanup missing."""
    return tuple(
        StepResult(step.step, StepStatus.DONE)
        if index < done and not step.after_class
        else StepResult(step.step, StepStatus.MISSING, f"{step.title}: not found")
        for index, step in enumerate(GUIDE.steps)
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path, "", LABS, extra=CLASS)
    upgrade(f"sqlite:///{tmp_path / 'auditor.db'}")
    return path


def record(config: Path, minutes: float, done: int, lab: str = "pair-01") -> None:
    store = Store.from_url(f"sqlite:///{config.parent / 'auditor.db'}")
    try:
        at = T0 + timedelta(minutes=minutes)
        audit = LabAudit(
            lab,
            "100000000001",
            "200000000001",
            Verdict.DRIFTED,
            started_at=at,
            finished_at=at,
            steps=steps(done),
        )
        store.record_audit(audit, Trigger.SCHEDULE)
    finally:
        store.close()


def grade(config: Path, *arguments: str) -> Result:
    return CliRunner().invoke(main, ["grade", "--config", str(config), *arguments])


def test_json_is_the_grade_document_of_every_lab(config: Path) -> None:
    record(config, 5, done=1)
    record(config, 20, done=3)

    result = grade(config, "--format", "json", "--as-of", "2026-12-10T16:30:00Z")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["schema", "generated_at", "as_of", "rubric", "labs"]
    assert (document["schema"], document["as_of"], document["rubric"]) == (
        "auditor.grade/v1",
        "2026-12-10T16:30:00Z",
        "guide",
    )
    first, second = document["labs"]
    assert first["lab"] == "pair-01" and first["info"]["student_name"] == STUDENT
    assert list(first) == ["lab", "info", "points", "max_points", "current_step", "stuck_since", "steps"]
    assert first["max_points"] == GUIDE.max_points
    assert first["points"] == sum(step.points for step in GUIDE.steps[:3])
    assert first["current_step"] == GUIDE.steps[3].step
    assert first["stuck_since"] is None  # 10 minutes since the last step done: not yet stuck
    assert [step["step"] for step in first["steps"]] == list(GUIDE.ids)
    assert first["steps"][0] == {
        "step": GUIDE.steps[0].step,
        "title": GUIDE.steps[0].title,
        "points": GUIDE.steps[0].points,
        "earned": GUIDE.steps[0].points,
        "status": "done",
        "first_done_at": "2026-12-10T16:05:00Z",
        "feedback": None,
    }
    assert first["steps"][-1]["status"] == "pending"
    assert {step["status"] for step in second["steps"][:-1]} == {"missing"}
    assert {step["feedback"] for step in second["steps"][:-1]} == {"not audited yet"}
    assert second["points"] == 0


def test_as_of_makes_the_grade_reproducible(config: Path) -> None:
    record(config, 5, done=2)
    before = json.loads(grade(config, "--format", "json", "--as-of", "2026-12-10T16:30:00+00:00").stdout)

    record(config, 40, done=len(CLASS_STEPS))  # recorded after the instant: it does not exist for it
    again = json.loads(grade(config, "--format", "json", "--as-of", "2026-12-10T17:30:00+01:00").stdout)
    later = json.loads(grade(config, "--format", "json", "--as-of", "2026-12-10T16:50:00Z").stdout)

    assert again["as_of"] == "2026-12-10T16:30:00Z"
    assert {**again, "generated_at": None} == {**before, "generated_at": None}
    assert later["labs"][0]["points"] == GUIDE.max_points - GUIDE.steps[-1].points


def test_lab_selects_labs(config: Path) -> None:
    result = grade(config, "--format", "json", "--lab", "pair-02")

    assert [lab["lab"] for lab in json.loads(result.stdout)["labs"]] == ["pair-02"]
    unknown = grade(config, "--lab", "pair-2")
    assert unknown.exit_code == 2 and "pair-02" in unknown.output


def test_csv_has_a_bom_a_column_a_step_and_the_students_name(config: Path, tmp_path: Path) -> None:
    record(config, 5, done=2)
    out = tmp_path / "grades.csv"

    result = grade(config, "--format", "csv", "--out", str(out), "--as-of", "2026-12-10T16:30:00Z")

    assert result.exit_code == 0, result.output
    assert "written to" in result.stdout and str(out) in result.stdout
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert STUDENT.encode("utf-8") in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["lab", "student_name", *GUIDE.ids, "points"]
    earned = [str(step.points) for step in GUIDE.steps[:2]] + ["0"] * (len(GUIDE.steps) - 2)
    assert rows[1] == ["pair-01", STUDENT, *earned, str(sum(map(int, earned)))]
    assert rows[2][:2] == ["pair-02", '\'=HYPERLINK("x")']  # a would-be formula is text


def test_csv_on_standard_output_has_the_bom_too(config: Path) -> None:
    result = grade(config, "--format", "csv")

    assert result.stdout_bytes.startswith(b"\xef\xbb\xbf")
    assert STUDENT in result.stdout


def test_the_table_has_a_row_a_lab_and_a_column_a_step(config: Path, tmp_path: Path) -> None:
    record(config, 5, done=1)
    out = tmp_path / "grades.txt"

    result = grade(config, "--out", str(out), "--as-of", "2026-12-10T16:30:00Z")

    assert result.exit_code == 0, result.output
    title, header, first, second = out.read_text(encoding="utf-8").splitlines()
    assert title == "rubric: guide, as of 2026-12-10T16:30:00Z"
    assert header.split()[:3] == ["LAB", "STUDENT", GUIDE.steps[0].step]
    assert header.split()[-3:] == ["POINTS", "CURRENT", "STUCK"]
    assert first.startswith(f"pair-01  {STUDENT}")
    assert f"{GUIDE.steps[0].points}/{GUIDE.max_points}" in first
    assert first.split()[-1] == "2026-12-10T16:05:00Z"  # stuck: nothing new for 25 minutes
    assert "missing" in second and f"0/{GUIDE.max_points}" in second


@pytest.mark.parametrize("instant", ["yesterday", "2026-12-10T17:00:00"])
def test_a_bad_as_of_is_a_usage_error_naming_the_option(config: Path, instant: str) -> None:
    result = grade(config, "--as-of", instant)

    assert result.exit_code == 2
    assert "--as-of" in result.output


def test_a_database_that_cannot_be_opened_is_an_operational_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nowhere"
    config = write_config(tmp_path, "", LABS, extra=CLASS, database_url=url)

    result = grade(config)

    assert result.exit_code == 1
    assert result.output.startswith("error: database postgresql") and "is unavailable" in result.output
    assert "hunter2" not in result.output
