"""Remove exactly what the lab spec names, in an order AWS accepts; rerunnable after any interruption.

Each lab is removed under its lease and its life cycle recorded (teardown started, torn down, failed);
the operator's end of the change events is released once no lab still standing needs it.

Each kind of resource says what of it exists to remove and how (the same deletion the provisioner uses
for a student's extra policy); attached managed policies are detached, never deleted: they belong to
the account, not the lab. When students build the lab, only the project's own parts go (provisioner/scope.py)
unless the students' resources are asked for too (`--students-resources`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from auditor.app.collect import collect_lab
from auditor.app.context import Context
from auditor.app.fleet import LabResult, Progress, describe_fault, run_each
from auditor.app.leases import LabLeases, Purpose, command_leases, process_owner
from auditor.app.target import LabClients, LabTarget
from auditor.aws.accounts import AccountSessions
from auditor.aws.events import lab_accounts, release_operator_bus
from auditor.common.clock import utc_now
from auditor.common.errors import is_not_found
from auditor.domain.actual import ActualLab
from auditor.domain.changes import LabChange
from auditor.domain.config import Config, LabConfig
from auditor.domain.model import Step
from auditor.domain.spec import ExpectedLab
from auditor.resources.registry import REGISTRY
from auditor.store import LabState, Store
from provisioner.scope import Kinds, removed_kinds, steps_of

log = structlog.get_logger()


def plan_teardown(expected: ExpectedLab, actual: ActualLab) -> list[Step]:
    """Event rules, function, log group, marker bucket, then each role's policies before the role (pure)."""
    return REGISTRY.removals(expected, actual)


def teardown_plan(sessions: AccountSessions, target: LabTarget, kinds: Kinds = None) -> list[Step]:
    """The removals of the lab's resources of those kinds (None: every kind)."""
    return steps_of(kinds, plan_teardown(target.expected, collect_lab(sessions, target, for_teardown=True)))


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


def expired_targets(store: Store, targets: Sequence[LabTarget], now: datetime) -> list[LabTarget]:
    expired = set(store.expired_labs(now))
    return [target for target in targets if target.name in expired]


def teardown_expired(
    context: Context,
    store: Store,
    targets: Sequence[LabTarget],
    now: datetime,
    plans: Mapping[str, LabChange] | None = None,
    held: LabLeases | None = None,
    progress: Progress | None = None,
    *,
    students_resources: bool = False,
) -> list[LabResult[LabChange]]:
    """Tear down every lab past its expiry at `now`, however long ago that was: the database knows."""
    due = expired_targets(store, targets, now)
    for target in due:
        store.mark_expired(target.name, now)
    if not due:
        return []
    return teardown_targets(
        context,
        due,
        dry_run=False,
        store=store,
        plans=plans,
        held=held,
        progress=progress,
        students_resources=students_resources,
    )


def teardown_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    plans: Mapping[str, LabChange] | None = None,
    held: LabLeases | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
    students_resources: bool = False,
) -> list[LabResult[LabChange]]:
    """Remove each lab's resources; `plans` are the removals already shown and approved under the
    leases `held`. With a store and no leases given, each lab's lease is taken here for its own
    teardown, not waited for: this process's, or `owner`'s (a replica's job, which takes its own
    lease back when it is retried). When students build the lab, only the project's own parts go,
    unless `students_resources`."""
    kinds = removed_kinds(context.config, students_resources=students_resources)
    if store is None or held is not None or dry_run:
        return _tear_down_each(context, targets, dry_run, store, plans, held, progress, kinds)
    with command_leases(store, Purpose.TEARDOWN, targets, per_lab=True, owner=owner) as own:
        return _tear_down_each(context, targets, False, store, plans, own, progress, kinds)


def _tear_down_each(
    context: Context,
    targets: Sequence[LabTarget],
    dry_run: bool,
    store: Store | None,
    plans: Mapping[str, LabChange] | None,
    held: LabLeases | None,
    progress: Progress | None,
    kinds: Kinds,
) -> list[LabResult[LabChange]]:
    def teardown_one(target: LabTarget) -> LabChange:
        if held is not None:
            held.hold(target.name)
        try:
            return plan_or_remove(target)
        finally:
            if held is not None and not dry_run:
                held.done(target.name)

    def plan_or_remove(target: LabTarget) -> LabChange:
        if plans is not None and target.name in plans:
            steps = list(plans[target.name].steps)
        else:
            steps = teardown_plan(context.sessions, target, kinds)
        if dry_run:
            return LabChange(tuple(steps))
        if store is not None:
            holder = (held.owner or held.leases.owner) if held is not None else process_owner()
            store.mark_teardown_started(target.name, holder, utc_now())
        try:
            teardown(context.sessions, target, steps)
        except Exception as error:
            if store is not None:
                store.record_teardown_failed(target.name, f"{type(error).__name__}: {error}", utc_now())
            raise
        if store is not None:
            store.record_torn_down(target.name, utc_now())
        log.info("lab_torn_down", lab=target.name, removed=len(steps))
        return LabChange(tuple(steps))

    label = "planning teardown" if dry_run else "tearing down"
    outcomes = run_each(
        targets, lambda t: t.name, teardown_one, context.config.audit.concurrency, label, progress
    )
    if not dry_run and context.config.events is not None:
        torn_down = {outcome.name for outcome in outcomes if outcome.ok}
        in_use = lab_accounts(labs_in_use(context.config, store, torn_down))
        try:
            release_operator_bus(context.config.events, context.sessions, context.endpoint_url, in_use)
        except (ClientError, BotoCoreError) as error:  # the labs are down; the next teardown tries again
            log.warning("operator_bus_not_released", error=describe_fault(error))
    return outcomes


def labs_in_use(config: Config, store: Store | None, torn_down: set[str]) -> list[LabConfig]:
    """The configured labs still up: not torn down now, nor (as the database says) before or never built."""
    gone = {LabState.TORN_DOWN, LabState.PLANNED}
    states = {status.name: status.state for status in store.status()} if store is not None else {}
    return [lab for lab in config.labs if lab.name not in torn_down and states.get(lab.name) not in gone]
