"""The commands' work, as functions of a configuration: provision, teardown, audit, status.

Each opens its AWS sessions and its database at the start and passes them in; the inner code never
creates clients or commits on its own. Every lab's outcome is recorded in its own transaction.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.fleet import LAB_FAULTS, Interrupted, LabResult, describe_fault, run_each
from auditor.app.leases import LabBusy, Leases, Purpose, process_owner
from auditor.app.status import LabStatusRow, status_rows
from auditor.app.target import LabTarget
from auditor.aws.emulator import EmulatorError, start_emulator, state_file_for
from auditor.aws.events import lab_accounts, release_operator_bus, wire_operator_bus
from auditor.cli.render import (
    described_changes,
    fix_command,
    interruption_lines,
    plan_lines,
    plan_summary,
    print_audit_table,
    status_document,
    status_table,
    teardown_summary,
)
from auditor.common.clock import iso, utc_now
from auditor.common.errors import LabFault, OperationalError
from auditor.domain.changes import LabChange
from auditor.domain.config import EMBEDDED, Config, ConfigError, LabConfig, lab_expiry
from auditor.domain.model import Action, Actor, AuditRun, LabAudit, Step, Trigger, Verdict
from auditor.store import DatabaseUnavailable, LabState, LabStatus, RecordedRun, Store, safe_url, upgrade
from provisioner.apply import apply
from provisioner.plan import plan_with_findings
from provisioner.teardown import teardown, teardown_plan

log = structlog.get_logger()
Echo = Callable[[str], None]
# Asked before anything is deleted: True to go on. It may raise Refused (no terminal, no --yes).
Approval = Callable[[str], bool]


class Refused(Exception):
    """A destructive command that nobody approved (no --yes, no terminal to ask on): exit 2."""


def approved(_question: str) -> bool:
    return True


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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


def print_plan(out: Echo, name: str, steps: Sequence[Step], summary: str) -> None:
    """`summary` is a format with {changing} and {unchanged}; only the changing steps are listed."""
    for line in plan_lines(name, LabChange(tuple(steps)).steps, summary):
        out(line)


def _failures(outcomes: Sequence[LabResult[LabChange]], out: Echo) -> int:
    failed = [outcome for outcome in outcomes if not outcome.ok]
    for outcome in failed:
        out(f"{outcome.name}: FAILED: {outcome.error}")
    return 1 if failed else 0


def warn_embedded(context: Context, warn: Echo, *, builds: bool) -> None:
    """Say loudly when the command works on an emulator that ends with it."""
    if context.ephemeral_emulator:
        what = "what it builds is gone when it ends" if builds else "it starts empty: every lab looks missing"
        warn(
            "warning: the embedded emulator lives only as long as this command, so "
            f"{what}; run `auditor emulator start` first to keep one between commands"
        )


def keep_embedded_emulator(config: Config, warn: Echo) -> None:
    """With "embedded", what a provisioning builds must outlive it: the lasting emulator, started if need be."""
    if config.aws.endpoint_url != EMBEDDED:
        return
    try:
        emulator, started = start_emulator(state_file_for(config.path))
    except EmulatorError as error:
        raise OperationalError(str(error)) from None
    if started:
        warn(
            f"started the embedded emulator in the background at {emulator.url}: it keeps the labs for "
            "the next commands (`auditor emulator stop` ends it)"
        )


# ------------------------------------------------------------------------------------------- leases


class TornDownMeanwhile(LabFault):
    """A lab torn down by another command while this provision waited for it: it is not built again."""


@dataclass
class LabLeases:
    """The leases a command (or a daemon's job) takes on its labs before it reads or changes them.

    A command holds each lease until it ends (`per_lab=False`), so that what it planned and showed is
    still what it applies; the daemon gives each back as soon as that lab is done. A provision does not
    build again a lab torn down since it `started`, by a command it waited for (a teardown is never
    undone by a provision that ran beside it)."""

    leases: Leases
    store: Store
    purpose: Purpose
    wait: timedelta = timedelta(0)
    per_lab: bool = False
    owner: str | None = None  # a replica's job, which takes its own lease back when it is retried
    started: datetime = field(default_factory=utc_now)  # when the command began

    def hold(self, lab: str) -> LabState | None:
        """Take the lab's lease (once); the lab's state when it is newly taken."""
        if lab in self.leases.held():
            return None
        state = self.leases.take(
            lab, self.purpose, self.wait, owner=self.owner, reclaim_own=self.owner is not None
        )
        if self.purpose is Purpose.PROVISION:
            torn_down = self.store.torn_down_since(lab, self.started)
            if torn_down is not None:
                self.leases.give_back(lab)
                raise TornDownMeanwhile(
                    f"torn down at {iso(torn_down)} while this provision waited for it: not built again "
                    "(run `auditor provision` once more to build it anew)"
                )
        return state

    def done(self, lab: str) -> None:
        if self.per_lab:
            self.leases.give_back(lab)


@contextmanager
def command_leases(
    store: Store,
    purpose: Purpose,
    targets: Sequence[LabTarget],
    wait: timedelta = timedelta(0),
    *,
    per_lab: bool = False,
    owner: str | None = None,
    started: datetime | None = None,
) -> Iterator[LabLeases]:
    """The leases of one command (or job) over its labs, begun at `started` (default now), all given
    back when it ends, however it ends."""
    leases = Leases(lambda: store)
    try:
        yield LabLeases(
            leases, store, purpose, wait, per_lab=per_lab, owner=owner, started=started or utc_now()
        )
    finally:
        leases.close()


# ---------------------------------------------------------------------------------------- provision


def provision_labs(
    config: Config,
    names: Sequence[str],
    *,
    dry_run: bool,
    out: Echo,
    diff: bool = False,
    approve: Approval = approved,
    warn: Echo = to_stderr,
    started: datetime | None = None,
) -> int:
    """Plan every lab, ask before anything is deleted, then apply; a summary in terraform's manner.

    Each lab is planned and built under its lease, held until the command ends (a dry run, which
    changes nothing, takes none); a lab torn down since the command `started` (default now: the CLI
    gives its process's start) is not built again."""
    if not dry_run:
        keep_embedded_emulator(config, warn)
    with open_context(config) as context:
        warn_embedded(context, warn, builds=not dry_run)
        targets = context.targets(names)
        if dry_run:
            warn_expired(targets, None, warn)
            return _plan_and_apply(context, targets, out, diff, approve, dry_run=True)
        store = open_store(config)
        warn_expired(targets, store, warn)
        register_labs(store, targets)
        with command_leases(
            store, Purpose.PROVISION, targets, config.lab.lease_wait, started=started
        ) as held:
            return _plan_and_apply(
                context, targets, out, diff, approve, dry_run=False, store=store, held=held
            )


def _plan_and_apply(
    context: Context,
    targets: Sequence[LabTarget],
    out: Echo,
    diff: bool,
    approve: Approval,
    *,
    dry_run: bool,
    store: Store | None = None,
    held: LabLeases | None = None,
) -> int:
    try:
        plans = provision_targets(context, targets, dry_run=True, held=held)
        if dry_run:
            return _report_provisioning(plans, out, dry_run=True, diff=diff)
        ready = [outcome for outcome in plans if outcome.ok]
        if not _deletions_approved(ready, approve, out, diff):
            out("provisioning cancelled: nothing was changed")
            return 1
        planned = {o.name: o.result for o in ready if o.result is not None}
        applied = provision_targets(
            context,
            [t for t in targets if t.name in planned],
            dry_run=False,
            store=store,
            plans=planned,
            held=held,
        )
    except Interrupted as stop:
        for line in interruption_lines(stop, "provisioned"):
            out(line)
        return 130
    by_name = {outcome.name: outcome for outcome in [*plans, *applied]}
    return _report_provisioning([by_name[t.name] for t in targets], out, dry_run=False, diff=diff)


def _deletions_approved(
    planned: Sequence[LabResult[LabChange]], approve: Approval, out: Echo, diff: bool
) -> bool:
    doomed = [(o.name, o.result) for o in planned if o.result is not None and o.result.deletions]
    if not doomed:
        return True
    out("The plan deletes what the spec does not have:")
    for name, change in doomed:
        for line in plan_lines(
            name, change.steps, "{changing} to change", diff=diff, findings=change.findings
        ):
            out(line)
    count = sum(len(change.deletions) for _, change in doomed)
    return approve(
        f"Provision and delete {count} resource{'s' if count != 1 else ''} in {len(doomed)} "
        f"lab{'s' if len(doomed) != 1 else ''}?"
    )


def _report_provisioning(
    outcomes: Sequence[LabResult[LabChange]], out: Echo, *, dry_run: bool, diff: bool
) -> int:
    summary = (
        "{changing} to change, {unchanged} unchanged"
        if dry_run
        else "{changing} changed, {unchanged} unchanged"
    )
    for outcome in outcomes:
        if outcome.result is not None:
            for line in plan_lines(
                outcome.name, outcome.result.steps, summary, diff=diff, findings=outcome.result.findings
            ):
                out(line)
    code = _failures(outcomes, out)
    out(plan_summary([o.result for o in outcomes if o.result is not None], dry_run=dry_run))
    return code


def warn_expired(targets: Sequence[LabTarget], store: Store | None, warn: Echo) -> None:
    """A lab already past its expiry is built anyway, but the operator hears that it will not last."""
    now = utc_now()
    recorded = {status.name: status.expires_at for status in store.status()} if store is not None else {}
    for target in targets:
        expires = target.lab.expires_at or recorded.get(target.name)
        if expires is not None and expires <= now:
            warn(
                f"warning: {target.name} expired at {iso(expires)}: it is provisioned anyway, and the "
                "daemon tears it down at its next check (`auditor teardown --expired` does it now)"
            )


def provision_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    show_progress: bool | None = None,
    plans: Mapping[str, LabChange] | None = None,
    held: LabLeases | None = None,
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
        targets, lambda t: t.name, provision_one, context.config.audit.concurrency, label, show_progress
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


# ----------------------------------------------------------------------------------------- teardown


def teardown_labs(
    config: Config,
    names: Sequence[str],
    *,
    expired_only: bool,
    dry_run: bool,
    out: Echo,
    approve: Approval = approved,
    warn: Echo = to_stderr,
) -> int:
    """Plan the teardown, show what will go and ask, then remove it; Ctrl-C says what was done.

    Each lab is planned and removed under its lease, held until the command ends (a dry run takes none),
    so that what was shown and approved is what is removed, and nothing rebuilds it meanwhile."""
    with open_context(config) as context:
        warn_embedded(context, warn, builds=False)
        store = open_store(config)
        targets = context.targets(names)
        register_labs(store, targets)
        if expired_only:
            targets = expired_targets(store, targets, utc_now())
            if not targets:
                out("no expired labs")
                return 0
        if dry_run:
            return _report_teardown(teardown_targets(context, targets, dry_run=True), out, dry_run=True)
        with command_leases(store, Purpose.TEARDOWN, targets, config.lab.lease_wait) as held:
            return _plan_and_remove(context, store, targets, out, approve, held, expired_only=expired_only)


def _plan_and_remove(
    context: Context,
    store: Store,
    targets: Sequence[LabTarget],
    out: Echo,
    approve: Approval,
    held: LabLeases,
    *,
    expired_only: bool,
) -> int:
    try:
        planned = teardown_targets(context, targets, dry_run=True, held=held)
        ready = {o.name: o.result for o in planned if o.ok and o.result is not None}
        if not _teardown_approved(planned, approve, out):
            out("teardown cancelled: nothing was removed")
            return 1
        chosen = [target for target in targets if target.name in ready]
        if expired_only:
            outcomes = teardown_expired(context, store, chosen, utc_now(), plans=ready, held=held)
        else:
            outcomes = teardown_targets(context, chosen, dry_run=False, store=store, plans=ready, held=held)
    except Interrupted as stop:
        for line in interruption_lines(stop, "torn down"):
            out(line)
        return 130
    by_name = {outcome.name: outcome for outcome in [*planned, *outcomes]}
    return _report_teardown([by_name[t.name] for t in targets if t.name in by_name], out, dry_run=False)


def _teardown_approved(planned: Sequence[LabResult[LabChange]], approve: Approval, out: Echo) -> bool:
    doomed = [o for o in planned if o.result is not None and o.result.steps]
    if not doomed:
        return True  # nothing to remove: nothing to ask
    out("The teardown removes:")
    _report_teardown(doomed, out, dry_run=True, summary=False)
    count = sum(len(o.result.steps) for o in doomed if o.result is not None)
    return approve(
        f"Tear down {len(doomed)} lab{'s' if len(doomed) != 1 else ''}, "
        f"removing {count} resource{'s' if count != 1 else ''}?"
    )


def _report_teardown(
    outcomes: Sequence[LabResult[LabChange]], out: Echo, *, dry_run: bool, summary: bool = True
) -> int:
    for outcome in outcomes:
        if outcome.result is not None:
            print_plan(
                out,
                outcome.name,
                outcome.result.steps,
                "{changing} to remove" if dry_run else "{changing} removed",
            )
    code = _failures(outcomes, out)
    if summary:
        out(teardown_summary([o.result for o in outcomes if o.result is not None], dry_run=dry_run))
    return code


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
) -> list[LabResult[LabChange]]:
    """Tear down every lab past its expiry at `now`, however long ago that was: the database knows."""
    due = expired_targets(store, targets, now)
    for target in due:
        store.mark_expired(target.name, now)
    if not due:
        return []
    return teardown_targets(context, due, dry_run=False, store=store, plans=plans, held=held)


def teardown_targets(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None = None,
    plans: Mapping[str, LabChange] | None = None,
    held: LabLeases | None = None,
    owner: str | None = None,
) -> list[LabResult[LabChange]]:
    """Remove each lab's resources; `plans` are the removals already shown and approved under the
    leases `held`. With a store and no leases given, each lab's lease is taken here for its own
    teardown, not waited for: this process's, or `owner`'s (a replica's job, which takes its own
    lease back when it is retried)."""
    if store is None or held is not None or dry_run:
        return _tear_down_each(context, targets, dry_run=dry_run, store=store, plans=plans, held=held)
    with command_leases(store, Purpose.TEARDOWN, targets, per_lab=True, owner=owner) as own:
        return _tear_down_each(context, targets, dry_run=False, store=store, plans=plans, held=own)


def _tear_down_each(
    context: Context,
    targets: Sequence[LabTarget],
    *,
    dry_run: bool,
    store: Store | None,
    plans: Mapping[str, LabChange] | None,
    held: LabLeases | None,
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
            steps = teardown_plan(context.sessions, target)
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
    outcomes = run_each(targets, lambda t: t.name, teardown_one, context.config.audit.concurrency, label)
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


# -------------------------------------------------------------------------------------------- audit


def audit_exit_code(run: AuditRun) -> int:
    verdicts = {lab.verdict for lab in run.labs}
    if Verdict.ERROR in verdicts:
        return 1
    return 0 if verdicts <= {Verdict.CONFORMANT} else 3


def record_run(store: Store, run: AuditRun, trigger: Trigger, held: Leases | None = None) -> None:
    """Record each lab's audit, giving back its lease in the same write when `held` holds it; a lab
    that could not be audited for another holder's lease is not recorded (nothing was judged)."""
    for lab in run.labs:
        holder = held.forget(lab.lab) if held is not None else None
        if held is not None and holder is None:
            continue
        store.record_audit(lab, trigger, release_lease_of=holder)


def audit_labs(
    config: Config,
    names: Sequence[str],
    *,
    output_format: str,
    invoke: bool,
    record: bool,
    warn: Echo = to_stderr,
) -> int:
    """Audit each lab under its lease, skipping the torn down; print, then record. With the database
    away the labs are audited all the same, without leases, and nothing is recorded (exit 1)."""
    with open_context(config) as context:
        warn_embedded(context, warn, builds=False)
        targets = context.targets(names)
        try:
            store = open_store(config)
            register_labs(store, targets)
        except (OperationalError, DatabaseUnavailable) as error:
            warn(f"warning: {error}: the labs are audited without their leases, and nothing is recorded")
            run = audit_targets(context, targets, invoke=invoke and config.audit.invoke)
            _print_audit(run, output_format, config.path)
            print(f"error: the audit ran but could not be recorded: {error}", file=sys.stderr)
            return 1
        standing = _standing(store, targets, bool(names), config.path, warn)
        with command_leases(store, Purpose.AUDIT, standing, config.lab.lease_wait) as held:
            run = audit_targets(
                context,
                standing,
                invoke=invoke and config.audit.invoke,
                each=partial(_audit_holding_lease, held, warn),
            )
            _print_audit(run, output_format, config.path)
            if record:
                try:
                    record_run(store, run, Trigger.MANUAL, held.leases)
                except DatabaseUnavailable as error:
                    print(f"error: the audit ran but could not be recorded: {error}", file=sys.stderr)
                    return 1
    return audit_exit_code(run)


def _print_audit(run: AuditRun, output_format: str, config_path: str) -> None:
    if output_format == "json":
        sys.stdout.write(json.dumps(run.to_json(), indent=2) + "\n")
    else:
        print_audit_table(run, fix=lambda lab: fix_command(lab, config_path))


def _standing(
    store: Store, targets: Sequence[LabTarget], named: bool, config_path: str, warn: Echo
) -> list[LabTarget]:
    """The labs not torn down; each torn down one is named as skipped. Naming only torn-down labs on
    the command line is a usage error: there is nothing to audit."""
    gone = {status.name: status for status in store.status() if status.state is LabState.TORN_DOWN}
    for target in targets:
        if target.name in gone:
            warn(f"{target.name}: {_torn_down_text(gone[target.name])}, skipped")
    standing = [target for target in targets if target.name not in gone]
    if named and targets and not standing:
        raise ConfigError(
            config_path,
            "--lab",
            f"{', '.join(t.name for t in targets)}: torn down, nothing to audit "
            "(`auditor provision --lab NAME` builds a lab anew)",
        )
    return standing


def _torn_down_text(status: LabStatus) -> str:
    return f"torn down at {iso(status.torn_down_at)}" if status.torn_down_at else "torn down"


def _audit_holding_lease(
    held: LabLeases, warn: Echo, target: LabTarget, audit: Callable[[], LabAudit]
) -> LabAudit | None:
    """The audit, once the lab's lease is held; another holder's lease past the wait is the lab's
    `error` (not recorded); a lab torn down meanwhile is skipped."""
    try:
        state = held.hold(target.name)
    except LabBusy as busy:
        return _not_audited(target, str(busy))
    if state is LabState.TORN_DOWN:
        held.leases.give_back(target.name)
        warn(f"{target.name}: torn down while this audit waited for it, skipped")
        return None
    return audit()


def _not_audited(target: LabTarget, why: str) -> LabAudit:
    lab = target.lab
    now = utc_now()
    return LabAudit(
        lab=lab.name,
        origin_account=lab.origin.account_id,
        destination_account=lab.destination.account_id,
        verdict=Verdict.ERROR,
        error=f"not audited: {why}",
        started_at=now,
        finished_at=now,
    )


# ------------------------------------------------------------------------------------------- status


def lab_status(config: Config, names: Sequence[str]) -> list[LabStatusRow]:
    """Each lab's standing now, from the database (labs never seen show as planned)."""
    labs = config.select(tuple(names))
    store = open_store(config)
    try:
        latest = store.latest_runs([lab.name for lab in labs])
        return status_rows(labs, store.status(), utc_now(), _worst_actors(latest))
    finally:
        store.close()


def _worst_actors(latest: Mapping[str, RecordedRun]) -> dict[str, Actor]:
    """Who made the worst known change of each lab (its findings come worst first)."""
    actors = {}
    for name, run in latest.items():
        actor = next((f.changed_by for f in run.findings if f.changed_by), None)
        if actor is not None:
            actors[name] = actor
    return actors


def status_output(config: Config, names: Sequence[str], output_format: str) -> str:
    """The table under a line naming the database it read, or the JSON document with it."""
    rows = lab_status(config, names)
    database = safe_url(config.database.url)
    if output_format == "json":
        return json.dumps(status_document(rows, utc_now(), database), indent=2) + "\n"
    return "\n".join([f"database: {database}", *status_table(rows)]) + "\n"
