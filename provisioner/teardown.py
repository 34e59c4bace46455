"""Remove exactly what the lab spec names, in an order AWS accepts; rerunnable after any interruption.

Each kind of resource says what of it exists to remove and how (the same deletion the provisioner uses
for a student's extra policy); attached managed policies are detached, never deleted: they belong to
the account, not the lab.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import structlog
from botocore.exceptions import ClientError

from auditor.app.collect import collect_lab
from auditor.app.target import LabClients, LabTarget
from auditor.aws.accounts import AccountSessions
from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualLab
from auditor.domain.model import Step
from auditor.domain.spec import ExpectedLab
from auditor.resources.registry import REGISTRY

log = structlog.get_logger()


def plan_teardown(expected: ExpectedLab, actual: ActualLab) -> list[Step]:
    """Event rules, function, log group, marker bucket, then each role's policies before the role (pure)."""
    return REGISTRY.removals(expected, actual)


def teardown_plan(sessions: AccountSessions, target: LabTarget) -> list[Step]:
    return plan_teardown(target.expected, collect_lab(sessions, target, for_teardown=True))


def teardown(sessions: AccountSessions, target: LabTarget, steps: Sequence[Step]) -> None:
    clients = LabClients(sessions, target)
    for step in steps:
        _ignore_if_gone(functools.partial(REGISTRY[step.kind].delete, step, clients))
        log.info("teardown_step", lab=target.name, kind=step.kind, name=step.name)


def _ignore_if_gone(call: Callable[[], None]) -> None:
    # An interrupted earlier run may already have removed it: that is the goal, not an error.
    try:
        call()
    except ClientError as error:
        if not is_not_found(error):
            raise
