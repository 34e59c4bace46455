"""The application: what the commands do to a class, as functions of a configuration that return values.

Provision, tear down, audit and report status: each opens its AWS sessions and its database at the
start, holds its labs' leases while it works, and returns what happened (each lab's change, audit or
failure). Nothing here prints, exits or knows of click: the command line (auditor/cli) and the daemon
render the values. Two callables come in from the caller: `tell`, for a warning the operator must hear
before the work goes on, and `approve`, asked before anything is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from auditor.app.audit import audit_targets
from auditor.app.context import Context, open_context
from auditor.app.fleet import Interrupted, LabResult, Progress, no_progress
from auditor.app.leases import LabBusy, LabLeases, Purpose, command_leases
from auditor.app.recording import log_groups_seen, open_store, record_run, register_labs
from auditor.app.target import LabTarget
from auditor.aws.emulator import EmulatorError, start_emulator, state_file_for
from auditor.common.clock import iso, utc_now
from auditor.common.errors import OperationalError
from auditor.domain.changes import LabChange
from auditor.domain.config import EMBEDDED, Config, ConfigError
from auditor.domain.model import AuditRun, LabAudit, Trigger, Verdict
from auditor.store import DatabaseUnavailable, LabState, LabStatus, Store
from provisioner.provision import provision_targets
from provisioner.scope import students_build_notice
from provisioner.teardown import expired_targets, teardown_expired, teardown_targets

Tell = Callable[[str], None]
LabChanges = Sequence[LabResult[LabChange]]
# Asked with the labs whose plan deletes something (a provision) or removes anything (a teardown):
# True to go on. It may raise (no terminal to ask on, no --yes): nothing has been changed then.
Approve = Callable[[LabChanges], bool]


def approve_all(_doomed: LabChanges) -> bool:
    return True


def ignore(_warning: str) -> None:
    pass


@dataclass(frozen=True)
class ChangeOutcome:
    """What a provision or a teardown came to: each lab's change (or failure), in the order of the
    configuration; `cancelled` when the person asked said no (nothing changed), `interrupted` when
    Ctrl-C stopped it (which labs were done and which not)."""

    labs: tuple[LabResult[LabChange], ...] = ()
    dry_run: bool = False
    cancelled: bool = False
    interrupted: Interrupted | None = None

    @property
    def failed(self) -> tuple[LabResult[LabChange], ...]:
        return tuple(outcome for outcome in self.labs if not outcome.ok)

    @property
    def changes(self) -> list[LabChange]:
        return [outcome.result for outcome in self.labs if outcome.result is not None]


@dataclass(frozen=True)
class AuditOutcome:
    """An audit's run, and why it could not be recorded (None: recorded, or not asked to be)."""

    run: AuditRun
    not_recorded: str | None = None


# ---------------------------------------------------------------------------------------- provision


def provision(
    config: Config,
    names: Sequence[str],
    *,
    dry_run: bool,
    approve: Approve = approve_all,
    tell: Tell = ignore,
    started: datetime | None = None,
    progress: Progress = no_progress,
) -> ChangeOutcome:
    """Plan every lab, ask before anything is deleted, then apply.

    Each lab is planned and built under its lease, held until the command ends (a dry run, which
    changes nothing, takes none); a lab torn down since the command `started` (default now: the CLI
    gives its process's start) is not built again. When students build the lab, only the project's own
    parts are planned and built (provisioner/scope.py), and the operator hears so."""
    tell_students_build(config, tell, teardown=False)
    if not dry_run:
        keep_embedded_emulator(config, tell)
    with open_context(config) as context:
        context.require_credentials(names)
        warn_embedded(context, tell, builds=not dry_run)
        targets = context.rendered_targets(names, context.resolve_events_bus_arn())
        if dry_run:
            warn_expired(targets, None, tell)
            return _plan_and_apply(context, targets, approve, progress, dry_run=True)
        store = open_store(config)
        warn_expired(targets, store, tell)
        register_labs(store, targets)
        with command_leases(
            store, Purpose.PROVISION, targets, config.lab.lease_wait, started=started
        ) as held:
            return _plan_and_apply(context, targets, approve, progress, dry_run=False, store=store, held=held)


def _plan_and_apply(
    context: Context,
    targets: Sequence[LabTarget],
    approve: Approve,
    progress: Progress,
    *,
    dry_run: bool,
    store: Store | None = None,
    held: LabLeases | None = None,
) -> ChangeOutcome:
    try:
        plans = provision_targets(context, targets, dry_run=True, held=held, progress=progress)
        if dry_run:
            return ChangeOutcome(tuple(plans), dry_run=True)
        ready = [outcome for outcome in plans if outcome.ok]
        doomed = [o for o in ready if o.result is not None and o.result.deletions]
        if doomed and not approve(doomed):
            return ChangeOutcome(cancelled=True)
        planned = {o.name: o.result for o in ready if o.result is not None}
        applied = provision_targets(
            context,
            [t for t in targets if t.name in planned],
            dry_run=False,
            store=store,
            plans=planned,
            held=held,
            progress=progress,
        )
    except Interrupted as stop:
        return ChangeOutcome(interrupted=stop)
    return ChangeOutcome(_in_order(targets, [*plans, *applied]))


def _in_order(targets: Sequence[LabTarget], outcomes: LabChanges) -> tuple[LabResult[LabChange], ...]:
    """One outcome a lab, the last one given (an applied change over its plan), in the targets' order."""
    by_name = {outcome.name: outcome for outcome in outcomes}
    return tuple(by_name[target.name] for target in targets if target.name in by_name)


def tell_students_build(config: Config, tell: Tell, *, teardown: bool) -> None:
    """With `[class] built_by = "students"`: the project touches only its own parts, and says so."""
    notice = students_build_notice(config, teardown=teardown)
    if notice is not None:
        tell(notice)


def warn_embedded(context: Context, tell: Tell, *, builds: bool) -> None:
    """Say loudly when the command works on an emulator that ends with it."""
    if context.ephemeral_emulator:
        what = "what it builds is gone when it ends" if builds else "it starts empty: every lab looks missing"
        tell(
            "warning: the embedded emulator lives only as long as this command, so "
            f"{what}; run `auditor emulator start` first to keep one between commands"
        )


def keep_embedded_emulator(config: Config, tell: Tell) -> None:
    """With "embedded", what a provisioning builds must outlive it: the lasting emulator, started if need be."""
    if config.aws.endpoint_url != EMBEDDED:
        return
    try:
        emulator, started = start_emulator(state_file_for(config.path))
    except EmulatorError as error:
        raise OperationalError(str(error)) from None
    if started:
        tell(
            f"started the embedded emulator in the background at {emulator.url}: it keeps the labs for "
            "the next commands (`auditor emulator stop` ends it)"
        )


def warn_expired(targets: Sequence[LabTarget], store: Store | None, tell: Tell) -> None:
    """A lab already past its expiry is built anyway, but the operator hears that it will not last."""
    now = utc_now()
    recorded = {status.name: status.expires_at for status in store.status()} if store is not None else {}
    for target in targets:
        expires = target.lab.expires_at or recorded.get(target.name)
        if expires is not None and expires <= now:
            tell(
                f"warning: {target.name} expired at {iso(expires)}: it is provisioned anyway, and the "
                "daemon tears it down at its next check (`auditor teardown --expired` does it now)"
            )


# ----------------------------------------------------------------------------------------- teardown


def teardown(
    config: Config,
    names: Sequence[str],
    *,
    expired_only: bool,
    dry_run: bool,
    approve: Approve = approve_all,
    tell: Tell = ignore,
    progress: Progress = no_progress,
    students_resources: bool = False,
) -> ChangeOutcome:
    """Plan the teardown, ask (with what will go), then remove it.

    Each lab is planned and removed under its lease, held until the command ends (a dry run takes none),
    so that what was shown and approved is what is removed, and nothing rebuilds it meanwhile. With
    `expired_only` and no lab past its expiry, the outcome has no labs. When students build the lab,
    only the project's own parts go unless `students_resources` (the operator hears which)."""
    if not students_resources:
        tell_students_build(config, tell, teardown=True)
    with open_context(config) as context:
        context.require_credentials(names)
        warn_embedded(context, tell, builds=False)
        store = open_store(config)
        targets = context.rendered_targets(names, context.resolve_events_bus_arn())
        register_labs(store, targets)
        if expired_only:
            targets = expired_targets(store, targets, utc_now())
            if not targets:
                return ChangeOutcome(dry_run=dry_run)
        if dry_run:
            planned = teardown_targets(
                context, targets, dry_run=True, progress=progress, students_resources=students_resources
            )
            return ChangeOutcome(tuple(planned), dry_run=True)
        with command_leases(store, Purpose.TEARDOWN, targets, config.lab.lease_wait) as held:
            return _plan_and_remove(
                context,
                store,
                targets,
                approve,
                held,
                progress,
                expired_only=expired_only,
                students_resources=students_resources,
            )


def _plan_and_remove(
    context: Context,
    store: Store,
    targets: Sequence[LabTarget],
    approve: Approve,
    held: LabLeases,
    progress: Progress,
    *,
    expired_only: bool,
    students_resources: bool,
) -> ChangeOutcome:
    try:
        planned = teardown_targets(
            context,
            targets,
            dry_run=True,
            held=held,
            progress=progress,
            students_resources=students_resources,
        )
        ready = {o.name: o.result for o in planned if o.ok and o.result is not None}
        doomed = [o for o in planned if o.result is not None and o.result.steps]
        if doomed and not approve(doomed):
            return ChangeOutcome(cancelled=True)
        outcomes = _remove(
            context,
            store,
            targets,
            ready,
            held,
            progress,
            expired_only=expired_only,
            students_resources=students_resources,
        )
    except Interrupted as stop:
        return ChangeOutcome(interrupted=stop)
    return ChangeOutcome(_in_order(targets, [*planned, *outcomes]))


def _remove(
    context: Context,
    store: Store,
    targets: Sequence[LabTarget],
    plans: Mapping[str, LabChange],
    held: LabLeases,
    progress: Progress,
    *,
    expired_only: bool,
    students_resources: bool,
) -> LabChanges:
    chosen = [target for target in targets if target.name in plans]
    if expired_only:
        return teardown_expired(
            context,
            store,
            chosen,
            utc_now(),
            plans=plans,
            held=held,
            progress=progress,
            students_resources=students_resources,
        )
    return teardown_targets(
        context,
        chosen,
        dry_run=False,
        store=store,
        plans=plans,
        held=held,
        progress=progress,
        students_resources=students_resources,
    )


# -------------------------------------------------------------------------------------------- audit


def audit(
    config: Config,
    names: Sequence[str],
    *,
    invoke: bool,
    record: bool,
    tell: Tell = ignore,
    progress: Progress = no_progress,
) -> AuditOutcome:
    """Audit each lab under its lease, skipping the torn down, then record. With the database away
    the labs are audited all the same, without leases, and nothing is recorded."""
    with open_context(config) as context:
        context.require_credentials(names)
        warn_embedded(context, tell, builds=False)
        targets = context.rendered_targets(names, context.resolve_events_bus_arn())
        invoke = invoke and config.audit.invoke
        try:
            store = open_store(config)
            register_labs(store, targets)
        except (OperationalError, DatabaseUnavailable) as error:
            tell(f"warning: {error}: the labs are audited without their leases, and nothing is recorded")
            run = audit_targets(context, targets, invoke=invoke, progress=progress)
            return AuditOutcome(run, not_recorded=str(error))
        standing = _standing(store, targets, bool(names), config.path, tell)
        seen = log_groups_seen(config, store, [target.name for target in standing])
        with command_leases(store, Purpose.AUDIT, standing, config.lab.lease_wait) as held:
            run = audit_targets(
                context,
                standing,
                invoke=invoke,
                each=partial(_audit_holding_lease, held, tell),
                log_groups_seen=seen,
            )
            if not record:
                return AuditOutcome(run)
            try:
                record_run(store, run, Trigger.MANUAL, held.leases)
            except DatabaseUnavailable as error:
                return AuditOutcome(run, not_recorded=str(error))
    return AuditOutcome(run)


def _standing(
    store: Store, targets: Sequence[LabTarget], named: bool, config_path: str, tell: Tell
) -> list[LabTarget]:
    """The labs not torn down; each torn down one is named as skipped. Naming only torn-down labs on
    the command line is a usage error: there is nothing to audit."""
    gone = {status.name: status for status in store.status() if status.state is LabState.TORN_DOWN}
    for target in targets:
        if target.name in gone:
            tell(f"{target.name}: {_torn_down_text(gone[target.name])}, skipped")
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
    held: LabLeases, tell: Tell, target: LabTarget, audit: Callable[[], LabAudit]
) -> LabAudit | None:
    """The audit, once the lab's lease is held; another holder's lease past the wait is the lab's
    `error` (not recorded); a lab torn down meanwhile is skipped."""
    try:
        state = held.hold(target.name)
    except LabBusy as busy:
        return _not_audited(target, str(busy))
    if state is LabState.TORN_DOWN:
        held.leases.give_back(target.name)
        tell(f"{target.name}: torn down while this audit waited for it, skipped")
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
