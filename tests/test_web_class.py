"""The class's progress board on the daemon's page and `/api/class` (interface.md, "Students build it"):
a row a student, a cell a step, the stuck first; the grades as `auditor.grade/v1`; nothing of it when
the provisioner builds the labs. On SQLite and PostgreSQL (see db_fixtures.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from auditor.app.health import Metrics
from auditor.domain.config import Config, load_config
from auditor.domain.model import LabAudit, Trigger, Verdict
from auditor.domain.rubric_file import shipped_rubric
from auditor.domain.steps import StepResult, StepStatus
from auditor.store import Store
from auditor.web import ClassView, create_app
from conftest import write_config

TOKEN = "class-token-7d2e"
GUIDE = shipped_rubric()
SCRIPT = "<script>alert(1)</script>"
WRONG_ROLE = "found role lambdas3listbuckets; the guide names it LambdaS3ListBuckets"

LABS = f"""
[[labs]]
name = "pair-01"
origin = {{ account_id = "100000000001" }}
destination = {{ account_id = "200000000001" }}
info = {{ student_name = "Ada Lovelace" }}

[[labs]]
name = "pair-02"
origin = {{ account_id = "100000000002" }}
destination = {{ account_id = "200000000002" }}
info = {{ student_name = "{SCRIPT}" }}

[[labs]]
name = "pair-03"
origin = {{ account_id = "100000000003" }}
destination = {{ account_id = "200000000003" }}
info = {{ student_name = "Charles Babbage" }}
"""
STUDENTS = """
[class]
built_by = "students"
"""


def steps(done: int, wrong: str | None = None) -> tuple[StepResult, ...]:
    """The first `done` steps of the class done, the next one wrong (with `wrong`) or missing."""
    results = []
    for index, step in enumerate(GUIDE.steps):
        if index < done and not step.after_class:
            results.append(StepResult(step.step, StepStatus.DONE))
        elif index == done and wrong:
            results.append(StepResult(step.step, StepStatus.WRONG, wrong))
        else:
            results.append(StepResult(step.step, StepStatus.MISSING, f"{step.title}: not found"))
    return tuple(results)


def record(store: Store, lab: str, at: datetime, done: int, wrong: str | None = None) -> None:
    number = int(lab[-2:])
    audit = LabAudit(
        lab,
        f"1{number:011d}",
        f"2{number:011d}",
        Verdict.DRIFTED,
        started_at=at - timedelta(seconds=5),
        finished_at=at,
        steps=steps(done, wrong),
    )
    store.record_audit(audit, Trigger.EVENT)


def fill(store: Store, now: datetime) -> None:
    """pair-01 (Ada) is working: 3 steps, the last one 5 minutes ago, the role of the fourth misnamed.
    pair-02 is stuck: 2 steps done 50 minutes ago, nothing since. pair-03 was never audited."""
    for number in (1, 2, 3):
        store.ensure_lab(f"pair-0{number}", f"1{number:011d}", f"2{number:011d}", now + timedelta(hours=4))
    record(store, "pair-01", now - timedelta(minutes=60), done=1)
    record(store, "pair-01", now - timedelta(minutes=5), done=3, wrong=WRONG_ROLE)
    record(store, "pair-02", now - timedelta(minutes=50), done=2)
    record(store, "pair-02", now - timedelta(minutes=2), done=2)


def config_of(tmp_path: Path, extra: str) -> Config:
    return load_config(write_config(tmp_path, "", LABS, extra=extra), env={})


@pytest.fixture
def students(tmp_path: Path) -> Config:
    return config_of(tmp_path, STUDENTS)


@pytest.fixture
def client(store: Store, students: Config) -> Iterator[TestClient]:
    fill(store, datetime.now(UTC))
    view = ClassView(lambda: store, config=students)
    with TestClient(create_app(view, lambda: (True, ""), Metrics(), token=None)) as test_client:
        yield test_client


def board_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="student-row[^"]*" data-lab="([^"]+)"', html)


def cell(html: str, lab: str, step: str) -> str:
    row = re.search(rf'<tr class="student-row[^"]*" data-lab="{lab}".*?</tr>', html, re.DOTALL)
    assert row, lab
    found = re.search(rf'<td class="step [a-z]+" data-step="{step}"[^>]*>.*?</td>', row.group(0))
    assert found, (lab, step)
    return found.group(0)


def test_the_overview_shows_the_board_with_the_stuck_student_first(client: TestClient) -> None:
    html = client.get("/").text
    assert "Class progress" in html
    # Stuck first; then the fewest points (pair-03, never audited, has none), then the most.
    assert board_rows(html) == ["pair-02", "pair-03", "pair-01"]
    assert '<tr class="student-row stuck" data-lab="pair-02" data-stuck="yes">' in html
    assert '<tr class="student-row" data-lab="pair-01" data-stuck="no">' in html
    assert "1 stuck" in html
    # A column a step of the rubric, in its order; a cell a step with its status and earned points.
    heads = re.findall(r'<th class="step-head"[^>]*>([a-z-]+)</th>', html)
    assert heads == list(GUIDE.ids)
    first = GUIDE.steps[0]
    done = cell(html, "pair-01", first.step)
    assert 'data-status="done"' in done and f"{first.points}/{first.points}" in done
    wrong = cell(html, "pair-01", GUIDE.steps[3].step)
    assert 'data-status="wrong"' in wrong and f'title="{WRONG_ROLE}"' in wrong
    assert f"0/{GUIDE.steps[3].points}" in wrong
    blocked = cell(html, "pair-01", "function-run")
    assert 'data-status="blocked"' in blocked
    assert 'data-status="missing"' in cell(html, "pair-03", first.step)
    assert 'title="not audited yet"' in cell(html, "pair-03", first.step)
    assert 'data-status="pending"' in cell(html, "pair-01", "cleanup")
    points = sum(step.points for step in GUIDE.steps[:3])
    assert f'<td class="points">{points}/{GUIDE.max_points}</td>' in html
    assert f"<code>{GUIDE.steps[3].step}</code>" in html  # Ada's current step
    assert 'class="stuck-since"' in html and "stuck for 50 min" in html
    assert 'href="/labs/pair-02"' in html


def test_a_student_name_is_escaped(client: TestClient) -> None:
    html = client.get("/").text
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<div class="student-name">Ada Lovelace</div>' in html


def test_a_step_newly_done_shows_at_the_next_refresh(client: TestClient, store: Store) -> None:
    first = client.get("/")
    etag = first.headers["etag"]
    assert 'data-status="wrong"' in cell(first.text, "pair-01", GUIDE.steps[3].step)

    record(store, "pair-01", datetime.now(UTC), done=4)

    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag
    assert 'data-status="done"' in cell(again.text, "pair-01", GUIDE.steps[3].step)


def test_api_class_is_the_grade_document(client: TestClient) -> None:
    response = client.get("/api/class")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    document = response.json()
    assert list(document) == ["schema", "generated_at", "as_of", "rubric", "labs"]
    assert (document["schema"], document["rubric"]) == ("auditor.grade/v1", "guide")
    # The configuration's order, as `auditor grade --format json` has it.
    assert [lab["lab"] for lab in document["labs"]] == ["pair-01", "pair-02", "pair-03"]
    ada, stuck, never = document["labs"]
    assert ada["info"] == {"student_name": "Ada Lovelace"} and stuck["info"]["student_name"] == SCRIPT
    assert ada["points"] == sum(step.points for step in GUIDE.steps[:3])
    assert ada["current_step"] == GUIDE.steps[3].step and ada["stuck_since"] is None
    assert ada["steps"][3]["status"] == "wrong" and ada["steps"][3]["feedback"] == WRONG_ROLE
    assert stuck["stuck_since"] is not None
    assert {step["feedback"] for step in never["steps"][:-1]} == {"not audited yet"}


def test_api_class_requires_the_token_when_one_is_set(store: Store, students: Config) -> None:
    fill(store, datetime.now(UTC))
    view = ClassView(lambda: store, config=students)
    with TestClient(create_app(view, lambda: (True, ""), Metrics(), token=TOKEN)) as client:
        refused = client.get("/api/class")
        assert refused.status_code == 401 and "pair-01" not in refused.text
        assert client.get("/api/class", auth=("teacher", "guess")).status_code == 401
        bearer = client.get("/api/class", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and bearer.json()["schema"] == "auditor.grade/v1"
        assert client.get("/api/class", auth=("teacher", TOKEN)).status_code == 200


@pytest.mark.parametrize("built_by", ["provisioner", None])
def test_with_the_provisioner_there_is_no_board_and_api_class_is_404(
    store: Store, tmp_path: Path, built_by: str | None
) -> None:
    fill(store, datetime.now(UTC))
    config = config_of(tmp_path, f'[class]\nbuilt_by = "{built_by}"\n' if built_by else "")
    for view in (ClassView(lambda: store, config=config), ClassView(lambda: store)):
        with TestClient(create_app(view, lambda: (True, ""), Metrics(), token=None)) as client:
            html = client.get("/").text
            assert "Class progress" not in html and "student-row" not in html
            assert 'data-lab="pair-01"' in html  # the class overview as ever
            missing = client.get("/api/class")
            assert missing.status_code == 404 and "provisioner" in missing.json()["error"]
