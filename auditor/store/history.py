"""The history aggregated in the database: verdicts counted by time bucket, time at each verdict.

A class of 1,000 labs audited every five minutes makes 8.6 million runs a month. A report needs them
counted (per lab, per bucket of its grid, per verdict) and weighed by time, never listed. So every
recorded run is also counted in `verdict_totals`, by lab, verdict and span of one hour and of six
hours, with how long the lab stood at that verdict afterwards (until its next run). The queries here
add those totals up in SQL, on SQLite and PostgreSQL alike, for the spans that lie wholly inside a
period, and read the runs themselves only at its edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from auditor.domain.model import Verdict
from auditor.store.models import AuditRunRow, LabRow, VerdictTotalRow
from auditor.store.sql import epoch_us, micros, truncate, whole
from auditor.store.types import UtcDateTime

HOUR = timedelta(hours=1)
SPANS = (timedelta(hours=6), HOUR)  # coarsest first
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The queries' rows are plain tuples of differing shapes.
Rows = Select[*tuple[Any, ...]]


def floor_to(moment: datetime, span: timedelta) -> datetime:
    return _EPOCH + (moment - _EPOCH) // span * span


def ceil_to(moment: datetime, span: timedelta) -> datetime:
    floor = floor_to(moment, span)
    return floor if floor == moment else floor + span


def floor_hour(moment: datetime) -> datetime:
    return floor_to(moment, HOUR)


def ceil_hour(moment: datetime) -> datetime:
    return ceil_to(moment, HOUR)


def _hours(span: timedelta) -> int:
    return span // HOUR


def _earlier(first: SQLColumnExpression[Any], second: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    # Neither LEAST (PostgreSQL) nor the two-argument min (SQLite) is spelled the same in both.
    return case((first < second, first), else_=second)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


# ------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class Neighbours:
    """The runs just before and just after a new run of the lab, in the order (started_at, id)."""

    previous: tuple[datetime, Verdict] | None
    next_at: datetime | None


def neighbours(session: Session, lab_id: int, run_id: int, started_at: datetime) -> Neighbours:
    runs = AuditRunRow
    previous = session.execute(
        select(runs.started_at, runs.verdict)
        .where(runs.lab_id == lab_id, runs.id != run_id, runs.started_at <= started_at)
        .order_by(runs.started_at.desc(), runs.id.desc())
        .limit(1)
    ).first()
    next_at = session.scalar(
        select(func.min(runs.started_at)).where(runs.lab_id == lab_id, runs.started_at > started_at)
    )
    return Neighbours((previous[0], Verdict(previous[1])) if previous else None, next_at)


def count_run(
    session: Session, insert_for: Any, lab_id: int, run_id: int, started_at: datetime, verdict: Verdict
) -> None:
    """Count a new run in its spans; the run before it now stands until it rather than until the next."""
    around = neighbours(session, lab_id, run_id, started_at)
    standing = _us(around.next_at) - _us(started_at) if around.next_at else 0
    totals = VerdictTotalRow
    for span in SPANS:
        statement = insert_for(totals).values(
            lab_id=lab_id,
            span_hours=_hours(span),
            start=floor_to(started_at, span),
            verdict=verdict,
            runs=1,
            first_at=started_at,
            last_at=started_at,
            standing_us=standing,
        )
        excluded = statement.excluded
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[totals.lab_id, totals.span_hours, totals.start, totals.verdict],
                set_={
                    "runs": totals.runs + 1,
                    "first_at": _earlier(excluded.first_at, totals.first_at),
                    "last_at": case(
                        (excluded.last_at > totals.last_at, excluded.last_at), else_=totals.last_at
                    ),
                    "standing_us": totals.standing_us + excluded.standing_us,
                },
            )
        )
    if around.previous is None:
        return
    previous_at, previous_verdict = around.previous
    # It stood until the next run (or, without one, for nothing yet); now until this one.
    change = _us(started_at) - (_us(around.next_at) if around.next_at else _us(previous_at))
    if change:
        for span in SPANS:
            session.execute(
                update(totals)
                .where(
                    totals.lab_id == lab_id,
                    totals.span_hours == _hours(span),
                    totals.start == floor_to(previous_at, span),
                    totals.verdict == previous_verdict,
                )
                .values(standing_us=totals.standing_us + change)
            )


def recount_before(session: Session, lab_id: int | None, end: datetime) -> None:
    """Count the runs before `end` again (one lab, or every lab), after a prune or a bulk load.

    `end` must be a multiple of the coarsest span, so that no span is half recounted.
    """
    totals, runs = VerdictTotalRow, AuditRunRow
    delete_old = delete(totals).where(totals.start < end)
    if lab_id is not None:
        delete_old = delete_old.where(totals.lab_id == lab_id)
    session.execute(delete_old)
    next_at = func.lead(runs.started_at).over(partition_by=runs.lab_id, order_by=(runs.started_at, runs.id))
    paced = select(
        runs.lab_id,
        runs.started_at,
        runs.verdict,
        func.coalesce(epoch_us(next_at) - epoch_us(runs.started_at), 0).label("standing_us"),
    )
    if lab_id is not None:
        paced = paced.where(runs.lab_id == lab_id)
    timed = paced.subquery()
    for span in SPANS:
        start = truncate(timed.c.started_at, span)
        counted = (
            select(
                timed.c.lab_id,
                literal(_hours(span)),
                start,
                timed.c.verdict,
                func.count(),
                func.min(timed.c.started_at),
                func.max(timed.c.started_at),
                func.sum(timed.c.standing_us),
            )
            .where(timed.c.started_at < end)
            .group_by(timed.c.lab_id, start, timed.c.verdict)
        )
        session.execute(
            insert(totals).from_select(
                ["lab_id", "span_hours", "start", "verdict", "runs", "first_at", "last_at", "standing_us"],
                counted,
            )
        )


# ------------------------------------------------------------------------------------------- counts


def _span_for(start: datetime, width: timedelta) -> timedelta | None:
    """The coarsest span whose totals fit the buckets exactly (None: count the runs themselves)."""
    for span in SPANS:
        if not width % span and floor_to(start, span) == start:
            return span
    return None


def verdict_counts(lab_ids: list[int], start: datetime, width: timedelta, since: datetime | None) -> Rows:
    """(lab_id, bucket, verdict, runs, first_at, last_at) of the runs from `since` on, bucket i being
    [start + i * width, start + (i + 1) * width): the totals of the spans wholly in the period, and
    the runs of the span cut by `since`."""
    from_ = max(start, since or start)
    span = _span_for(start, width)
    if span is None:
        return _counted(_runs_by_bucket(lab_ids, start, width, from_, None))
    whole_spans_from = ceil_to(from_, span)
    parts = [_totals_by_bucket(lab_ids, start, width, span, whole_spans_from)]
    if whole_spans_from != from_:
        parts.append(_runs_by_bucket(lab_ids, start, width, from_, whole_spans_from))
    return _counted(*parts)


def _bucket(moment: SQLColumnExpression[Any], start: datetime, width: timedelta) -> ColumnElement[Any]:
    # Integer division of non-negative microseconds: the same on both databases.
    return (epoch_us(moment) - whole(_us(start))) // whole(micros(width))


def _runs_by_bucket(
    lab_ids: list[int], start: datetime, width: timedelta, from_: datetime, until: datetime | None
) -> Rows:
    runs = AuditRunRow
    bucket = _bucket(runs.started_at, start, width)
    conditions = [runs.lab_id.in_(lab_ids), runs.started_at >= from_]
    if until is not None:
        conditions.append(runs.started_at < until)
    return (
        select(
            runs.lab_id.label("lab_id"),
            bucket.label("bucket"),
            runs.verdict.label("verdict"),
            func.count().label("runs"),
            func.min(runs.started_at).label("first_at"),
            func.max(runs.started_at).label("last_at"),
        )
        .where(*conditions)
        .group_by(runs.lab_id, bucket, runs.verdict)
    )


def _totals_by_bucket(
    lab_ids: list[int], start: datetime, width: timedelta, span: timedelta, from_: datetime
) -> Rows:
    totals = VerdictTotalRow
    bucket = _bucket(totals.start, start, width)
    return (
        select(
            totals.lab_id.label("lab_id"),
            bucket.label("bucket"),
            totals.verdict.label("verdict"),
            func.sum(totals.runs).label("runs"),
            func.min(totals.first_at).label("first_at"),
            func.max(totals.last_at).label("last_at"),
        )
        .where(totals.lab_id.in_(lab_ids), totals.span_hours == _hours(span), totals.start >= from_)
        .group_by(totals.lab_id, bucket, totals.verdict)
    )


def _counted(*parts: Rows) -> Rows:
    """The parts added up per (lab, bucket, verdict) (a run is in exactly one part)."""
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery()
    return select(
        both.c.lab_id,
        both.c.bucket,
        both.c.verdict,
        func.sum(both.c.runs),
        func.min(both.c.first_at),
        func.max(both.c.last_at),
    ).group_by(both.c.lab_id, both.c.bucket, both.c.verdict)


# ----------------------------------------------------------------------------------- time at verdict
#
# Over [since, until) a run stands from its start to min(its next run's start, until), and before its
# first run in the period the lab stands at the verdict of its last run before it. The spans wholly
# inside [h1, h2) give the sum of their runs' standing from their totals; the runs in [since, h1) and
# [h2, until) are read one by one; the last run before h2 stood, in the totals, until its next run,
# which may lie past `until`: the difference is corrected for each lab from a few index look-ups.


def time_at_verdicts(lab_ids: list[int], since: datetime | None, until: datetime) -> list[Rows]:
    """Queries of (lab_id, verdict, microseconds) whose rows add up to each lab's time at each verdict in
    [since, until) from its first run in the period on (before it: see `edges_of_period`)."""
    span = SPANS[0]
    h1 = None if since is None else ceil_to(since, span)
    h2 = floor_to(until, span)
    if h1 is not None and h1 >= h2:
        return [_runs_standing(lab_ids, since, until, until)]
    totals = VerdictTotalRow
    inside = select(totals.lab_id, totals.verdict, func.sum(totals.standing_us)).where(
        totals.lab_id.in_(lab_ids), totals.span_hours == _hours(span), totals.start < h2
    )
    if h1 is not None:
        inside = inside.where(totals.start >= h1)
    queries: list[Rows] = [inside.group_by(totals.lab_id, totals.verdict)]
    if since is not None and h1 is not None and since < h1:
        queries.append(_runs_standing(lab_ids, since, h1, until))
    queries.append(_runs_standing(lab_ids, h2, until, until))
    return queries


def _runs_standing(lab_ids: list[int], from_: datetime | None, to: datetime, until: datetime) -> Rows:
    """The runs in [from_, to), each standing until the next run (looked up past `to`), at most `until`."""
    runs = AuditRunRow
    later = AuditRunRow.__table__.alias("later")
    first_after = (
        select(func.min(later.c.started_at))
        .where(later.c.lab_id == runs.lab_id, later.c.started_at >= to)
        .correlate(runs)
        .scalar_subquery()
    )
    next_at = func.coalesce(
        func.lead(runs.started_at).over(partition_by=runs.lab_id, order_by=(runs.started_at, runs.id)),
        first_after,
        literal(until, UtcDateTime()),
    )
    conditions = [runs.lab_id.in_(lab_ids), runs.started_at < to]
    if from_ is not None:
        conditions.append(runs.started_at >= from_)
    paced = select(runs.lab_id, runs.verdict, runs.started_at, next_at.label("next_at")).where(*conditions)
    timed = paced.subquery()
    end = _earlier(timed.c.next_at, literal(until, UtcDateTime()))
    return select(
        timed.c.lab_id, timed.c.verdict, func.sum(epoch_us(end) - epoch_us(timed.c.started_at))
    ).group_by(timed.c.lab_id, timed.c.verdict)


@dataclass(frozen=True)
class PeriodEdges:
    """What a lab's time at each verdict needs beyond the sums: the verdict it stood at when the period
    began and its first run in it; the last run counted in the totals and the run after that one."""

    lab_id: int
    verdict_before: Verdict | None
    first_at: datetime | None
    last_counted: tuple[datetime, Verdict] | None
    after_last_counted: datetime | None

    def corrections(
        self, since: datetime | None, until: datetime, counted_until: datetime | None
    ) -> list[tuple[Verdict, int]]:
        """(verdict, microseconds) to add: the start of the period, and the clip of the last counted run."""
        found: list[tuple[Verdict, int]] = []
        if since is not None and self.verdict_before is not None:
            found.append((self.verdict_before, _us(min(self.first_at or until, until)) - _us(since)))
        if counted_until is not None and self.last_counted is not None:
            at, verdict = self.last_counted
            after = self.after_last_counted
            counted = _us(after) - _us(at) if after is not None else 0
            actual = _us(min(after or until, until)) - _us(at)
            found.append((verdict, actual - counted))
        return found


def edges_of_period(
    lab_ids: list[int], since: datetime | None, until: datetime
) -> tuple[Rows, datetime | None]:
    """The query of each lab's PeriodEdges fields, and up to when the totals were used (None: not)."""
    span = SPANS[0]
    h1 = None if since is None else ceil_to(since, span)
    h2 = floor_to(until, span)
    counted_until = None if h1 is not None and h1 >= h2 else h2
    runs = AuditRunRow

    def one(column: Any, *conditions: ColumnElement[bool], last: bool = True) -> Any:
        order = (runs.started_at.desc(), runs.id.desc()) if last else (runs.started_at, runs.id)
        return (
            select(column)
            .where(runs.lab_id == LabRow.id, *conditions)
            .order_by(*order)
            .limit(1)
            .correlate(LabRow)
            .scalar_subquery()
        )

    columns: list[Any] = [LabRow.id, null(), null(), null(), null(), null()]
    if since is not None:
        columns[1] = one(runs.verdict, runs.started_at < since)
        columns[2] = one(runs.started_at, runs.started_at >= since, last=False)
    if counted_until is not None:
        counted = [runs.started_at < h2, *([] if h1 is None else [runs.started_at >= h1])]
        columns[3] = one(runs.started_at, *counted)
        columns[4] = one(runs.verdict, *counted)
        columns[5] = one(runs.started_at, runs.started_at >= h2, last=False)
    return select(*columns).where(LabRow.id.in_(lab_ids)), counted_until


def period_edges(row: Sequence[Any]) -> PeriodEdges:
    lab_id, before, first_at, last_at, last_verdict, after = row
    return PeriodEdges(
        lab_id=lab_id,
        verdict_before=Verdict(before) if before else None,
        first_at=first_at,
        last_counted=(last_at, Verdict(last_verdict)) if last_at and last_verdict else None,
        after_last_counted=after or None,
    )


# ------------------------------------------------------------------------------------ other readings


def last_at_verdict_before(lab_ids: list[int], verdict: Verdict, before: datetime) -> Rows:
    """(lab_id, the start of its last run at that verdict before `before`), for the labs that have one."""
    totals, runs = VerdictTotalRow, AuditRunRow
    span = SPANS[0]
    whole_spans = (
        select(totals.lab_id.label("lab_id"), func.max(totals.last_at).label("last_at"))
        .where(
            totals.lab_id.in_(lab_ids),
            totals.span_hours == _hours(span),
            totals.verdict == verdict,
            totals.start < floor_to(before, span),
        )
        .group_by(totals.lab_id)
    )
    edge = (
        select(runs.lab_id.label("lab_id"), func.max(runs.started_at).label("last_at"))
        .where(
            runs.lab_id.in_(lab_ids),
            runs.verdict == verdict,
            runs.started_at >= floor_to(before, span),
            runs.started_at < before,
        )
        .group_by(runs.lab_id)
    )
    both = union_all(whole_spans, edge).subquery()
    return select(both.c.lab_id, func.max(both.c.last_at)).group_by(both.c.lab_id)


def first_run_at(lab_ids: list[int]) -> Rows:
    """The start of the earliest run of any of the labs: an index look-up a lab."""
    runs = AuditRunRow
    first = (
        select(func.min(runs.started_at))
        .where(runs.lab_id == LabRow.id)
        .correlate(LabRow)
        .scalar_subquery()
        .label("first_at")
    )
    per_lab = select(first).where(LabRow.id.in_(lab_ids)).subquery()
    return select(func.min(per_lab.c.first_at))
