"""Provision labs: plan each (the audit's findings and their fixes), then apply the plan under the
lab's lease, recording each lab's life cycle (provisioning, active, reset, failed) in the history.

A lab already as the spec says is neither provisioned nor reset again; a run killed after its last
change is recorded up by the next one, which has nothing left to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from auditor.app.context import Context
from auditor.app.fleet import LAB_FAULTS, LabResult, Progress, describe_fault, run_each
from auditor.app.leases import LabLeases
from auditor.app.recording import register_labs
from auditor.app.target import LabTarget
from auditor.aws.events import lab_accounts, wire_operator_bus
from auditor.common.clock import utc_now
from auditor.domain.changes import LabChange, described_changes
from auditor.domain.config import lab_expiry
from auditor.domain.model import Action
from auditor.store import LabState, Store
from provisioner.apply import apply
from provisioner.plan import plan_with_findings

log = structlog.get_logger()


def provision_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    plans: Mapping[str, LabChange] | None = None,
    held: LabLeases | None = None,
    progress: Progress | None = None,
) -> list[LabResult[LabChange]]:
    """Plan (and unless `dry_run`, apply) each lab; `plans` are plans already made and approved under
    the leases `held`, which are taken first where they are not held yet."""
    if store is not None:
        register_labs(store, targets)
    events = context.config.events
    if events is not None and not dry_run:
        # The operator's end of the change events: a dry run changes nothing anywhere.
        accounts = lab_accounts(target.lab for target in targets)
        wire_operator_bus(events, context.sessions, context.endpoint_url, accounts)

    def provision_one(target: LabTarget) -> LabChange:
        if held is not None:
            held.hold(target.name)  # a lease refused is no failure of the lab: nothing is recorded
        try:
            return plan_or_apply(target)
        except LAB_FAULTS as error:
            if store is not None and not dry_run:
                store.record_provision_failed(target.name, describe_fault(error), utc_now())
            raise
        finally:
            if held is not None and not dry_run:
                held.done(target.name)

    def plan_or_apply(target: LabTarget) -> LabChange:
        if plans is not None and target.name in plans:
            change = plans[target.name]
        else:
            steps, findings = plan_with_findings(context, target)
            change = LabChange(tuple(steps), findings)
        if dry_run or not change.changed:
            if not dry_run and store is not None:
                _record_complete_if_left_unfinished(context, store, target, change)
            return change  # a lab already as the spec says is neither provisioned nor reset again
        if store is None:
            apply(context.sessions, target, change.steps)
            return change
        # A lab that is not yet (or no longer) up starts its lifetime now, even when an earlier,
        # interrupted run had built part of it; an active lab is being reset.
        fresh = store.state_of(target.name) not in (LabState.ACTIVE, LabState.EXPIRED)
        store.mark_provisioning(target.name, utc_now())
        apply(context.sessions, target, change.steps)
        log.info("lab_provisioned", lab=target.name, changes=len(change.changed))
        record_provisioned(context, store, target, change, fresh=fresh)
        return change

    label = "planning" if dry_run else "provisioning"
    return run_each(
        targets, lambda t: t.name, provision_one, context.config.audit.concurrency, label, progress
    )


def _record_complete_if_left_unfinished(
    context: Context, store: Store, target: LabTarget, change: LabChange
) -> None:
    """A run that failed or was killed after its last change (its answer lost, say) left the lab
    complete but recorded as failed or provisioning: the rerun, with nothing left to do, records it up."""
    if store.state_of(target.name) in (LabState.FAILED, LabState.PROVISIONING):
        record_provisioned(context, store, target, change, fresh=True)


def record_provisioned(
    context: Context, store: Store, target: LabTarget, change: LabChange, *, fresh: bool
) -> None:
    now = utc_now()
    created = [
        (step.kind, step.account_id, step.name) for step in change.steps if step.action is Action.CREATE
    ]
    # A fresh lab starts its lifetime now; a reset keeps the expiry it already has.
    expires_at = lab_expiry(target.lab, context.config.lab, now) if fresh else target.lab.expires_at
    store.record_provisioned(
        target.name,
        created,
        reset=not fresh,
        at=now,
        expires_at=expires_at,
        detail=None if fresh else described_changes(change.changed),
    )
