"""Carry out a plan against the lab's accounts, in order, idempotently (each kind applies its own steps)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog

from auditor.app.target import LabClients, LabTarget
from auditor.aws.accounts import AccountSessions
from auditor.domain.model import Step
from auditor.resources.base import Sleep
from auditor.resources.registry import REGISTRY

log = structlog.get_logger()


def apply(
    sessions: AccountSessions, target: LabTarget, steps: Sequence[Step], sleep: Sleep = time.sleep
) -> None:
    """Apply the changing steps in plan order."""
    clients = LabClients(sessions, target)
    for step in steps:
        if step.changes:
            REGISTRY[step.kind].apply(step, clients, target.expected, sleep)
            log.info(
                "provision_step", lab=target.name, action=step.action.value, kind=step.kind, name=step.name
            )
