"""The commands' work, as functions of a configuration: provision, teardown, audit, status.

Each opens its AWS sessions and its database at the start and passes them in; the inner code never
creates clients or commits on its own. Every lab's outcome is recorded in its own transaction.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from auditor.audit import audit_targets
from auditor.clock import iso, utc_now
from auditor.config import Config, lab_expiry
from auditor.context import Context, open_context
from auditor.errors import LabFault, OperationalError
from auditor.events import wire_operator_bus
from auditor.fleet import LabResult, run_each
from auditor.model import Action, AuditRun, Step, Trigger, Verdict
from auditor.render_cli import print_audit_table
from auditor.store import DatabaseUnavailable, LabState, Store, upgrade
from auditor.target import LabTarget
from provisioner.apply import apply
from provisioner.plan import plan
from provisioner.teardown import teardown, teardown_plan

log = structlog.get_logger()
Echo = Callable[[str], None]

# A teardown claim older than this is taken to belong to a process that died.
TEARDOWN_LEASE = timedelta(minutes=15)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_store(config: Config) -> Store:
    """The migrated database, or an operational error (exit 1) before anything else is touched."""
    try:
        upgrade(config.database.url)
        return Store.from_url(config.database.url)
    except DatabaseUnavailable as error:
        raise OperationalError(f"database unavailable: {error}") from None


def register_labs(store: Store, targets: Sequence[LabTarget]) -> None:
    for target in targets:
        lab = target.lab
        store.ensure_lab(lab.name, lab.origin.account_id, lab.destination.account_id, lab.expires_at)


@dataclass(frozen=True)
class LabChange:
    steps: tuple[Step, ...]

    @property
    def changed(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.changes)


def print_plan(out: Echo, name: str, steps: Sequence[Step], summary: str) -> None:
    """`summary` is a format with {changing} and {unchanged}."""
    changing = sum(step.changes for step in steps)
    out(f"{name}: " + summary.format(changing=changing, unchanged=len(steps) - changing))
    for step in steps:
        out(f"  {step.describe()}")


def _exit_code(outcomes: Sequence[LabResult[LabChange]], out: Echo) -> int:
    failed = [outcome for outcome in outcomes if not outcome.ok]
    for outcome in failed:
        out(f"{outcome.name}: FAILED: {outcome.error}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- provision


def provision_labs(config: Config, names: Sequence[str], *, dry_run: bool, out: Echo) -> int:
    with open_context(config) as context:
        targets = context.targets(names)
        store = None if dry_run else open_store(config)
        outcomes = provision_targets(context, targets, dry_run=dry_run, store=store)
    for outcome in outcomes:
        if outcome.result is not None:
            summary = (
                "{changing} to change, {unchanged} unchanged"
                if dry_run
                else "{changing} changed, {unchanged} unchanged"
            )
            print_plan(out, outcome.name, outcome.result.steps, summary)
    return _exit_code(outcomes, out)


def provision_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    show_progress: bool | None = None,
) -> list[LabResult[LabChange]]:
    if store is not None:
        register_labs(store, targets)
    events = context.config.events
    if events is not None and not dry_run:
        # The operator's end of the change events: a dry run changes nothing anywhere.
        wire_operator_bus(events, context.sessions, context.endpoint_url)

    def provision_one(target: LabTarget) -> LabChange:
        steps = plan(context.sessions, target)
        change = LabChange(tuple(steps))
        if dry_run or not change.changed:
            return change  # a lab already as the spec says is neither provisioned nor reset again
        if store is None:
            apply(context.sessions, target, steps)
            return change
        # A lab that is not yet (or no longer) up starts its lifetime now, even when an earlier,
        # interrupted run had built part of it; an active lab is being reset.
        fresh = store.state_of(target.name) not in (LabState.ACTIVE, LabState.EXPIRED)
        store.mark_provisioning(target.name, utc_now())
        apply(context.sessions, target, steps)
        log.info("lab_provisioned", lab=target.name, changes=len(change.changed))
        record_provisioned(context, store, target, change, fresh=fresh)
        return change

    label = "planning" if dry_run else "provisioning"
    outcomes = run_each(
        targets, lambda t: t.name, provision_one, context.config.audit.concurrency, label, show_progress
    )
    if store is not None:
        for outcome in outcomes:
            if not outcome.ok:
                store.record_provision_failed(outcome.name, outcome.error or "", utc_now())
    return outcomes


def record_provisioned(
    context: Context, store: Store, target: LabTarget, change: LabChange, *, fresh: bool
) -> None:
    now = utc_now()
    created = [
        (step.kind, step.account_id, step.name) for step in change.steps if step.action is Action.CREATE
    ]
    # A fresh lab starts its lifetime now; a reset keeps the expiry it already has.
    expires_at = lab_expiry(target.lab, context.config.lab, now) if fresh else target.lab.expires_at
    store.record_provisioned(target.name, created, reset=not fresh, at=now, expires_at=expires_at)


# ----------------------------------------------------------------------------------------- teardown


def teardown_labs(
    config: Config, names: Sequence[str], *, expired_only: bool, dry_run: bool, out: Echo
) -> int:
    with open_context(config) as context:
        store = open_store(config)
        targets = context.targets(names)
        register_labs(store, targets)
        if expired_only:
            targets = expired_targets(store, targets, utc_now())
            if not targets:
                out("no expired labs")
                return 0
        if expired_only and not dry_run:
            outcomes = teardown_expired(context, store, targets, utc_now())
        else:
            outcomes = teardown_targets(context, targets, dry_run=dry_run, store=None if dry_run else store)
    for outcome in outcomes:
        if outcome.result is not None:
            print_plan(
                out,
                outcome.name,
                outcome.result.steps,
                "{changing} to remove" if dry_run else "{changing} removed",
            )
    return _exit_code(outcomes, out)


def expired_targets(store: Store, targets: Sequence[LabTarget], now: datetime) -> list[LabTarget]:
    expired = set(store.expired_labs(now))
    return [target for target in targets if target.name in expired]


def teardown_expired(
    context: Context, store: Store, targets: Sequence[LabTarget], now: datetime
) -> list[LabResult[LabChange]]:
    """Tear down every lab past its expiry at `now`, however long ago that was: the database knows."""
    due = expired_targets(store, targets, now)
    for target in due:
        store.mark_expired(target.name, now)
    return teardown_targets(context, due, dry_run=False, store=store) if due else []


class TeardownBusy(LabFault):
    """Another process holds this lab's teardown claim."""


def dead_local_owner(owner: str | None) -> bool:
    """Whether a lease holder (host:pid) is a process of this host that no longer runs."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def claim_teardown(store: Store, lab: str, owner: str, reclaim_own: bool = False) -> bool:
    """Take the lab's teardown lease, also from a process of this host that died holding it.

    `reclaim_own`: the owner names a piece of work that may be retried elsewhere (a replica's job), which
    takes the lease back from its own earlier, interrupted attempt."""
    own = (owner,) if reclaim_own else ()
    if store.claim_teardown(lab, owner, utc_now(), TEARDOWN_LEASE, take_over_from=own):
        return True
    holder = store.teardown_owner(lab)
    return dead_local_owner(holder) and store.claim_teardown(
        lab, owner, utc_now(), TEARDOWN_LEASE, take_over_from=(holder or "",)
    )


def teardown_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    owner: str | None = None,
) -> list[LabResult[LabChange]]:
    """`owner`: who holds the teardown leases (default this process); one given may reclaim its own."""
    reclaim_own = owner is not None
    owner = owner or owner_id()

    def teardown_one(target: LabTarget) -> LabChange:
        steps = teardown_plan(context.sessions, target)
        if dry_run:
            return LabChange(tuple(steps))
        if store is not None and not claim_teardown(store, target.name, owner, reclaim_own):
            raise TeardownBusy(
                f"another process is tearing this lab down ({store.teardown_owner(target.name)})"
            )
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
    return run_each(targets, lambda t: t.name, teardown_one, context.config.audit.concurrency, label)


# -------------------------------------------------------------------------------------------- audit


def audit_exit_code(run: AuditRun) -> int:
    verdicts = {lab.verdict for lab in run.labs}
    if Verdict.ERROR in verdicts:
        return 1
    return 0 if verdicts <= {Verdict.CONFORMANT} else 3


def record_run(store: Store, run: AuditRun, trigger: Trigger) -> None:
    for lab in run.labs:
        store.record_audit(lab, trigger)


def audit_labs(
    config: Config, names: Sequence[str], *, output_format: str, invoke: bool, record: bool
) -> int:
    with open_context(config) as context:
        targets = context.targets(names)
        run = audit_targets(context, targets, invoke=invoke and config.audit.invoke)
    if output_format == "json":
        sys.stdout.write(json.dumps(run.to_json(), indent=2) + "\n")
    else:
        print_audit_table(run)
    code = audit_exit_code(run)
    if record:
        try:
            store = open_store(config)
            register_labs(store, targets)
            record_run(store, run, Trigger.MANUAL)
        except (OperationalError, DatabaseUnavailable) as error:
            print(f"error: the audit ran but could not be recorded: {error}", file=sys.stderr)
            return 1
    return code


# ------------------------------------------------------------------------------------------- status


def status_lines(config: Config, names: Sequence[str]) -> list[str]:
    """One line a lab: state, expiry, last verdict, last audit time (labs never seen show as planned)."""
    store = open_store(config)
    known = {status.name: status for status in store.status()}
    lines = []
    for lab in config.select(tuple(names)):
        status = known.get(lab.name)
        state = status.state.value if status else "planned"
        expires = _when(status.expires_at if status else lab.expires_at)
        verdict = status.last_verdict.value if status and status.last_verdict else "-"
        audited = _when(status.last_audit_at if status else None)
        lines.append(f"{lab.name:<20} {state:<12} expires {expires:<20} last {verdict:<11} audited {audited}")
    return lines


def _when(moment: datetime | None) -> str:
    return iso(moment) if moment else "-"
