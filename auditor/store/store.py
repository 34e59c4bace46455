"""The history store: every write is one transaction, opened here; callers never commit.

Writes about one lab (an audit run, a provisioning, a teardown claim) each run in their own
transaction, so a crash leaves either the whole write or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    Result,
    Select,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auditor.domain.model import Actor, Finding, InvokeResult, LabAudit, Subject, Trigger, Verdict, Witness
from auditor.domain.steps import StepResult, StepStatus
from auditor.store.digest import PreparedFindings, decode_document, prepare_findings
from auditor.store.engine import is_memory_database, make_engine, safe_url, unavailable_as, writing_engine
from auditor.store.history import (
    SPANS,
    ceil_to,
    count_run,
    edges_of_period,
    first_run_at,
    last_at_verdict_before,
    period_edges,
    recount_before,
    time_at_verdicts,
    verdict_counts,
)
from auditor.store.migrate import upgrade_engine
from auditor.store.models import (
    AuditRunRow,
    DocumentRow,
    FindingRow,
    FindingSetRow,
    InvokeResultRow,
    LabResourceRow,
    LabRow,
    LifecycleEventRow,
    StepResultRow,
)
from auditor.store.records import (
    OUTCOME_OF,
    LabState,
    LabStatus,
    Lease,
    LifecycleEntry,
    LifecycleEvent,
    RecordedRun,
    RunPoint,
    StepsAt,
    TimeShare,
    VerdictCount,
)

T = TypeVar("T")

# Bulk DELETE/UPDATE statements: nothing they touch is loaded in the session, so there is nothing to sync.
BULK = {"synchronize_session": False}

# (kind, account, arn) of a resource the provisioner created, e.g. ("iam_role", "2222...", "arn:aws:iam::...").
Resource = tuple[str, str, str]


class UnknownLab(LookupError):
    """A lifecycle write named a lab the store has never seen (call ensure_lab first)."""


class Store:
    """The history of a class of labs; each method is one transaction (see the module docstring).

    `engine` should come from make_engine, which sets SQLite up for a daemon and a CLI writing at once.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writing_engine(engine)
        self._url = engine.url

    @classmethod
    def from_url(cls, url: str) -> Store:
        """A store on that database; an in-memory SQLite database is migrated here, as nothing else can reach it."""
        engine = make_engine(url)
        if is_memory_database(url):
            upgrade_engine(engine)
        return cls(engine)

    @property
    def url(self) -> str:
        return safe_url(self._url)

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------------------------ sessions

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with unavailable_as(self._url), Session(self._writer) as session, session.begin():
            yield session

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with unavailable_as(self._url), Session(self._engine) as session, session.begin():
            yield session

    def _write_retrying_conflicts(self, write: Callable[[Session], T]) -> T:
        """On PostgreSQL, two writers may insert the same new lab or finding set, or prune may collect a set
        a writer is about to use; the loser's transaction fails whole, and once more sees the winner's work."""
        try:
            with self._writing() as session:
                return write(session)
        except IntegrityError:
            with self._writing() as session:
                return write(session)

    # ---------------------------------------------------------------------------------------- labs

    def ensure_lab(
        self, name: str, origin_account: str, destination_account: str, expires_at: datetime | None
    ) -> None:
        """Create the lab, or update its accounts; a None expiry keeps the one already known."""
        self.ensure_labs([(name, origin_account, destination_account, expires_at)])

    def ensure_labs(self, labs: Iterable[tuple[str, str, str, datetime | None]]) -> None:
        """`ensure_lab` of each (name, origin account, destination account, expiry); a name given twice
        is the last one's. On SQLite in one transaction: its writers take the whole database in turn,
        and a class of 200 labs, a transaction each, cost a command 0.3 s before its first lab. On
        PostgreSQL a transaction a lab, as before: a write of many rows could take their locks in
        another order than a replica's write of many leases, and the two would deadlock."""
        now = datetime.now(UTC)
        rows = {
            name: {
                "name": name,
                "origin_account": origin_account,
                "destination_account": destination_account,
                "state": LabState.PLANNED,
                "expires_at": expires_at,
                "updated_at": now,
            }
            for name, origin_account, destination_account, expires_at in labs
        }
        together = self._engine.dialect.name == "sqlite"
        for batch in [list(rows.values())] if together else [[row] for row in rows.values()]:
            if batch:
                with self._writing() as session:
                    session.execute(_lab_upsert(session), batch)

    # -------------------------------------------------------------------------------------- audits

    def record_audit(
        self,
        audit: LabAudit,
        trigger: Trigger,
        due_at: datetime | None = None,
        *,
        release_lease_of: str | None = None,
    ) -> int | None:
        """Store one lab's audit; returns the run id, or None for a lab torn down (its history ended
        there: an audit of it, begun before the teardown or after, is not the lab's). Raises ValueError
        if a finding's document is not JSON.

        `due_at`: the moment a schedule meant this audit for, when one did (daemon replicas).
        `release_lease_of`: give back that holder's lease on the lab in the same transaction."""
        prepared = prepare_findings(audit.findings)
        started_at, finished_at = audit_times(audit, now=datetime.now(UTC))

        def write(session: Session) -> int | None:
            if release_lease_of is not None:
                _release_lease(session, audit.lab, release_lease_of)
            lab_id, state = _lab_for_audit(session, audit, started_at)
            if state is LabState.TORN_DOWN:
                return None
            set_id = _finding_set_id(session, prepared) if prepared else None
            run = AuditRunRow(
                lab_id=lab_id,
                trigger=Trigger(trigger),
                started_at=started_at,
                finished_at=finished_at,
                verdict=Verdict(audit.verdict),
                error=audit.error,
                requests=audit.requests,
                finding_set_id=set_id,
                due_at=due_at,
            )
            session.add(run)
            session.flush()
            count_run(session, _insert_for(session), lab_id, run.id, started_at, run.verdict)
            if audit.invoke is not None:
                _insert_invoke_result(session, run.id, audit.invoke)
            if audit.steps:
                _insert_step_results(session, run.id, audit.steps)
            return run.id

        return self._write_retrying_conflicts(write)

    # ------------------------------------------------------------------------------------ lifecycle

    def mark_provisioning(self, lab: str, at: datetime) -> None:
        with self._writing() as session:
            _set_state(session, _lab_id(session, lab), LabState.PROVISIONING, at)

    def record_provisioned(
        self,
        lab: str,
        resources: Sequence[Resource],
        reset: bool,
        at: datetime,
        expires_at: datetime | None,
        detail: str | None = None,
    ) -> None:
        """The lab is built: state active, its resources recorded, a provisioned (or reset) event whose
        detail is `detail` (what a reset changed), else how many resources it created."""
        with self._writing() as session:
            lab_id = _lab_id(session, lab)
            values: dict[str, Any] = {"state": LabState.ACTIVE, "provisioned_at": at, "updated_at": at}
            if expires_at is not None:
                values["expires_at"] = expires_at
            session.execute(update(LabRow).where(LabRow.id == lab_id).values(**values))
            added = _record_resources(session, lab_id, resources, at)
            event = LifecycleEvent.RESET if reset else LifecycleEvent.PROVISIONED
            counted = f"{len(resources)} resource{'s' if len(resources) != 1 else ''}, {added} new"
            _add_event(session, lab_id, at, event, counted if detail is None else detail)

    def record_provision_failed(self, lab: str, detail: str, at: datetime) -> None:
        with self._writing() as session:
            lab_id = _lab_id(session, lab)
            _set_state(session, lab_id, LabState.FAILED, at)
            _add_event(session, lab_id, at, LifecycleEvent.PROVISION_FAILED, detail)

    def claim_lease(
        self,
        lab: str,
        owner: str,
        purpose: str,
        at: datetime,
        ttl: timedelta,
        take_over_from: Collection[str] = (),
    ) -> LabState | None:
        """Take the lab's lease; the lab's state once taken, None while another holder's lease is fresh
        (renewed within `ttl`) or the lab is unknown. `take_over_from` names holders known to be gone,
        whose lease is taken however fresh it is."""
        with self._writing() as session:
            state = session.execute(
                update(LabRow)
                .where(
                    LabRow.name == lab,
                    or_(
                        LabRow.lease_owner.is_(None),
                        LabRow.lease_renewed_at <= at - ttl,
                        LabRow.lease_owner.in_(list(take_over_from)),
                    ),
                )
                .values(lease_owner=owner, lease_purpose=purpose, lease_since=at, lease_renewed_at=at)
                .returning(LabRow.state)
            ).scalar_one_or_none()
            return None if state is None else LabState(state)

    def lease_of(self, lab: str) -> Lease | None:
        """Who holds the lab's lease, if anyone (a lapsed lease included: its holder may yet renew it)."""
        with self._reading() as session:
            row = session.execute(
                select(
                    LabRow.lease_owner, LabRow.lease_purpose, LabRow.lease_since, LabRow.lease_renewed_at
                ).where(LabRow.name == lab, LabRow.lease_owner.is_not(None))
            ).one_or_none()
            owner, purpose, since, renewed = row if row is not None else (None, None, None, None)
            if owner is None or since is None:
                return None
            return Lease(lab, owner, purpose or "", since, renewed or since)

    def renew_leases(self, owner: str, labs: Collection[str], at: datetime) -> set[str]:
        """Say that `owner` is still at work on these labs; the labs whose lease it still holds."""
        if not labs:
            return set()
        with self._writing() as session:
            renewed = session.scalars(
                update(LabRow)
                .where(LabRow.lease_owner == owner, LabRow.name.in_(list(labs)))
                .values(lease_renewed_at=at)
                .returning(LabRow.name)
            )
            return set(renewed)

    def release_leases(self, owner: str, labs: Collection[str]) -> None:
        """Give back the leases `owner` holds on these labs (one it no longer holds is left as it is)."""
        if not labs:
            return
        with self._writing() as session:
            session.execute(
                update(LabRow)
                .where(LabRow.lease_owner == owner, LabRow.name.in_(list(labs)))
                .values(lease_owner=None, lease_purpose=None, lease_since=None, lease_renewed_at=None),
                execution_options=BULK,
            )

    def mark_teardown_started(self, lab: str, owner: str, at: datetime) -> None:
        with self._writing() as session:
            _add_event(session, _lab_id(session, lab), at, LifecycleEvent.TEARDOWN_STARTED, f"by {owner}")

    def torn_down_since(self, lab: str, since: datetime) -> datetime | None:
        """When the lab was last torn down, if that was at or after `since`."""
        with self._reading() as session:
            return session.scalar(
                select(func.max(LifecycleEventRow.at))
                .join(LabRow, LabRow.id == LifecycleEventRow.lab_id)
                .where(
                    LabRow.name == lab,
                    LifecycleEventRow.at >= since,
                    LifecycleEventRow.event == LifecycleEvent.TORN_DOWN,
                )
            )

    def state_of(self, lab: str) -> LabState | None:
        """The lab's life-cycle state; None for a lab the store has never seen."""
        with self._reading() as session:
            state = session.scalar(select(LabRow.state).where(LabRow.name == lab))
            return None if state is None else LabState(state)

    def record_torn_down(self, lab: str, at: datetime) -> None:
        with self._writing() as session:
            lab_id = _lab_id(session, lab)
            _set_state(session, lab_id, LabState.TORN_DOWN, at)
            deleted = session.execute(
                update(LabResourceRow)
                .where(LabResourceRow.lab_id == lab_id, LabResourceRow.deleted_at.is_(None))
                .values(deleted_at=at)
            )
            count = _rowcount(deleted)
            detail = f"{count} resource{'s' if count != 1 else ''} deleted"
            _add_event(session, lab_id, at, LifecycleEvent.TORN_DOWN, detail)

    def record_teardown_failed(self, lab: str, detail: str, at: datetime) -> None:
        """The teardown stopped half way (its holder gives the lease back, so that a later one finishes it)."""
        with self._writing() as session:
            _add_event(session, _lab_id(session, lab), at, LifecycleEvent.TEARDOWN_FAILED, detail)

    def expired_labs(self, now: datetime) -> list[str]:
        with self._reading() as session:
            names = session.scalars(
                select(LabRow.name)
                .where(LabRow.expires_at <= now, LabRow.state != LabState.TORN_DOWN)
                .order_by(LabRow.name)
            )
            return list(names)

    def mark_expired(self, lab: str, at: datetime) -> bool:
        """State expired and an expired event, once; False if it was already expired or torn down."""
        with self._writing() as session:
            lab_id = session.execute(
                update(LabRow)
                .where(LabRow.name == lab, LabRow.state.not_in([LabState.EXPIRED, LabState.TORN_DOWN]))
                .values(state=LabState.EXPIRED, updated_at=at)
                .returning(LabRow.id)
            ).scalar_one_or_none()
            if lab_id is None:
                return False
            _add_event(session, lab_id, at, LifecycleEvent.EXPIRED, "")
            return True

    # ------------------------------------------------------------------------------------ retention

    def prune(self, keep: timedelta, now: datetime) -> int:
        """Delete runs older than now - keep, except each lab's latest; returns how many were deleted.

        Lifecycle events are kept. One transaction per lab, so a daemon's writes go on in between.
        """
        cutoff = now - keep
        deleted = 0
        for lab_id in self._lab_ids():
            with self._writing() as session:
                pruned = _prune_lab(session, lab_id, cutoff)
                if pruned:
                    recount_before(session, lab_id, ceil_to(cutoff, SPANS[0]))
                deleted += pruned
        self._write_retrying_conflicts(_collect_garbage)
        return deleted

    def recount_verdict_totals(self) -> None:
        """Count every lab's hours again from its runs: for runs written around the store (a bulk load)."""
        with self._writing() as session:
            recount_before(session, None, datetime.max.replace(tzinfo=UTC))

    def _lab_ids(self) -> list[int]:
        with self._reading() as session:
            return list(session.scalars(select(LabRow.id).order_by(LabRow.id)))

    # ---------------------------------------------------------------------------------------- reads

    def status(self) -> list[LabStatus]:
        with self._reading() as session:
            labs = list(session.scalars(select(LabRow).order_by(LabRow.name)))
            latest = _latest_runs_by_lab(session, [lab.id for lab in labs])
            torn_down = _torn_down_at(session, [lab.id for lab in labs if lab.state is LabState.TORN_DOWN])
            return [_lab_status(lab, latest.get(lab.id), torn_down.get(lab.id)) for lab in labs]

    def runs_since(
        self, since: datetime | None, labs: Sequence[str] | None = None
    ) -> dict[str, list[RunPoint]]:
        """Each lab's verdict timeline, oldest first; every selected lab appears, with no runs if need be."""
        return self._timelines(since, labs, _timeline_points)

    def verdict_changes(
        self, since: datetime | None, labs: Sequence[str] | None = None
    ) -> dict[str, list[RunPoint]]:
        """The same timelines, but only each lab's first run and the runs whose verdict differs from the one
        before: a month of a class in a few hundred points instead of 864,000, computed in the database."""
        return self._timelines(since, labs, _timeline_changes)

    def _timelines(
        self,
        since: datetime | None,
        labs: Sequence[str] | None,
        query_of: Callable[[list[int], datetime | None], Select[int, int, datetime, Verdict, Trigger]],
    ) -> dict[str, list[RunPoint]]:
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            timelines: dict[str, list[RunPoint]] = {name: [] for name in lab_ids.values()}
            # Core rows, not ORM ones: these queries return runs by the hundred thousand.
            rows = session.connection().execute(query_of(list(lab_ids), since))
            for lab_id, run_id, started_at, verdict, trigger in rows:
                timelines[lab_ids[lab_id]].append(RunPoint(run_id, started_at, verdict, trigger))
            return timelines

    def latest_runs(
        self,
        labs: Sequence[str] | None = None,
        *,
        except_errors_starting: str | None = None,
        judged_only: bool = False,
    ) -> dict[str, RecordedRun]:
        """Each selected lab's latest run with its findings and invoke result; labs never audited are absent.

        `except_errors_starting` passes over runs whose error starts so (the daemon's abandoned audits);
        `judged_only` over every run that could not finish (it found nothing of the lab)."""
        conditions: list[ColumnElement[bool]] = []
        if judged_only:
            conditions.append(AuditRunRow.error.is_(None))
        if except_errors_starting is not None:
            conditions.append(
                or_(AuditRunRow.error.is_(None), ~AuditRunRow.error.startswith(except_errors_starting))
            )
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            runs = _latest_runs_by_lab(session, list(lab_ids), *conditions)
            return _recorded_runs(session, lab_ids, list(runs.values()))

    def step_history(self, labs: Sequence[str] | None, until: datetime) -> dict[str, list[StepsAt]]:
        """Each selected lab's step results, audit by audit, oldest first, from the runs that ended by
        `until` (inclusive; a run's moment is its end, else its start): what `auditor grade` judges,
        with nothing recorded after `until`. Runs without step results are left out; every selected
        lab appears, with no entries if need be. One query for every lab."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            history: dict[str, list[StepsAt]] = {name: [] for name in lab_ids.values()}
            runs, steps = AuditRunRow, StepResultRow
            at = func.coalesce(runs.finished_at, runs.started_at)
            query = (
                select(runs.lab_id, runs.id, at, steps.step, steps.status, steps.feedback)
                .join(steps, steps.run_id == runs.id)
                # started_at first: the (lab_id, started_at) index; a run ends after it starts.
                .where(runs.lab_id.in_(list(lab_ids)), runs.started_at <= until, at <= until)
                .order_by(runs.lab_id, at, runs.id, steps.position)
            )
            by_run: dict[int, tuple[str, datetime, list[StepResult]]] = {}  # in the query's order
            for lab_id, run_id, moment, step, status, feedback in session.connection().execute(query):
                if (run := by_run.get(run_id)) is None:
                    run = by_run[run_id] = (lab_ids[lab_id], moment, [])
                run[2].append(StepResult(step, StepStatus(status), feedback))
            for name, moment, results in by_run.values():
                history[name].append(StepsAt(moment, tuple(results)))
            return history

    def audited_for(self, lab: str, due_at: datetime) -> bool:
        """Whether the lab's audit due at that moment is recorded (by whichever replica)."""
        with self._reading() as session:
            query = _runs_of(lab, AuditRunRow.id).where(AuditRunRow.due_at == due_at).limit(1)
            return session.scalar(query) is not None

    def change_marker(self) -> tuple[int, int, datetime | None]:
        """What changes whenever a run, a life-cycle event or a lab's row is written: (latest run id,
        latest life-cycle event id, latest lab update). Three index look-ups, for pages that poll."""
        with self._reading() as session:
            run_id = session.scalar(select(func.max(AuditRunRow.id)))
            event_id = session.scalar(select(func.max(LifecycleEventRow.id)))
            updated_at = session.scalar(select(func.max(LabRow.updated_at)))
            return (run_id or 0, event_id or 0, updated_at)

    def lifecycle(self, lab: str) -> list[LifecycleEntry]:
        with self._reading() as session:
            rows = session.scalars(
                select(LifecycleEventRow)
                .join(LabRow, LabRow.id == LifecycleEventRow.lab_id)
                .where(LabRow.name == lab)
                .order_by(LifecycleEventRow.at, LifecycleEventRow.id)
            )
            return [LifecycleEntry(row.at, row.event, row.outcome, row.detail) for row in rows]

    def first_conformant_at(self, lab: str) -> datetime | None:
        return self._conformant_at(lab, AuditRunRow.started_at.asc())

    def last_conformant_at(self, lab: str) -> datetime | None:
        return self._conformant_at(lab, AuditRunRow.started_at.desc())

    def _conformant_at(self, lab: str, order: ColumnElement[Any]) -> datetime | None:
        with self._reading() as session:
            query = (
                _runs_of(lab, AuditRunRow.started_at)
                .where(AuditRunRow.verdict == Verdict.CONFORMANT)
                .order_by(order)
                .limit(1)
            )
            return session.scalar(query)

    def conformant_share(self, lab: str, since: datetime | None) -> float | None:
        """The fraction of the lab's runs since then that were conformant; None without runs."""
        conformant = func.sum(case((AuditRunRow.verdict == Verdict.CONFORMANT, 1), else_=0))
        with self._reading() as session:
            query = _runs_of(lab, func.count(), conformant).where(*_since(since))
            total, good = session.execute(query).one()
            return None if not total else int(good) / int(total)

    # ------------------------------------------------------------------------ aggregated in the database

    def verdict_counts(
        self,
        start: datetime,
        width: timedelta,
        since: datetime | None = None,
        labs: Sequence[str] | None = None,
    ) -> dict[str, list[VerdictCount]]:
        """Each lab's runs from `since` on, counted by verdict in buckets of `width` from `start`
        (bucket i: [start + i * width, start + (i + 1) * width)), in the database: a row per lab, bucket
        and verdict, never a row per run. Every selected lab appears, with no counts if need be."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            counts: dict[str, list[VerdictCount]] = {name: [] for name in lab_ids.values()}
            query = verdict_counts(list(lab_ids), start, width, since)
            for lab_id, bucket, verdict, runs, first_at, last_at in session.connection().execute(query).all():
                counts[lab_ids[lab_id]].append(
                    VerdictCount(int(bucket), Verdict(verdict), int(runs), first_at, last_at)
                )
            for found in counts.values():
                found.sort()
            return counts

    def time_at_verdicts(
        self, since: datetime | None, until: datetime, labs: Sequence[str] | None = None
    ) -> dict[str, TimeShare]:
        """How long each lab stood at each verdict from `since` (None: its first run) to `until`: every
        run counts from its start to the next run's start (or `until`) at its verdict, and the time
        between `since` and the lab's first run in the period at the verdict of its last run before.
        Computed in the database (see auditor.store.history); `TimeShare.share()` is the conformant
        share of the time, which a grade sheet weighs a month by."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            standing: dict[str, dict[Verdict, timedelta]] = {name: {} for name in lab_ids.values()}

            def add(lab_id: int, verdict: Any, microseconds: Any) -> None:
                if microseconds:
                    times = standing[lab_ids[lab_id]]
                    times[Verdict(verdict)] = times.get(Verdict(verdict), timedelta()) + timedelta(
                        microseconds=int(microseconds)
                    )

            connection = session.connection()
            for lab_id, verdict, microseconds in connection.execute(
                union_all(*time_at_verdicts(list(lab_ids), since, until))
            ):
                add(lab_id, verdict, microseconds)
            edges, counted_until = edges_of_period(list(lab_ids), since, until)
            for row in connection.execute(edges):
                lab_edges = period_edges(row)
                for verdict, microseconds in lab_edges.corrections(since, until, counted_until):
                    add(lab_edges.lab_id, verdict, microseconds)
            return {
                name: TimeShare({verdict: time for verdict, time in times.items() if time})
                for name, times in standing.items()
            }

    def last_at_verdict_before(
        self, verdict: Verdict, before: datetime, labs: Sequence[str] | None = None
    ) -> dict[str, datetime]:
        """Each lab's last run at that verdict before `before`; labs without one are absent."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            rows = session.connection().execute(last_at_verdict_before(list(lab_ids), verdict, before))
            return {lab_ids[lab_id]: at for lab_id, at in rows if at is not None}

    def first_run_at(self, labs: Sequence[str] | None = None) -> datetime | None:
        """The start of the earliest run of those labs (None: no run at all)."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            if not lab_ids:
                return None
            return session.scalar(first_run_at(list(lab_ids)))

    def lifecycles(
        self, labs: Sequence[str] | None = None, since: datetime | None = None
    ) -> dict[str, list[LifecycleEntry]]:
        """Each selected lab's life-cycle events from `since` on, oldest first, in one query."""
        with self._reading() as session:
            lab_ids = _selected_labs(session, labs)
            entries: dict[str, list[LifecycleEntry]] = {name: [] for name in lab_ids.values()}
            events = LifecycleEventRow
            query = (
                select(events.lab_id, events.at, events.event, events.outcome, events.detail)
                .where(events.lab_id.in_(list(lab_ids)), *([] if since is None else [events.at >= since]))
                .order_by(events.lab_id, events.at, events.id)
            )
            for lab_id, at, event, outcome, detail in session.connection().execute(query):
                entries[lab_ids[lab_id]].append(LifecycleEntry(at, event, outcome, detail))
            return entries


# ------------------------------------------------------------------------------------------- helpers


def audit_times(audit: LabAudit, now: datetime) -> tuple[datetime, datetime | None]:
    """The run's start and end.

    An audit that failed before it noted its start still happened: it is recorded at its end, or now.
    """
    return audit.started_at or audit.finished_at or now, audit.finished_at


def _lab_upsert(session: Session) -> Any:
    """Insert a lab, or update its accounts and its expiry (a None expiry keeps the one known)."""
    insert = _insert_for(session)(LabRow)
    return insert.on_conflict_do_update(
        index_elements=[LabRow.name],
        set_={
            "origin_account": insert.excluded.origin_account,
            "destination_account": insert.excluded.destination_account,
            "expires_at": func.coalesce(insert.excluded.expires_at, LabRow.expires_at),
            "updated_at": insert.excluded.updated_at,
        },
    )


def _insert_for(session: Session) -> Callable[..., Any]:
    """The INSERT construct with ON CONFLICT support for the session's database (its dialect's module
    imported here: a command on SQLite never loads PostgreSQL's, 0.05 s)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _lab_id(session: Session, name: str) -> int:
    lab_id = session.scalar(select(LabRow.id).where(LabRow.name == name))
    if lab_id is None:
        raise UnknownLab(f"no lab named {name!r} in the store")
    return lab_id


def _lab_for_audit(session: Session, audit: LabAudit, at: datetime) -> tuple[int, LabState]:
    known = session.execute(select(LabRow.id, LabRow.state).where(LabRow.name == audit.lab)).one_or_none()
    if known is not None:
        return known[0], LabState(known[1])
    lab = LabRow(
        name=audit.lab,
        origin_account=audit.origin_account,
        destination_account=audit.destination_account,
        state=LabState.PLANNED,
        updated_at=at,
    )
    session.add(lab)
    session.flush()
    return lab.id, LabState.PLANNED


def _release_lease(session: Session, lab: str, owner: str) -> None:
    session.execute(
        update(LabRow)
        .where(LabRow.name == lab, LabRow.lease_owner == owner)
        .values(lease_owner=None, lease_purpose=None, lease_since=None, lease_renewed_at=None),
        execution_options=BULK,
    )


def _finding_set_id(session: Session, prepared: PreparedFindings) -> int:
    existing = session.scalar(select(FindingSetRow.id).where(FindingSetRow.digest == prepared.digest))
    if existing is not None:
        return existing
    _store_documents(session, prepared.documents)
    insert = _insert_for(session)(FindingSetRow).values(digest=prepared.digest, size=len(prepared.findings))
    created = session.execute(insert.on_conflict_do_nothing().returning(FindingSetRow.id)).scalar()
    if created is None:
        # Another writer stored the same set between our look-up and our insert.
        return session.execute(
            select(FindingSetRow.id).where(FindingSetRow.digest == prepared.digest)
        ).scalar_one()
    session.execute(
        _insert_for(session)(FindingRow),
        [
            {
                "set_id": created,
                "position": position,
                "check": finding.check,
                "code": finding.code,
                **_subject_columns(finding.subject),
                "resource": finding.resource,
                "status": finding.status,
                "effect": finding.effect,
                "severity": finding.severity,
                "message": finding.message,
                "expected_digest": finding.expected_digest,
                "actual_digest": finding.actual_digest,
                "breaks_lab": finding.breaks_lab,
                "witness_digest": finding.witness_digest,
                "changed_by_digest": finding.changed_by_digest,
            }
            for position, finding in enumerate(prepared.findings)
        ],
    )
    return int(created)


def _store_documents(session: Session, documents: dict[str, str]) -> None:
    if not documents:
        return
    # In digest order: two PostgreSQL writers sharing documents then wait on each other, never deadlock.
    rows = [{"digest": digest, "body": documents[digest]} for digest in sorted(documents)]
    session.execute(_insert_for(session)(DocumentRow).on_conflict_do_nothing(), rows)


def _insert_invoke_result(session: Session, run_id: int, invoke: InvokeResult) -> None:
    session.add(
        InvokeResultRow(
            run_id=run_id,
            ok=invoke.ok,
            cause=invoke.cause,
            detail=invoke.detail,
            duration_ms=invoke.duration_ms,
        )
    )
    session.flush()


def _insert_step_results(session: Session, run_id: int, steps: Sequence[StepResult]) -> None:
    session.execute(
        _insert_for(session)(StepResultRow),
        [
            {
                "run_id": run_id,
                "position": position,
                "step": result.step,
                "status": StepStatus(result.status),
                "feedback": result.feedback,
            }
            for position, result in enumerate(steps)
        ],
    )


def _set_state(session: Session, lab_id: int, state: LabState, at: datetime) -> None:
    session.execute(update(LabRow).where(LabRow.id == lab_id).values(state=state, updated_at=at))


def _add_event(session: Session, lab_id: int, at: datetime, event: LifecycleEvent, detail: str) -> None:
    session.add(
        LifecycleEventRow(lab_id=lab_id, at=at, event=event, outcome=OUTCOME_OF[event], detail=detail)
    )


def _record_resources(session: Session, lab_id: int, resources: Iterable[Resource], at: datetime) -> int:
    """Add the resources not already recorded as live for the lab; returns how many were new."""
    live = set(
        session.scalars(
            select(LabResourceRow.arn).where(
                LabResourceRow.lab_id == lab_id, LabResourceRow.deleted_at.is_(None)
            )
        )
    )
    new = [(kind, account, arn) for kind, account, arn in dict.fromkeys(resources) if arn not in live]
    session.add_all(
        LabResourceRow(lab_id=lab_id, kind=kind, account=account, arn=arn, created_at=at)
        for kind, account, arn in new
    )
    return len(new)


def _prune_lab(session: Session, lab_id: int, cutoff: datetime) -> int:
    latest = session.scalar(_latest_run_id(AuditRunRow.lab_id == lab_id))
    if latest is None:
        return 0
    old_runs = delete(AuditRunRow).where(
        AuditRunRow.lab_id == lab_id, AuditRunRow.started_at < cutoff, AuditRunRow.id != latest
    )
    return _rowcount(session.execute(old_runs, execution_options=BULK))


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0))


def _collect_garbage(session: Session) -> None:
    """Drop finding sets no run refers to, then documents no finding refers to."""
    unused_sets = delete(FindingSetRow).where(~exists().where(AuditRunRow.finding_set_id == FindingSetRow.id))
    unused_documents = delete(DocumentRow).where(
        ~exists().where(FindingRow.expected_digest == DocumentRow.digest),
        ~exists().where(FindingRow.actual_digest == DocumentRow.digest),
        ~exists().where(FindingRow.witness_digest == DocumentRow.digest),
        ~exists().where(FindingRow.changed_by_digest == DocumentRow.digest),
    )
    session.execute(unused_sets, execution_options=BULK)
    session.execute(unused_documents, execution_options=BULK)


def _latest_run_id(*conditions: ColumnElement[bool]) -> Select[int]:
    return (
        select(AuditRunRow.id)
        .where(*conditions)
        .order_by(AuditRunRow.started_at.desc(), AuditRunRow.id.desc())
        .limit(1)
    )


def _latest_runs_by_lab(
    session: Session, lab_ids: list[int], *conditions: ColumnElement[bool]
) -> dict[int, AuditRunRow]:
    """Each lab's latest run: one index probe per lab on (lab_id, started_at), then the rows by id."""
    if not lab_ids:
        return {}
    latest_id = (
        _latest_run_id(AuditRunRow.lab_id == LabRow.id, *conditions).correlate(LabRow).scalar_subquery()
    )
    run_ids = [
        run_id for run_id in session.scalars(select(latest_id).where(LabRow.id.in_(lab_ids))) if run_id
    ]
    if not run_ids:
        return {}
    runs = session.scalars(select(AuditRunRow).where(AuditRunRow.id.in_(run_ids)))
    return {run.lab_id: run for run in runs}


def _timeline_points(
    lab_ids: list[int], since: datetime | None
) -> Select[int, int, datetime, Verdict, Trigger]:
    runs = AuditRunRow
    return (
        select(runs.lab_id, runs.id, runs.started_at, runs.verdict, runs.trigger)
        .where(runs.lab_id.in_(lab_ids), *_since(since))
        .order_by(runs.lab_id, runs.started_at, runs.id)
    )


def _timeline_changes(
    lab_ids: list[int], since: datetime | None
) -> Select[int, int, datetime, Verdict, Trigger]:
    runs = AuditRunRow
    previous = func.lag(runs.verdict).over(partition_by=runs.lab_id, order_by=(runs.started_at, runs.id))
    points = (
        _timeline_points(lab_ids, since).add_columns(previous.label("previous")).order_by(None).subquery()
    )
    return (
        select(points.c.lab_id, points.c.id, points.c.started_at, points.c.verdict, points.c.trigger)
        .where(or_(points.c.previous.is_(None), points.c.previous != points.c.verdict))
        .order_by(points.c.lab_id, points.c.started_at, points.c.id)
    )


def _selected_labs(session: Session, names: Sequence[str] | None) -> dict[int, str]:
    query = select(LabRow.id, LabRow.name).order_by(LabRow.name)
    if names is not None:
        query = query.where(LabRow.name.in_(list(names)))
    return {lab_id: name for lab_id, name in session.execute(query)}


def _runs_of(lab: str, *columns: Any) -> Select[Any]:
    return select(*columns).join(LabRow, LabRow.id == AuditRunRow.lab_id).where(LabRow.name == lab)


def _since(since: datetime | None) -> list[ColumnElement[bool]]:
    return [] if since is None else [AuditRunRow.started_at >= since]


def _lab_status(lab: LabRow, latest: AuditRunRow | None, torn_down_at: datetime | None) -> LabStatus:
    return LabStatus(
        name=lab.name,
        state=lab.state,
        expires_at=lab.expires_at,
        last_verdict=latest.verdict if latest else None,
        last_audit_at=latest.started_at if latest else None,
        origin=lab.origin_account,
        destination=lab.destination_account,
        torn_down_at=torn_down_at,
    )


def _torn_down_at(session: Session, lab_ids: list[int]) -> dict[int, datetime]:
    """When each of these labs was last torn down."""
    if not lab_ids:
        return {}
    rows = session.execute(
        select(LifecycleEventRow.lab_id, func.max(LifecycleEventRow.at))
        .where(LifecycleEventRow.lab_id.in_(lab_ids), LifecycleEventRow.event == LifecycleEvent.TORN_DOWN)
        .group_by(LifecycleEventRow.lab_id)
    )
    return {lab_id: at for lab_id, at in rows}


def _recorded_runs(
    session: Session, lab_names: dict[int, str], runs: list[AuditRunRow]
) -> dict[str, RecordedRun]:
    findings = _findings_of_sets(session, {run.finding_set_id for run in runs if run.finding_set_id})
    invokes = _invoke_results(session, [run.id for run in runs])
    recorded = [
        RecordedRun(
            run_id=run.id,
            lab=lab_names[run.lab_id],
            trigger=run.trigger,
            started_at=run.started_at,
            finished_at=run.finished_at,
            verdict=run.verdict,
            error=run.error,
            requests=run.requests,
            findings=findings.get(run.finding_set_id, ()) if run.finding_set_id else (),
            invoke=invokes.get(run.id),
        )
        for run in runs
    ]
    return {run.lab: run for run in sorted(recorded, key=lambda run: run.lab)}


def _findings_of_sets(session: Session, set_ids: set[int]) -> dict[int, tuple[Finding, ...]]:
    if not set_ids:
        return {}
    rows = list(
        session.scalars(
            select(FindingRow)
            .where(FindingRow.set_id.in_(set_ids))
            .order_by(FindingRow.set_id, FindingRow.position)
        )
    )
    digests = {
        digest
        for row in rows
        for digest in (row.expected_digest, row.actual_digest, row.witness_digest, row.changed_by_digest)
        if digest
    }
    documents = select(DocumentRow.digest, DocumentRow.body).where(DocumentRow.digest.in_(digests))
    bodies = {digest: body for digest, body in session.execute(documents)}
    by_set: dict[int, list[Finding]] = {}
    for row in rows:
        by_set.setdefault(row.set_id, []).append(_finding(row, bodies))
    return {set_id: tuple(found) for set_id, found in by_set.items()}


def _finding(row: FindingRow, bodies: dict[str, str]) -> Finding:
    return Finding(
        code=row.code,
        subject=_subject(row),
        resource=row.resource,
        status=row.status,
        effect=row.effect,
        severity=row.severity,
        message=row.message,
        expected=decode_document(bodies.get(row.expected_digest)) if row.expected_digest else None,
        actual=decode_document(bodies.get(row.actual_digest)) if row.actual_digest else None,
        breaks_lab=row.breaks_lab,
        witness=Witness.from_json(_document(bodies, row.witness_digest)),
        changed_by=Actor.from_json(_document(bodies, row.changed_by_digest)),
    )


def _subject_columns(subject: Subject | None) -> dict[str, str | None]:
    key = subject.key if subject is not None else (None, None, None, None)
    return dict(zip(("subject_kind", "subject_account", "subject_owner", "subject_name"), key, strict=True))


def _subject(row: FindingRow) -> Subject | None:
    """None for a finding recorded before findings had subjects (revision 0007)."""
    if row.subject_kind is None:
        return None
    return Subject(
        row.subject_kind, row.subject_account or "", row.subject_owner or "", row.subject_name or ""
    )


def _document(bodies: dict[str, str], digest: str | None) -> Any:
    return decode_document(bodies.get(digest)) if digest else None


def _invoke_results(session: Session, run_ids: list[int]) -> dict[int, InvokeResult]:
    if not run_ids:
        return {}
    rows = session.scalars(select(InvokeResultRow).where(InvokeResultRow.run_id.in_(run_ids)))
    return {
        row.run_id: InvokeResult(ok=row.ok, cause=row.cause, detail=row.detail, duration_ms=row.duration_ms)
        for row in rows
    }
