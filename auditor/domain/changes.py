"""What provisioning or tearing down one lab comes to: its steps, and the findings they answer."""

from __future__ import annotations

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
