"""The guide's steps as a rubric (lab.md, "The guide as a rubric"): the rubric as data, and what one audit
found of each step.

A rubric is an ordered list of steps, each with its points and the steps it needs; which findings fail
it, and which mean it was done narrower than the guide asks (`hardened`), are data too, by finding
code (auditor/resources/kinds/<kind>.toml). The shipped rubric is the guide's (auditor/domain/rubrics/
guide.toml); an instructor's own is a TOML file in the same form.

An audit judges each step of the lab as it stands (`StepResult`: done, hardened, wrong or missing,
with a sentence a student can act on); the grade (auditor/app/grading.py) reads those results over
the recorded history: when each step was first done, which are blocked by a step they need, late
after `due`, or pending until the class ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StepStatus(StrEnum):
    DONE = "done"
    HARDENED = "hardened"  # done, narrower than the guide, and the lab still works
    WRONG = "wrong"  # the resource is there, but not as the step asks
    MISSING = "missing"
    BLOCKED = "blocked"  # a step it needs is not done: not judged (the grade decides this)
    LATE = "late"  # done only after `due` (the grade decides this)
    PENDING = "pending"  # judged after the class ends (cleanup), and it has not ended

    @property
    def counts_as_done(self) -> bool:
        """What a step that needs this one accepts (lab.md: done, hardened or late)."""
        return self in (StepStatus.DONE, StepStatus.HARDENED, StepStatus.LATE)


@dataclass(frozen=True)
class RubricStep:
    step: str  # its id: `dest-role`
    title: str  # as the student reads it: "Create role LambdaS3ListBuckets in account 2"
    points: int
    needs: tuple[str, ...] = ()  # the ids of the steps it needs, earlier in the rubric
    fails_on: tuple[str, ...] = ()  # finding codes that make it `wrong`
    hardened_by: tuple[str, ...] = ()  # finding codes that mean narrower than the guide, lab working
    after_class: bool = False  # judged only after the class ends (the guide's teardown)
    # Which resource of the lab the step is about, since a finding code does not say which role it is
    # about (its subject does): one of SUBJECTS, or None when the rubric does not say.
    subject: str | None = None


# The values of `RubricStep.subject`: the lab's destination role (with its trust and policies), its
# origin role, its function (with its code and its run), or the lab as a whole (the guide's teardown).
SUBJECTS = ("destination_role", "origin_role", "function", "lab")


@dataclass(frozen=True)
class Rubric:
    name: str  # "guide", or the file it was read from
    steps: tuple[RubricStep, ...]

    def __getitem__(self, step: str) -> RubricStep:
        for candidate in self.steps:
            if candidate.step == step:
                return candidate
        raise KeyError(step)

    def __contains__(self, step: object) -> bool:
        return any(candidate.step == step for candidate in self.steps)

    @property
    def ids(self) -> tuple[str, ...]:
        """The steps' ids, in the rubric's order."""
        return tuple(step.step for step in self.steps)

    @property
    def max_points(self) -> int:
        return sum(step.points for step in self.steps)


@dataclass(frozen=True)
class StepResult:
    """What one audit found of one step of the rubric, as the lab stood then."""

    step: str
    status: StepStatus  # done, hardened, wrong or missing (never blocked, late or pending: the grade's)
    feedback: str | None = None  # one sentence the student can act on; None when done

    def to_json(self) -> dict[str, object]:
        return {"step": self.step, "status": self.status.value, "feedback": self.feedback}
