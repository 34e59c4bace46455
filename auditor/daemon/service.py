"""The service that watches the class: what the daemon does, whatever tells it when.

Plain methods, called by a driver (auditor.daemon.drivers: APScheduler in one process, procrastinate
across replicas): audit a lab under its lease, reconcile (build the labs never built on an emulator,
tear down the expired ones), prune the history; and around each of them, record the result (kept in
memory while the database is away), notify, log and count. It schedules nothing and knows no queue:
the truth about labs and expiry lives in the database, the driver only says when to look.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from auditor.app.audit import audit_lab
from auditor.app.context import Context
from auditor.app.fleet import LAB_FAULTS, LabResult, describe_fault
from auditor.app.health import Metrics
from auditor.app.leases import LabBusy, LabLeases, Leased, Leases, Purpose, command_leases
from auditor.app.recording import log_groups_seen, register_labs
from auditor.app.target import LabTarget
from auditor.aws.cloudtrail import (
    LOOKUP_RATE,
    Change,
    CloudTrailHistory,
    RateLimiter,
    explain_audit,
    look_up_actors,
)
from auditor.common.clock import iso, process_started_at, utc_now
from auditor.common.errors import OperationalError
from auditor.daemon.notify import ABANDONED_PREFIX, LabWatch
from auditor.domain.changes import LabChange
from auditor.domain.config import Config
from auditor.domain.model import Action, Finding, LabAudit, Trigger, Verdict
from auditor.resources.kinds.log_group import log_group_seen
from auditor.store import DatabaseUnavailable, LabState, LifecycleEvent, Store, upgrade
from provisioner.provision import provision_targets
from provisioner.teardown import teardown_expired, teardown_targets

log = structlog.get_logger()

UNRECORDED_LIMIT = 10_000  # results kept in memory while the database is away
RECORDING_TIME = 2.0  # seconds of the stop timeout kept to record the audits it abandons

# A result kept until it is written: its trigger, due time and the lease holder its recording gives
# the lease back for.
Unrecorded = tuple[LabAudit, Trigger, datetime | None, str | None]


@dataclass
class ServiceState:
    """What the service's callers share; every field is guarded by `lock`.

    `audit_ended` (on the same lock) is notified whenever an audit leaves `in_flight`.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    flush_lock: threading.Lock = field(default_factory=threading.Lock)  # held while writing the backlog
    torn_down: set[str] = field(default_factory=set)
    in_flight: dict[str, datetime] = field(default_factory=dict)
    unrecorded: deque[Unrecorded] = field(default_factory=lambda: deque(maxlen=UNRECORDED_LIMIT))
    last_cycle_at: datetime | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # each lab's latest, since the start
    # Who changed what: the change events received for a lab since its last audit began, and the
    # findings of its last audit (whose actors carry over to the same findings found again).
    changes: dict[str, list[Change]] = field(default_factory=dict)
    previous: dict[str, tuple[Finding, ...]] = field(default_factory=dict)
    # When students build: whether an audit has found each lab's log group (see audit_lab).
    log_groups_seen: dict[str, bool] = field(default_factory=dict)
    audit_ended: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.audit_ended = threading.Condition(self.lock)


class Service:
    """The class under watch: its labs, its store, its leases, its metrics and who hears of a change."""

    def __init__(self, config: Config, context: Context) -> None:
        self.config, self.context = config, context
        self.targets: dict[str, LabTarget] = {
            t.name: t for t in context.rendered_targets((), context.resolve_events_bus_arn())
        }
        self.state = ServiceState()
        self.metrics = Metrics()
        self.stop_event = threading.Event()  # set when told to stop: no audit starts any more
        self.store: Store | None = None
        self.leases = Leases(self.database)
        self.found_standing: set[str] = set()  # never-built labs of which something stood: left as found
        self.watch: LabWatch | None = None  # notifications, when [notify] names somewhere to send them
        # CloudTrail's event history, for changes found without an event: real AWS only (no emulator has it).
        self.history = None if context.endpoint_url else cloudtrail_history(context)

    # ------------------------------------------------------------------------------------ database

    def database(self) -> Store:
        """The store, migrated and with the labs registered; raises DatabaseUnavailable while it is away."""
        if self.store is None:
            upgrade(self.config.database.url)
            store = Store.from_url(self.config.database.url)
            register_labs(store, list(self.targets.values()))
            self.store = store
            log.info("database_ready", url=store.url)
        return self.store

    def ready_store(self) -> Store:
        """The store once the service has it, for the page's own thread (which must not migrate it)."""
        if self.store is None:
            raise DatabaseUnavailable("the daemon is still waiting for its database")
        return self.store

    def record(
        self,
        audit: LabAudit,
        trigger: Trigger,
        due_at: datetime | None = None,
        lease_holder: str | None = None,
    ) -> None:
        """Record this result and any kept while the database was away; keep them all if it still is.

        One worker at a time writes the backlog, oldest first, so that no result is written twice.
        `due_at`: when the schedule meant the audit for (replicas). `lease_holder`: the holder of the
        lab's lease, given back in the same write.
        """
        with self.state.lock:
            self.state.unrecorded.append((audit, trigger, due_at, lease_holder))
        with self.state.flush_lock:
            try:
                store = self.database()
                while (pending := self._oldest_unrecorded()) is not None:
                    self._record_one(store, *pending)
            except DatabaseUnavailable as error:
                self.metrics.database_errors.inc()
                log.error("database_unavailable", error=str(error), unrecorded=len(self.state.unrecorded))

    def _oldest_unrecorded(self) -> Unrecorded | None:
        with self.state.lock:
            return self.state.unrecorded[0] if self.state.unrecorded else None

    def _record_one(
        self, store: Store, audit: LabAudit, trigger: Trigger, due_at: datetime | None, holder: str | None
    ) -> None:
        try:
            if store.record_audit(audit, trigger, due_at, release_lease_of=holder) is None:
                log.info("audit_not_recorded", lab=audit.lab, reason="torn down")
        except DatabaseUnavailable:
            raise
        except Exception:
            # A result the store refuses would block every later one: log it and let it go.
            log.exception("audit_not_recordable", lab=audit.lab)
        with self.state.lock:
            self.state.unrecorded.popleft()

    # ------------------------------------------------------------------------------------ what it knows

    def torn_down(self, lab: str) -> bool:
        """Whether this process knows the lab torn down (without asking the database)."""
        with self.state.lock:
            return lab in self.state.torn_down

    def note_torn_down(self, lab: str) -> None:
        with self.state.lock:
            self.state.torn_down.add(lab)

    def found_torn_down(self, lab: str) -> bool:
        """Whether the lab is torn down, as this process knows it or else as the database says; while the
        database is away, no (audit anyway: the result is kept until it is back)."""
        if self.torn_down(lab):
            return True
        try:
            gone = self.database().state_of(lab) is LabState.TORN_DOWN
        except DatabaseUnavailable:
            return False
        if gone:
            self.note_torn_down(lab)
        return gone

    def audited_for(self, lab: str, due: datetime) -> bool:
        """Whether an audit of the lab is already recorded for the tick `due` (unknown while the database
        is away: no)."""
        try:
            return self.database().audited_for(lab, due)
        except DatabaseUnavailable:
            return False

    def note_alive(self) -> None:
        """The driver reached its work (a replica, its queue): the daemon is doing its share (for /healthz)."""
        with self.state.lock:
            self.state.last_cycle_at = utc_now()

    def note_change(self, lab: str, change: Change | None) -> None:
        """An event's change, for the lab's next audit to name who made it (once: a replica's job that
        comes back later notes it again)."""
        if change is not None:
            with self.state.lock:
                pending = self.state.changes.setdefault(lab, [])
                if change not in pending:
                    pending.append(change)

    # ------------------------------------------------------------------------------------ audits

    def audit(
        self, lab: str, trigger: Trigger, due_at: datetime | None = None, lease_owner: str | None = None
    ) -> Leased:
        """Audit the lab under its lease and record the result (HELD); or leave it for later (LATER: its
        lease held by a command, the driver comes back to it) or for good (GONE: torn down, or the daemon
        stopping). `due_at`: the tick it was due for; `lease_owner`: a replica's job, whose retry takes
        its own lease back."""
        with self.state.lock:
            if lab in self.state.torn_down or self.stop_event.is_set():
                return Leased.GONE
            self.state.in_flight[lab] = utc_now()
            changes = self.state.changes.pop(lab, [])
        target = self.targets[lab]
        structlog.contextvars.bind_contextvars(
            lab=lab,
            trigger=trigger.value,
            origin_account=target.lab.origin.account_id,
            destination_account=target.lab.destination.account_id,
            run_id=uuid.uuid4().hex[:12],
        )
        outcome = Leased.LATER
        try:
            outcome = self.take_lease(lab, lease_owner)
            if outcome is Leased.HELD:
                self.judge_and_record(lab, trigger, due_at, changes)
        finally:
            structlog.contextvars.clear_contextvars()
            with self.state.lock:
                self.state.in_flight.pop(lab, None)
                self.state.last_cycle_at = utc_now()
                if outcome is Leased.LATER:  # the events' audit is still to come
                    self.state.changes[lab] = changes + self.state.changes.get(lab, [])
                self.state.audit_ended.notify_all()
        return outcome

    def take_lease(self, lab: str, owner: str | None) -> Leased:
        try:
            state = self.leases.take(lab, Purpose.AUDIT, owner=owner, reclaim_own=owner is not None)
        except LabBusy as busy:
            log.info("audit_deferred", lab=lab, reason=str(busy))
            return Leased.LATER
        except DatabaseUnavailable:
            return Leased.HELD  # audit anyway, unleased: the result is kept until the database is back
        if state is LabState.TORN_DOWN:
            self.leases.give_back(lab)
            self.note_torn_down(lab)
            return Leased.GONE
        return Leased.HELD

    def judge_and_record(
        self, lab: str, trigger: Trigger, due_at: datetime | None, changes: list[Change]
    ) -> None:
        result = audit_lab(
            self.context,
            self.targets[lab],
            invoke=self.config.audit.invoke,
            log_group_seen=self.log_group_seen(lab),
        )
        if result.verdict is not Verdict.ERROR:
            with self.state.lock:
                self.state.log_groups_seen[lab] = log_group_seen(result.findings)
        result = self.with_actors(result, changes, trigger)
        self.metrics.observe_audit(result)
        self.log_transition(result)
        # Given back in the same write as the result (renewed until then: an audit may outlast a ttl).
        self.record(result, trigger, due_at, lease_holder=self.leases.forget(lab))
        if self.watch is not None:
            self.watch.audited(result)

    def log_group_seen(self, lab: str) -> bool:
        """Whether an audit has found the lab's log group: always so when the project builds the labs;
        when students do, as the last audit that finished found (after a restart, the database's)."""
        if not self.config.classroom.students_build:
            return True
        with self.state.lock:
            known = self.state.log_groups_seen.get(lab)
        if known is not None:
            return known
        try:
            return lab in log_groups_seen(self.config, self.database(), [lab])
        except DatabaseUnavailable:
            return False  # unknown: its absence is no finding yet

    def log_transition(self, result: LabAudit) -> None:
        """A lab that turns drifted, broken or error is a warning, once, not an info line like any other."""
        with self.state.lock:
            before = self.state.verdicts.get(result.lab)
            self.state.verdicts[result.lab] = result.verdict
        if before is result.verdict:
            return
        worst = max(result.findings, key=lambda finding: finding.severity.rank, default=None)
        level = log.info if result.verdict is Verdict.CONFORMANT else log.warning
        level(
            "lab_verdict_changed",
            lab=result.lab,
            verdict=result.verdict.value,
            previous=before.value if before is not None else None,
            worst=f"{worst.severity.value}: {worst.message}" if worst is not None else result.error,
        )

    def with_actors(self, result: LabAudit, changes: list[Change], trigger: Trigger) -> LabAudit:
        """Who made each change: the events' actors, those of the same findings last time, and for a
        scheduled audit, CloudTrail's history of what is still unexplained. Never fails the audit."""
        if result.verdict is Verdict.ERROR:  # nothing to explain yet: the next audit gets the events
            with self.state.lock:
                self.state.changes[result.lab] = changes + self.state.changes.get(result.lab, [])
            return result
        result = explain_audit(result, changes, self.previous_findings(result.lab))
        if self.history is not None and trigger is Trigger.SCHEDULE:
            try:
                since = self.database().last_conformant_at(result.lab)
                if since is not None:
                    result = look_up_actors(result, self.history, since)
            except Exception as error:  # CloudTrail or the database: the audit stands without actors
                log.warning("actors_not_looked_up", lab=result.lab, error=f"{type(error).__name__}: {error}")
        with self.state.lock:
            self.state.previous[result.lab] = result.findings
        return result

    def previous_findings(self, lab: str) -> tuple[Finding, ...]:
        with self.state.lock:
            if lab in self.state.previous:
                return self.state.previous[lab]
        try:  # after a restart: the last audit the database holds
            run = self.database().latest_runs([lab], except_errors_starting=ABANDONED_PREFIX).get(lab)
        except DatabaseUnavailable:
            return ()
        return run.findings if run is not None else ()

    # ------------------------------------------------------------------------------------ reconcile

    def build_labs_never_built(self, *, at_start: bool) -> None:
        """On an emulator, build the labs that were never built and of which nothing stands there; never
        change a lab before it is audited (its drift is the students' evidence, resetting it is the
        operator's `auditor provision`). At start in an emulator of its own, new and empty, that is every
        lab not torn down. A lab whose planning failed (the emulator not up yet) is tried again at each
        reconcile; one found standing is left as found for good. Real AWS: nothing. When students build
        the lab ([class] built_by = "students"): nothing either, their building it is what is watched."""
        if not self.config.aws.emulated or self.config.classroom.students_build:
            return
        store = self.database()
        states = {status.name: status.state for status in store.status()}
        fresh_emulator = at_start and self.context.ephemeral_emulator
        candidates = [
            target
            for name, target in self.targets.items()
            if name not in self.found_standing
            and (
                states.get(name) in (None, LabState.PLANNED)
                or (fresh_emulator and states.get(name) not in (LabState.TORN_DOWN, LabState.EXPIRED))
            )
        ]
        if not candidates:
            return
        try:
            with command_leases(store, Purpose.PROVISION, candidates, started=process_started_at()) as held:
                self._build_absent(store, candidates, held)
        except (*LAB_FAULTS, OperationalError) as error:  # the emulator not up yet: at the next reconcile
            log.warning("labs_not_built_yet", labs=len(candidates), error=describe_fault(error))

    def _build_absent(self, store: Store, candidates: list[LabTarget], held: LabLeases) -> None:
        planned = provision_targets(self.context, candidates, dry_run=True, held=held)
        absent = {o.name: o.result for o in planned if o.result is not None and _builds_all(o.result)}
        for outcome in planned:
            if outcome.result is not None and outcome.name not in absent:
                self.found_standing.add(outcome.name)
                log.info("lab_left_as_found", lab=outcome.name, reason="some of it stands: audited as it is")
            elif outcome.error is not None:
                log.warning("lab_not_built_yet", lab=outcome.name, reason=outcome.error)
        if absent:
            log.info("building_labs_never_built", labs=len(absent))
            chosen = [target for target in candidates if target.name in absent]
            provision_targets(self.context, chosen, dry_run=False, store=store, plans=absent, held=held)

    def reconcile(self) -> None:
        """Tear down every lab past its expiry, however long ago it expired (the database knows); build
        on an emulator the labs never built whose first try failed."""
        with contextlib.suppress(DatabaseUnavailable):  # said below
            self.build_labs_never_built(at_start=False)
        try:
            store = self.database()
            states = {status.name: status.state for status in store.status()}
        except DatabaseUnavailable as error:
            self.metrics.database_errors.inc()
            log.error("reconcile_skipped", reason="database unavailable", error=str(error))
            return
        with self.state.lock:
            self.state.torn_down = {n for n, s in states.items() if s is LabState.TORN_DOWN}
        self.tear_down_expired(store)
        with self.state.lock:
            self.state.last_cycle_at = utc_now()
        self.metrics.cycles.inc()

    def tear_down_expired(self, store: Store) -> None:
        """Tear down, here and now, every lab past its expiry."""
        try:
            if self.config.classroom.students_build:  # a reconcile of a class the project builds asks once
                for lab in store.expired_labs(utc_now()):
                    self.audit_before_students_teardown(lab)
            outcomes = teardown_expired(self.context, store, list(self.targets.values()), utc_now())
        except DatabaseUnavailable as error:
            self.metrics.database_errors.inc()
            log.error("teardown_deferred", reason="database unavailable", error=str(error))
            return
        self.report_teardowns(store, outcomes)

    def mark_expired(self) -> list[str]:
        """Mark the labs past their expiry expired, for their teardowns to be shared out; their names."""
        store = self.database()
        now = utc_now()
        expired = [lab for lab in store.expired_labs(now) if lab in self.targets]
        for lab in expired:
            store.mark_expired(lab, now)
        return expired

    def tear_down(self, lab: str, owner: str) -> None:
        """Tear one lab down under a lease in `owner`'s name (a replica's job, whose retry takes it back)."""
        store = self.database()
        if store.state_of(lab) is LabState.TORN_DOWN:
            return
        self.audit_before_students_teardown(lab, owner)
        outcomes = teardown_targets(
            self.context, [self.targets[lab]], dry_run=False, store=store, owner=owner
        )
        self.report_teardowns(store, outcomes)

    def audit_before_students_teardown(self, lab: str, owner: str | None = None) -> None:
        """When students build, the lab's last audit is recorded before the project's parts go: a lab
        torn down is audited no more, and the guide's `cleanup` is judged from the first audit after the
        class ends (by default the lab's expiry, which is now)."""
        if self.config.classroom.students_build and lab in self.targets:
            self.audit(lab, Trigger.SCHEDULE, lease_owner=owner)

    def report_teardowns(self, store: Store, outcomes: list[LabResult[LabChange]]) -> None:
        """Count, log and announce teardowns; a lab torn down is audited no more."""
        for outcome in outcomes:
            self.metrics.teardowns.labels(outcome="ok" if outcome.ok else "failed").inc()
            log.info("lab_expired_teardown", lab=outcome.name, ok=outcome.ok, error=outcome.error)
            if self.watch is not None:
                if outcome.ok:
                    self.watch.torn_down(outcome.name)
                elif _teardown_failed(store, outcome.name):  # not merely busy in another process
                    self.watch.teardown_failed(outcome.name, outcome.error or "")
            if outcome.ok:
                self.note_torn_down(outcome.name)

    def prune(self) -> None:
        keep = self.config.database.keep
        if keep is None:
            return
        try:
            deleted = self.database().prune(keep, utc_now())
            log.info("history_pruned", runs=deleted)
        except DatabaseUnavailable as error:
            log.error("prune_skipped", error=str(error))

    # ------------------------------------------------------------------------------------ health, stopping

    def healthy(self) -> tuple[bool, str]:
        with self.state.lock:
            last = self.state.last_cycle_at
        if last is None:
            return False, "no cycle completed yet"
        limit = max(self.config.audit.interval, self.config.daemon.reconcile_interval) * 3
        age = utc_now() - last
        if age > limit:
            return False, f"last cycle {int(age.total_seconds())} s ago"
        return True, iso(last)

    def stop(self, deadline: float | None = None) -> None:
        """Start no more audits; give running ones until `deadline` (time.monotonic(); by default the
        stop timeout from now) less a moment to record the rest as abandoned."""
        self.stop_event.set()
        timeout = self.config.daemon.stop_timeout.total_seconds()
        deadline = time.monotonic() + timeout if deadline is None else deadline
        with self.state.audit_ended:
            self.state.audit_ended.wait_for(
                lambda: not self.state.in_flight,
                timeout=max(deadline - time.monotonic() - min(RECORDING_TIME, timeout / 4), 0.0),
            )
            abandoned = dict(self.state.in_flight)
        for lab, started in abandoned.items():
            self.record(self.abandoned(lab, started), Trigger.SCHEDULE, lease_holder=self.leases.forget(lab))
        self.leases.close()
        log.info("daemon_stopped", abandoned=sorted(abandoned))

    def abandoned(self, lab: str, started: datetime) -> LabAudit:
        target = self.targets[lab]
        return LabAudit(
            lab=lab,
            origin_account=target.lab.origin.account_id,
            destination_account=target.lab.destination.account_id,
            verdict=Verdict.ERROR,
            error=f"{ABANDONED_PREFIX} the daemon stopped before the audit finished",
            started_at=started,
            finished_at=utc_now(),
        )


def _teardown_failed(store: Store, lab: str) -> bool:
    try:
        entries = store.lifecycle(lab)
    except DatabaseUnavailable:
        return True  # unknown: better a message too many than a failure nobody hears of
    return bool(entries) and entries[-1].event is LifecycleEvent.TEARDOWN_FAILED


def _builds_all(change: LabChange) -> bool:
    """Whether the plan creates every resource of the lab: nothing of it stands yet."""
    return bool(change.steps) and all(step.action is Action.CREATE for step in change.steps)


def cloudtrail_history(context: Context) -> CloudTrailHistory:
    """LookupEvents in each lab account, at CloudTrail's rate, one limiter for the whole process."""
    accesses = {
        side.account_id: side for lab in context.config.labs for side in (lab.origin, lab.destination)
    }

    def client_for(account: str, region: str) -> object:
        return context.sessions.client(accesses[account], "cloudtrail", region_name=region)

    return CloudTrailHistory(client_for, RateLimiter(LOOKUP_RATE))
