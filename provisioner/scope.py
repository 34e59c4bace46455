"""What of a lab the project builds and removes (interface.md, "Students build it").

With `[class] built_by = "provisioner"` (the default) the project builds, resets and tears down everything
the spec names. With `built_by = "students"` the students build the lab by hand, and the project never
creates, changes or deletes their resources (their roles, policies, function and log group are what is
being watched and graded): it sets up and removes only its own parts, the kinds of `PROJECT_PARTS`: the
marker bucket in the destination account, which proves that a listing crossed accounts, and the
change-event rules (with their execution role where one sends to another Region) when `[events]` is on. `auditor teardown --students-resources` removes the students'
resources too. This and auditor/resources/base.py's `provisioned_kinds` decide it; the plan, the teardown
and the audit's fixes ask them.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.domain.config import Config
from auditor.domain.model import Finding, Step
from auditor.resources.base import PROJECT_PARTS, Kinds  # the one list: `auditor permissions` reads it too


def removed_kinds(config: Config, *, students_resources: bool = False) -> Kinds:
    """The kinds a teardown removes: every one, or only the project's parts when students build the lab
    and `--students-resources` was not given."""
    return PROJECT_PARTS if config.classroom.students_build and not students_resources else None


def steps_of(kinds: Kinds, steps: Sequence[Step]) -> list[Step]:
    return list(steps) if kinds is None else [step for step in steps if step.kind in kinds]


def findings_of(kinds: Kinds, findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """The findings about the resources of those kinds (those the plan's steps may answer)."""
    if kinds is None:
        return tuple(findings)
    return tuple(f for f in findings if f.subject is not None and f.subject.kind in kinds)


def students_build_notice(config: Config, *, teardown: bool = False) -> str | None:
    """What the operator hears when the project touches only its own parts (None: it builds everything)."""
    if not config.classroom.students_build:
        return None
    without_events = "" if config.events is not None else " (no [events]: no event rules)"
    if teardown:
        return (
            f"students build the lab: remove the marker bucket and event rules only{without_events}; "
            "--students-resources removes the students' roles, policies, function and log group too"
        )
    return f"students build the lab: set up the marker bucket and event rules only{without_events}"
