"""`auditor report --format html` when students build the labs: a page per student, to hand to them
(interface.md, `auditor report`), from recorded audits with step results, in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from auditor.app.grading import GradeRules, grade_lab
from auditor.cli.main import main
from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.domain.rubric_file import shipped_rubric
from auditor.domain.steps import StepResult, StepStatus
from auditor.report.html_report import render_student_page
from auditor.report.output import student_pages_folder
from auditor.store import Store, upgrade
from conftest import write_config

GUIDE = shipped_rubric()
# The history happened in the last hours: the report grades as of its own end, now.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
DUE, ENDS = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
ADA = "Zoë Ångström-Ñúñez"
SCRIPT_NAME = "<script>alert('mallory')</script>"
WRONG_FEEDBACK = "Your policy allows s3:* <b>and more</b>: allow s3:ListAllMyBuckets only."

LABS = f"""
[[labs]]
name = "pair-01"
origin = {{ account_id = "100000000001" }}
destination = {{ account_id = "200000000001" }}
info = {{ student_name = "{ADA}", student_email = "zoe@example.edu" }}

[[labs]]
name = "pair-02"
origin = {{ account_id = "100000000002" }}
destination = {{ account_id = "200000000002" }}
info = {{ student_name = "{SCRIPT_NAME}", student_email = "mallory@example.edu" }}
"""


def class_toml(built_by: str) -> str:
    return f"""
[class]
built_by = "{built_by}"
due = "{DUE.isoformat()}"
ends = "{ENDS.isoformat()}"
hardening = "credit"
"""


def results(**found: StepStatus | tuple[StepStatus, str]) -> tuple[StepResult, ...]:
    """Each step of the guide as given (a status, or a status and its feedback), else missing."""
    out = []
    for step in GUIDE.steps:
        given = found.get(step.step.replace("-", "_"), (StepStatus.MISSING, f"{step.title}: not found"))
        status, feedback = given if isinstance(given, tuple) else (given, None)
        out.append(StepResult(step.step, status, feedback))
    return tuple(out)


@pytest.fixture(params=["students"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = write_config(tmp_path, "", LABS, extra=class_toml(request.param))
    upgrade(f"sqlite:///{tmp_path / 'auditor.db'}")
    return path


def record(config: Path, lab: str, minutes: float, steps: tuple[StepResult, ...]) -> None:
    store = Store.from_url(f"sqlite:///{config.parent / 'auditor.db'}")
    try:
        at = T0 + timedelta(minutes=minutes)
        audit = LabAudit(
            lab, "100000000001", "200000000001", Verdict.DRIFTED, started_at=at, finished_at=at, steps=steps
        )
        store.record_audit(audit, Trigger.SCHEDULE)
    finally:
        store.close()


def report(config: Path, *arguments: str) -> Result:
    return CliRunner().invoke(main, ["report", "--config", str(config), "--format", "html", *arguments])


class Rows(HTMLParser):
    """The text of each cell of the rows of `<table class="steps">`, and every link."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tr" and "step" in classes:
            self.rows.append([])
        elif tag == "td" and self.rows and self._cell is None:
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parsed(document: str) -> Rows:
    parser = Rows()
    parser.feed(document)
    return parser


def history(config: Path) -> None:
    """pair-01: dest-role done from the first audit; dest-trust hardened, dest-policy wrong;
    origin-role done only after the due time (late). pair-02: dest-role done."""
    record(config, "pair-01", 5, results(dest_role=StepStatus.DONE))
    record(
        config,
        "pair-01",
        30,
        results(
            dest_role=StepStatus.DONE,
            dest_trust=StepStatus.HARDENED,
            dest_policy=(StepStatus.WRONG, WRONG_FEEDBACK),
        ),
    )
    record(
        config,
        "pair-01",
        70,
        results(dest_role=StepStatus.DONE, dest_trust=StepStatus.HARDENED, origin_role=StepStatus.DONE),
    )
    record(config, "pair-02", 10, results(dest_role=StepStatus.DONE))


def test_a_page_per_student_with_their_steps_statuses_points_and_feedback(config: Path) -> None:
    history(config)
    out = config.parent / "report.html"

    result = report(config, "--out", str(out))

    assert result.exit_code == 0, result.output
    folder = config.parent / "report.students"
    assert student_pages_folder(out) == folder
    assert f"a page per student in {folder}" in result.stdout
    assert sorted(path.name for path in folder.iterdir()) == ["pair-01.html", "pair-02.html"]
    page = (folder / "pair-01.html").read_text(encoding="utf-8")
    assert ADA in page and "pair-01" in page
    points = GUIDE.steps[0].points + GUIDE.steps[1].points  # done, and hardened with credit
    assert f"{points} / {GUIDE.max_points}" in page

    rows = parsed(page).rows
    assert len(rows) == len(GUIDE.steps)
    assert [row[1] for row in rows] == [f"{step.title} {step.step}" for step in GUIDE.steps]
    statuses = [row[2] for row in rows]
    # origin-policy and function need origin-role, late (which counts as done): judged, missing;
    # function-code needs function: blocked; cleanup: no audit after the class ended yet.
    assert statuses == [
        "done",
        "hardened",
        "wrong",
        "late",
        "missing",
        "missing",
        "blocked",
        "blocked",
        "pending",
    ]
    assert rows[6][5] == f'Finish "{GUIDE.steps[5].title}" ({GUIDE.steps[5].step}) first: this step needs it.'
    dest_role, dest_trust, dest_policy, origin_role = rows[:4]
    assert dest_role[3] == f"{GUIDE.steps[0].points} / {GUIDE.steps[0].points}"
    assert dest_role[4] == (T0 + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M UTC")
    assert dest_trust[3] == f"{GUIDE.steps[1].points} / {GUIDE.steps[1].points}"
    assert dest_policy[3] == f"0 / {GUIDE.steps[2].points}" and dest_policy[4] == "–"
    assert dest_policy[5] == WRONG_FEEDBACK
    assert origin_role[3] == f"0 / {GUIDE.steps[3].points}"
    assert origin_role[4] == (T0 + timedelta(minutes=70)).strftime("%Y-%m-%d %H:%M UTC")
    assert "after the due time" in origin_role[5]
    assert "<b>and more</b>" not in page and "&lt;b&gt;and more&lt;/b&gt;" in page


def test_a_students_page_holds_nothing_of_another_student_or_of_the_operator(config: Path) -> None:
    history(config)

    assert report(config, "--out", str(config.parent / "report.html")).exit_code == 0

    folder = config.parent / "report.students"
    ada, mallory = ((folder / f"pair-0{n}.html").read_text(encoding="utf-8") for n in (1, 2))
    for own, other, other_name in ((ada, "pair-02", "mallory"), (mallory, "pair-01", ADA)):
        assert other not in own and other_name not in own
        for operator_detail in (
            str(config.parent),
            "auditor.db",
            "sqlite",
            "100000000001",
            "200000000002",
            "email",
            "example.edu",
        ):
            assert operator_detail not in own
        assert "<script" not in own and "http" not in own.replace("http-equiv", "")
    assert "&lt;script&gt;" in mallory  # the name, escaped
    assert "Content-Security-Policy" in mallory


def test_the_report_links_each_students_page_and_escapes_the_names(config: Path) -> None:
    history(config)
    out = config.parent / "class.html"

    assert report(config, "--out", str(out)).exit_code == 0

    document = out.read_text(encoding="utf-8")
    assert 'id="students"' in document and 'href="#students"' in document
    links = [link for link in parsed(document).links if link.endswith(".html")]
    assert links == ["class.students/pair-01.html", "class.students/pair-02.html"]
    assert all((out.parent / link).is_file() for link in links)
    assert "<script" not in document and "&lt;script&gt;" in document


def test_a_lab_no_longer_in_the_report_loses_its_old_page_and_nothing_else(config: Path) -> None:
    history(config)
    out = config.parent / "report.html"
    folder = config.parent / "report.students"
    assert report(config, "--out", str(out)).exit_code == 0
    (folder / "notes.txt").write_text("mine", encoding="utf-8")

    assert report(config, "--out", str(out), "--lab", "pair-02").exit_code == 0

    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt", "pair-02.html"]


def test_on_standard_output_the_report_has_the_grades_and_says_where_the_pages_go(config: Path) -> None:
    history(config)

    result = report(config, "--out", "-")

    assert result.exit_code == 0
    assert 'id="students"' in result.stdout and "report.students" not in result.stdout
    assert "--out PATH" in result.stderr
    assert not (config.parent / "report.students").exists()


@pytest.mark.parametrize("config", ["provisioner"], indirect=True)
def test_with_the_provisioner_building_the_report_is_unchanged(config: Path) -> None:
    history(config)
    out = config.parent / "report.html"

    result = report(config, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "page per student" not in result.stdout
    assert not (config.parent / "report.students").exists()
    document = out.read_text(encoding="utf-8")
    assert 'id="students"' not in document and "Students' grades" not in document


def test_a_page_without_a_student_name_is_headed_by_the_lab_and_a_finished_class_says_so() -> None:
    everything = tuple(StepResult(step.step, StepStatus.DONE) for step in GUIDE.steps if not step.after_class)
    grade = grade_lab(GradeRules(GUIDE), [(T0, everything)], T0 + timedelta(minutes=1), lab="pair-09")

    page = render_student_page(grade, T0 + timedelta(minutes=1))

    assert "<h1>pair-09</h1>" in page
    assert "Every step is finished." in page and "Next:" not in page  # cleanup is pending
    assert [row[2] for row in parsed(page).rows][:-1] == ["done"] * (len(GUIDE.steps) - 1)
