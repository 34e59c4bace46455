"""What provisioning or tearing down one lab comes to: its steps, and the findings they answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditor.domain.model import Action, Finding, Step


@dataclass(frozen=True)
class LabChange:
    steps: tuple[Step, ...]
    # The findings the steps answer (a provisioning's plan is the audit's findings); none for a teardown.
    findings: tuple[Finding, ...] = ()

    @property
    def changed(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.changes)

    @property
    def deletions(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.action is Action.DELETE)


def described_changes(steps: Sequence[Step]) -> str:
    """A reset as recorded in the lab's history: what it changed, in a line."""
    if not steps:
        return "nothing to change"
    listed = ", ".join(f"{step.action.value} {step.kind} {_target(step)}" for step in steps)
    return f"{len(steps)} change{'s' if len(steps) != 1 else ''}: {listed}"


def _target(step: Step) -> str:
    return f"{step.owner}/{step.name}" if step.owner != step.name else step.name
