"""The grade of a lab the students build, as a pure function of its recorded step results
(lab.md, "The guide as a rubric"; auditor/app/grading.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditor.app.grading import NOT_AUDITED, SCHEMA, Evidence, GradeRules, LabGrade, grade_document, grade_lab
from auditor.domain.config import ClassSettings
from auditor.domain.steps import Rubric, RubricStep, StepResult, StepStatus

DONE, HARDENED, WRONG, MISSING = StepStatus.DONE, StepStatus.HARDENED, StepStatus.WRONG, StepStatus.MISSING
BLOCKED, LATE, PENDING = StepStatus.BLOCKED, StepStatus.LATE, StepStatus.PENDING

T0 = datetime(2026, 12, 10, 16, 0, tzinfo=UTC)
DUE = T0 + timedelta(hours=1)  # 17:00
ENDS = T0 + timedelta(hours=2)  # 18:00

RUBRIC = Rubric(
    "guide",
    (
        RubricStep("dest-role", "Create role LambdaS3ListBuckets in account 2", 1),
        RubricStep("dest-trust", "Let account 1 assume LambdaS3ListBuckets", 2, needs=("dest-role",)),
        RubricStep("origin-role", "Create role Lambda-Assume-Roles in account 1, for Lambda", 2),
        RubricStep("function", "Create function Lambda-Assume-Roles", 2, needs=("origin-role",)),
        RubricStep("function-run", "Test: the output shows the buckets", 3, needs=("function", "dest-trust")),
        RubricStep("cleanup", "Tear down this lab", 2, after_class=True),
    ),
)
CLASS_STEPS = [step.step for step in RUBRIC.steps if not step.after_class]
FEEDBACK = {
    WRONG: "found role lambdas3listbuckets; the guide names it LambdaS3ListBuckets",
    MISSING: "not found",
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def audit(minutes: float, *, default: StepStatus = MISSING, **statuses: StepStatus) -> Evidence:
    """One recorded audit: every class step `default` unless named (dest_role=DONE); cleanup missing
    unless named."""
    found = {step: default for step in CLASS_STEPS} | {"cleanup": MISSING}
    found |= {name.replace("_", "-"): status for name, status in statuses.items()}
    return at(minutes), tuple(
        StepResult(step, status, FEEDBACK.get(status)) for step, status in found.items()
    )


def rules(**changes: object) -> GradeRules:
    settings: dict[str, object] = {"due": DUE, "ends": ENDS, "stuck_after": timedelta(minutes=15)}
    settings.update(changes)
    return GradeRules(RUBRIC, **settings)  # type: ignore[arg-type]


def grade(history: list[Evidence], as_of: datetime = DUE, **changes: object) -> LabGrade:
    return grade_lab(rules(**changes), history, as_of, lab="pair-07", info={"student_name": "Ada Lovelace"})


def statuses(graded: LabGrade) -> dict[str, StepStatus]:
    return {step.step.step: step.status for step in graded.steps}


# ------------------------------------------------------------------------------------------ statuses


def test_a_lab_with_every_step_done_earns_every_class_point_and_waits_for_cleanup() -> None:
    graded = grade([audit(5, default=DONE)])

    assert statuses(graded) == {step: DONE for step in CLASS_STEPS} | {"cleanup": PENDING}
    assert graded.points == RUBRIC.max_points - 2
    assert graded.max_points == 12
    assert all(step.feedback is None for step in graded.steps if step.status is DONE)
    assert (
        graded["cleanup"].feedback == "judged at the first audit after the class ends (2026-12-10T18:00:00Z)"
    )
    assert (graded.current_step, graded.stuck_since) == (None, None)


@pytest.mark.parametrize(("hardening", "earned"), [("credit", 2), ("drift", 0)])
def test_a_hardened_step_counts_as_done_and_earns_only_under_credit(hardening: str, earned: int) -> None:
    graded = grade([audit(5, default=DONE, dest_trust=HARDENED)], hardening=hardening)

    trust = graded["dest-trust"]
    assert (trust.status, trust.earned, trust.first_done_at) == (HARDENED, earned, at(5))
    assert graded["function-run"].status is DONE  # a hardened step is done for the steps that need it
    assert graded.current_step is None
    # The audit recorded no sentence: the grade says what the step earns.
    assert trust.feedback is not None
    assert ("earns nothing" in trust.feedback) is (hardening == "drift")


def test_a_hardened_steps_recorded_feedback_is_kept() -> None:
    said = "Narrower than the guide, and the lab still works (trusts only the role): it earns the step."
    history = [(at(5), (StepResult("dest-role", DONE), StepResult("dest-trust", HARDENED, said)))]

    assert grade(history, hardening="credit")["dest-trust"].feedback == said


def test_the_default_hardening_is_the_audits_drift() -> None:
    assert GradeRules.of(RUBRIC, ClassSettings()).hardening == "drift"
    graded = grade_lab(
        GradeRules.of(RUBRIC, ClassSettings(due=DUE, ends=ENDS, hardening="credit")),
        [audit(5, default=DONE, dest_trust=HARDENED)],
        DUE,
        lab="pair-07",
    )
    assert graded["dest-trust"].earned == 2


def test_a_wrong_step_keeps_the_audits_feedback_and_blocks_what_needs_it() -> None:
    graded = grade([audit(5, default=DONE, dest_trust=WRONG)])

    trust, run = graded["dest-trust"], graded["function-run"]
    assert (trust.status, trust.earned, trust.feedback) == (WRONG, 0, FEEDBACK[WRONG])
    assert (run.status, run.earned) == (BLOCKED, 0)
    assert (
        run.feedback
        == 'Finish "Let account 1 assume LambdaS3ListBuckets" (dest-trust) first: this step needs it.'
    )
    assert graded.current_step == "dest-trust"


def test_a_blocked_step_names_the_first_step_to_finish_down_the_chain() -> None:
    graded = grade([audit(5, dest_role=DONE, dest_trust=DONE)])  # origin-role missing: function blocked

    assert statuses(graded) == {
        "dest-role": DONE,
        "dest-trust": DONE,
        "origin-role": MISSING,
        "function": BLOCKED,
        "function-run": BLOCKED,
        "cleanup": PENDING,
    }
    # function-run needs function, which is blocked by origin-role: the student starts there.
    assert graded["function-run"].feedback is not None
    assert (
        '"Create role Lambda-Assume-Roles in account 1, for Lambda" (origin-role)'
        in graded["function-run"].feedback
    )
    assert graded["function"].feedback == graded["function-run"].feedback
    assert graded.current_step == "origin-role"
    assert graded.points == 3


def test_a_blocked_step_is_not_judged_even_when_the_audit_found_it_done() -> None:
    graded = grade([audit(5, default=DONE, dest_role=MISSING)])

    assert (graded["dest-trust"].status, graded["dest-trust"].earned) == (BLOCKED, 0)
    assert graded["dest-trust"].first_done_at is None
    assert graded["function-run"].status is BLOCKED
    assert "(dest-role)" in (graded["function-run"].feedback or "")


def test_a_lab_never_audited_has_every_step_missing_and_cleanup_pending() -> None:
    graded = grade([])

    assert statuses(graded) == {step: MISSING for step in CLASS_STEPS} | {"cleanup": PENDING}
    assert all(step.feedback == NOT_AUDITED for step in graded.steps if step.status is MISSING)
    assert (graded.points, graded.current_step, graded.stuck_since) == (0, "dest-role", None)
    # After the class, still never audited: cleanup is missing too (a lab never built earns nothing).
    assert grade([], as_of=ENDS + timedelta(hours=1))["cleanup"].status is MISSING


# -------------------------------------------------------------------------------------- when and late


def test_first_done_at_is_the_first_audit_where_the_step_stood() -> None:
    history = [audit(0), audit(10, dest_role=DONE), audit(20, dest_role=DONE, dest_trust=HARDENED)]

    graded = grade(history)

    assert graded["dest-role"].first_done_at == at(10)
    assert graded["dest-trust"].first_done_at == at(20)
    assert graded["origin-role"].first_done_at is None


def test_a_step_first_done_after_due_is_late_earns_nothing_and_counts_for_what_needs_it() -> None:
    history = [audit(30, dest_role=DONE), audit(70, dest_role=DONE, dest_trust=DONE)]  # 16:30, 17:10

    graded = grade(history, as_of=at(90))

    trust = graded["dest-trust"]
    assert (trust.status, trust.earned, trust.first_done_at) == (LATE, 0, at(70))
    assert trust.feedback == (
        "Done at 2026-12-10T17:10:00Z, after the due time 2026-12-10T17:00:00Z: a late step earns nothing."
    )
    assert graded["dest-role"].status is DONE
    assert graded["function-run"].status is BLOCKED  # blocked by origin-role, not by the late trust
    assert "(origin-role)" in (graded["function-run"].feedback or "")


def test_before_due_nothing_is_late_and_the_latest_audit_counts() -> None:
    history = [audit(30, dest_role=DONE), audit(50, dest_role=DONE, dest_trust=DONE)]

    assert grade(history, as_of=at(55))["dest-trust"].status is DONE
    assert grade(history, as_of=at(40))["dest-trust"].status is MISSING


def test_the_lab_as_it_stood_at_due_is_graded_and_a_later_breakage_changes_nothing() -> None:
    history = [audit(30, default=DONE), audit(90, dest_trust=WRONG)]  # the students tore it up at 17:30

    graded = grade(history, as_of=at(100))

    assert all(graded[step].status is DONE for step in CLASS_STEPS)
    assert graded.points == 10


def test_without_due_the_class_steps_are_graded_at_the_end_of_the_class_and_nothing_is_late() -> None:
    history = [
        audit(30, dest_role=DONE),
        audit(110, dest_role=DONE, dest_trust=DONE),
        audit(130, default=DONE),
    ]

    graded = grade(history, as_of=at(150), due=None)

    assert graded["dest-trust"].status is DONE  # done at 17:50, before the class ended at 18:00
    assert graded["origin-role"].status is MISSING  # done only at 18:10: after the class, not late
    assert not any(step.status is LATE for step in graded.steps)


# -------------------------------------------------------------------------------------------- cleanup


def test_cleanup_is_pending_before_the_class_ends_and_judged_from_the_first_audit_after() -> None:
    history = [audit(30, default=DONE), audit(121, default=DONE, cleanup=WRONG), audit(140, cleanup=DONE)]

    assert grade(history, as_of=at(119))["cleanup"].status is PENDING
    # The first audit after 18:00 found the lab still there: the later, clean one does not count.
    judged = grade(history, as_of=at(150))["cleanup"]
    assert (judged.status, judged.earned, judged.feedback) == (WRONG, 0, FEEDBACK[WRONG])

    cleaned = [audit(30, default=DONE), audit(125, cleanup=DONE), audit(140, default=DONE, cleanup=WRONG)]
    done = grade(cleaned, as_of=at(150))["cleanup"]
    assert (done.status, done.earned, done.first_done_at, done.feedback) == (DONE, 2, at(125), None)
    # The students' teardown after the class never undoes the class's steps.
    assert grade(cleaned, as_of=at(150)).points == 12


def test_cleanup_waits_for_an_audit_after_the_end_and_is_never_late() -> None:
    history = [audit(30, default=DONE)]

    waiting = grade(history, as_of=at(130))["cleanup"]
    assert waiting.status is PENDING
    assert waiting.feedback == "the class ended at 2026-12-10T18:00:00Z: judged at the first audit after it"

    done = grade([*history, audit(180, cleanup=DONE)], as_of=at(200))["cleanup"]
    assert (done.status, done.earned) == (DONE, 2)  # long after due: cleanup is never late


def test_cleanup_of_a_lab_never_built_earns_nothing() -> None:
    graded = grade([audit(30), audit(130, cleanup=DONE)], as_of=at(140))

    assert (graded["cleanup"].status, graded["cleanup"].earned) == (MISSING, 0)


def test_the_class_ends_at_the_labs_expiry_when_the_class_does_not_say() -> None:
    expiry = at(100)
    history = [audit(30, default=DONE), audit(105, cleanup=DONE)]
    graded = grade_lab(rules(ends=None), history, at(110), lab="pair-07", expires_at=expiry)
    assert graded["cleanup"].status is DONE

    no_end = grade_lab(rules(ends=None, due=None), history, at(110), lab="pair-07")
    assert no_end["cleanup"].status is PENDING


# ------------------------------------------------------------------------------------------- progress


def test_current_step_and_stuck_since() -> None:
    history = [audit(0), audit(5, dest_role=DONE), audit(10, dest_role=DONE), audit(31, dest_role=DONE)]

    stuck = grade(history, as_of=at(31))
    assert (stuck.current_step, stuck.stuck_since) == ("dest-trust", at(5))

    assert grade(history, as_of=at(15)).stuck_since is None  # 10 minutes with nothing new: not yet
    assert grade(history[:1], as_of=at(20)).stuck_since == at(0)  # nothing ever done: since the first audit
    moving = [*history, audit(32, dest_role=DONE, dest_trust=DONE)]
    assert grade(moving, as_of=at(40)).stuck_since is None
    assert grade(moving, as_of=at(40)).current_step == "origin-role"


def test_a_step_done_again_after_it_broke_is_new_progress() -> None:
    history = [audit(0, dest_role=DONE), audit(10), audit(20, dest_role=DONE)]

    assert grade(history, as_of=at(36)).stuck_since == at(20)


def test_a_lab_with_every_class_step_done_is_not_stuck() -> None:
    assert grade([audit(0, default=DONE)], as_of=DUE).stuck_since is None


# --------------------------------------------------------------------------------------- reproducible


def test_evidence_after_as_of_does_not_exist() -> None:
    history = [audit(10, dest_role=DONE), audit(40, dest_role=DONE, dest_trust=WRONG)]
    as_of = at(45)
    before = grade(history, as_of=as_of)

    later = [*history, audit(50, default=DONE), audit(130, cleanup=DONE)]

    assert grade(later, as_of=as_of) == before
    assert grade(list(reversed(later)), as_of=as_of) == before  # the order it is handed in is no matter
    assert grade(later, as_of=at(60)) != before


def test_the_document_is_interface_mds_grade_v1() -> None:
    graded = grade([audit(5, dest_role=DONE, dest_trust=WRONG)], as_of=at(30))

    document = grade_document([graded], RUBRIC, at(30), generated_at=at(31))

    assert document["schema"] == SCHEMA == "auditor.grade/v1"
    assert (document["generated_at"], document["as_of"], document["rubric"]) == (
        "2026-12-10T16:31:00Z",
        "2026-12-10T16:30:00Z",
        "guide",
    )
    [lab] = document["labs"]
    assert list(lab) == ["lab", "info", "points", "max_points", "current_step", "stuck_since", "steps"]
    assert (lab["lab"], lab["info"], lab["points"], lab["max_points"]) == (
        "pair-07",
        {"student_name": "Ada Lovelace"},
        1,
        12,
    )
    assert (lab["current_step"], lab["stuck_since"]) == ("dest-trust", "2026-12-10T16:05:00Z")
    assert lab["steps"][0] == {
        "step": "dest-role",
        "title": "Create role LambdaS3ListBuckets in account 2",
        "points": 1,
        "earned": 1,
        "status": "done",
        "first_done_at": "2026-12-10T16:05:00Z",
        "feedback": None,
    }
    assert lab["steps"][1]["status"] == "wrong" and lab["steps"][1]["feedback"] == FEEDBACK[WRONG]
