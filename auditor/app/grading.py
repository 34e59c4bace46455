"""The grade of a lab the students build (lab.md, "The guide as a rubric"; interface.md, `auditor grade`).

A pure function of the rubric, the class's rules (`due`, `ends`, `stuck_after`, `hardening`), the lab's
recorded step results over time and an instant `as_of`: no I/O, no clock. Evidence recorded after
`as_of` does not exist, so the same history and the same `as_of` give the same grade.

- **Which evidence.** Every step but the after-class ones (`cleanup`) is graded from the lab as it
  stood at its last audit by the cut-off: `due`, else `ends`, else `as_of`, or `as_of` when earlier. A
  step done or hardened then is `done` or `hardened`; otherwise, with `due`, a step done or hardened in
  an audit after `due` (and by `as_of`) is `late` and earns nothing; otherwise it is what that audit
  found (`wrong` or `missing`, with its feedback). Without `due` nothing is late: what was done after
  `ends` does not count. So the students' own teardown after the class never undoes their grade.
- **Order of judgement.** A step whose needs are not all done, hardened or late is `blocked`, not
  judged; its feedback names the first step to finish (following the blocked steps to the first one
  that can be worked on), by its title and id.
- **Hardening.** `hardened` (done, narrower than the guide, the lab working) earns the step's points
  with `hardening = "credit"`; with `"drift"` (the default, as the audit has it: a narrowing is drift)
  it keeps its status, counts as done for the steps that need it, and earns nothing.
- **After the class** (`cleanup`): `pending` until the class ends (`ends`, default the lab's expiry);
  then judged from the first audit after the end: what that audit found of the step (`done` when the
  function and both roles are gone), `missing` for a lab never built (no audit before the end found any
  of its steps other than missing). Never `late`. Still `pending` while no audit after the end exists.
- **No audit at all**: every step `missing` with "not audited yet" (after-class ones `pending` before
  the class ends).
- **Progress.** `current_step`: the first step, in the rubric's order, not done, hardened, late or
  pending. `stuck_since`: when no step of the class has been newly done (done or hardened in an audit
  and not in the audit before) for `stuck_after` by `as_of`, the last moment one was (the lab's first
  audit if none ever was); None when it is not stuck, has finished the class's steps, or was never
  audited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from auditor.common.clock import iso
from auditor.domain.config import ClassSettings
from auditor.domain.steps import Rubric, RubricStep, StepResult, StepStatus

SCHEMA = "auditor.grade/v1"
NOT_AUDITED = "not audited yet"

Hardening = Literal["credit", "drift"]
# One recorded audit of a lab: when (its end), and what it found of each step (the store's StepsAt).
Evidence = tuple[datetime, Sequence[StepResult]]

_STANDING = (StepStatus.DONE, StepStatus.HARDENED)  # what an audit can find that counts as done


@dataclass(frozen=True)
class GradeRules:
    """How a class is graded: its rubric and `[class]` settings."""

    rubric: Rubric
    due: datetime | None = None  # steps first done after it are late
    ends: datetime | None = None  # when after-class steps are judged; None: each lab's expiry
    stuck_after: timedelta = timedelta(minutes=15)
    hardening: Hardening = "drift"

    @classmethod
    def of(cls, rubric: Rubric, settings: ClassSettings) -> GradeRules:
        return cls(rubric, settings.due, settings.ends, settings.stuck_after, settings.hardening)


@dataclass(frozen=True)
class StepGrade:
    step: RubricStep
    status: StepStatus
    earned: int = 0
    first_done_at: datetime | None = None
    feedback: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step.step,
            "title": self.step.title,
            "points": self.step.points,
            "earned": self.earned,
            "status": self.status.value,
            "first_done_at": _stamp(self.first_done_at),
            "feedback": self.feedback,
        }


@dataclass(frozen=True)
class LabGrade:
    lab: str
    steps: tuple[StepGrade, ...]
    max_points: int
    current_step: str | None = None
    stuck_since: datetime | None = None
    info: Mapping[str, str] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(step.earned for step in self.steps)

    @property
    def student_name(self) -> str:
        return self.info.get("student_name", "")

    def __getitem__(self, step: str) -> StepGrade:
        for graded in self.steps:
            if graded.step.step == step:
                return graded
        raise KeyError(step)

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "info": dict(self.info),
            "points": self.points,
            "max_points": self.max_points,
            "current_step": self.current_step,
            "stuck_since": _stamp(self.stuck_since),
            "steps": [step.to_json() for step in self.steps],
        }


def grade_document(
    grades: Sequence[LabGrade], rubric: Rubric, as_of: datetime, generated_at: datetime
) -> dict[str, Any]:
    """interface.md's `auditor.grade/v1` document."""
    return {
        "schema": SCHEMA,
        "generated_at": iso(generated_at),
        "as_of": iso(as_of),
        "rubric": rubric.name,
        "labs": [grade.to_json() for grade in grades],
    }


def grade_lab(
    rules: GradeRules,
    history: Sequence[Evidence],
    as_of: datetime,
    *,
    lab: str,
    info: Mapping[str, str] | None = None,
    expires_at: datetime | None = None,
) -> LabGrade:
    """The lab's grade from its recorded step results (in any order), as of `as_of`.

    `expires_at`: the lab's expiry, when the class ends for it if `rules.ends` does not say."""
    audits = _Audits(history, as_of)
    ends = rules.ends or expires_at
    deadline = rules.due or ends
    cutoff = as_of if deadline is None else min(deadline, as_of)
    graded: dict[str, StepGrade] = {}
    blockers: dict[str, RubricStep] = {}  # a blocked step's first step to finish
    for step in rules.rubric.steps:
        if step.after_class:
            graded[step.step] = _after_class(step, rules, audits, ends, as_of)
        elif not audits:
            graded[step.step] = StepGrade(step, StepStatus.MISSING, feedback=NOT_AUDITED)
        elif (blocker := _first_to_finish(step, rules.rubric, graded, blockers)) is not None:
            blockers[step.step] = blocker
            feedback = f'Finish "{blocker.title}" ({blocker.step}) first: this step needs it.'
            graded[step.step] = StepGrade(step, StepStatus.BLOCKED, feedback=feedback)
        else:
            graded[step.step] = _class_step(step, rules, audits, cutoff)
    steps = tuple(graded[step.step] for step in rules.rubric.steps)
    current = next((grade.step for grade in steps if not _finished(grade.status)), None)
    return LabGrade(
        lab=lab,
        steps=steps,
        max_points=rules.rubric.max_points,
        current_step=current.step if current is not None else None,
        stuck_since=_stuck_since(rules, audits, as_of) if current and not current.after_class else None,
        info=dict(info or {}),
    )


# ------------------------------------------------------------------------------------------ helpers


class _Audits:
    """A lab's recorded audits up to `as_of`, oldest first, each as a map from step id to its result."""

    def __init__(self, history: Sequence[Evidence], as_of: datetime) -> None:
        kept = sorted((entry for entry in history if entry[0] <= as_of), key=lambda entry: entry[0])
        self.entries = [(at, {result.step: result for result in results}) for at, results in kept]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def by(self, moment: datetime) -> list[tuple[datetime, dict[str, StepResult]]]:
        return [entry for entry in self.entries if entry[0] <= moment]

    def after(self, moment: datetime) -> list[tuple[datetime, dict[str, StepResult]]]:
        return [entry for entry in self.entries if entry[0] > moment]


def _class_step(step: RubricStep, rules: GradeRules, audits: _Audits, cutoff: datetime) -> StepGrade:
    by_cutoff = audits.by(cutoff)
    first_done_at = _first_standing(step, by_cutoff)
    found = by_cutoff[-1][1].get(step.step) if by_cutoff else None
    if found is not None and found.status in _STANDING:
        return StepGrade(
            step, found.status, _earned(step, found.status, rules), first_done_at, _said(found, rules)
        )
    if (
        rules.due is not None
        and cutoff == rules.due
        and (late_at := _first_standing(step, audits.after(cutoff)))
    ):
        feedback = f"Done at {iso(late_at)}, after the due time {iso(rules.due)}: a late step earns nothing."
        return StepGrade(step, StepStatus.LATE, 0, late_at, feedback)
    if not by_cutoff:
        return StepGrade(step, StepStatus.MISSING, 0, None, f"not audited by {iso(cutoff)}")
    if found is None:
        at = by_cutoff[-1][0]
        return StepGrade(step, StepStatus.MISSING, 0, first_done_at, f"not judged by the audit at {iso(at)}")
    return StepGrade(step, found.status, 0, first_done_at, found.feedback)


def _after_class(
    step: RubricStep, rules: GradeRules, audits: _Audits, ends: datetime | None, as_of: datetime
) -> StepGrade:
    if ends is None:
        feedback = "judged after the class ends, which has no end yet ([class] ends or the lab's expiry)"
        return StepGrade(step, StepStatus.PENDING, feedback=feedback)
    if as_of < ends:
        return StepGrade(
            step, StepStatus.PENDING, feedback=f"judged at the first audit after the class ends ({iso(ends)})"
        )
    after = audits.after(ends)
    if not after:
        if not audits:
            return StepGrade(step, StepStatus.MISSING, feedback=NOT_AUDITED)
        feedback = f"the class ended at {iso(ends)}: judged at the first audit after it"
        return StepGrade(step, StepStatus.PENDING, feedback=feedback)
    at, results = after[0]
    found = results.get(step.step)
    if found is None:
        return StepGrade(step, StepStatus.MISSING, feedback=f"not judged by the audit at {iso(at)}")
    if found.status in _STANDING and not _ever_built(rules.rubric, audits.by(ends)):
        return StepGrade(
            step, StepStatus.MISSING, feedback="the lab was never built: there was nothing to clean up"
        )
    standing = found.status in _STANDING
    return StepGrade(
        step, found.status, _earned(step, found.status, rules), at if standing else None, _said(found, rules)
    )


def _first_to_finish(
    step: RubricStep, rubric: Rubric, graded: Mapping[str, StepGrade], blockers: Mapping[str, RubricStep]
) -> RubricStep | None:
    """The step to finish before this one can be judged; None when its needs are all done."""
    order = {candidate.step: position for position, candidate in enumerate(rubric.steps)}
    for need in sorted(step.needs, key=lambda need: order.get(need, len(order))):
        grade = graded.get(need)
        if grade is None or grade.status.counts_as_done:
            continue
        return blockers.get(need, grade.step)
    return None


def _first_standing(
    step: RubricStep, entries: Sequence[tuple[datetime, dict[str, StepResult]]]
) -> datetime | None:
    for at, results in entries:
        if (found := results.get(step.step)) is not None and found.status in _STANDING:
            return at
    return None


def _earned(step: RubricStep, status: StepStatus, rules: GradeRules) -> int:
    if status is StepStatus.DONE or (status is StepStatus.HARDENED and rules.hardening == "credit"):
        return step.points
    return 0


def _said(found: StepResult, rules: GradeRules) -> str | None:
    """The audit's feedback (the step judge words a hardened step by `[class] hardening` already); a
    hardened step recorded without one gets a sentence saying what it earns."""
    if found.status is not StepStatus.HARDENED or found.feedback:
        return found.feedback
    if rules.hardening == "credit":
        return "Narrower than the guide, and the lab still works: it earns the step."
    return (
        "Narrower than the guide, and the lab still works: this class grades the guide's own setting "
        '([class] hardening = "drift"), so it earns nothing.'
    )


def _finished(status: StepStatus) -> bool:
    return status.counts_as_done or status is StepStatus.PENDING


def _ever_built(rubric: Rubric, entries: Sequence[tuple[datetime, dict[str, StepResult]]]) -> bool:
    """Whether an audit found any of the class's steps as something other than missing."""
    class_steps = {step.step for step in rubric.steps if not step.after_class}
    return any(
        result.status is not StepStatus.MISSING
        for _, results in entries
        for step, result in results.items()
        if step in class_steps
    )


def _stuck_since(rules: GradeRules, audits: _Audits, as_of: datetime) -> datetime | None:
    if not audits:
        return None
    class_steps = {step.step for step in rules.rubric.steps if not step.after_class}
    last_new: datetime | None = None
    before: set[str] = set()
    for at, results in audits.entries:
        now = {step for step, result in results.items() if step in class_steps and result.status in _STANDING}
        if now - before:
            last_new = at
        before = now
    since = last_new or audits.entries[0][0]
    return since if as_of - since >= rules.stuck_after else None


def _stamp(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None
