"""The history aggregated in the database: verdicts counted by time bucket, time at each verdict.

A class of 1,000 labs audited every five minutes makes 8.6 million runs a month. The report needs
them counted (per lab, per bucket of its grid, per verdict) and weighed by time, never listed: these
queries do the counting in SQL, on SQLite and PostgreSQL alike, and return a row per lab, bucket and
verdict. They read `verdict_hours` (kept up to date by every recorded run) for the hours that lie
wholly in the period, and the runs themselves only at the edges of the period and, for the time at
each verdict, in the hours where a lab's verdict changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    SQLColumnExpression,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from auditor.model import Verdict
from auditor.store.models import AuditRunRow, LabRow, VerdictHourRow
from auditor.store.sql import epoch_us, micros, shift, truncate, whole
from auditor.store.types import UtcDateTime

HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The queries' rows are plain tuples of differing shapes.
Rows = Select[*tuple[Any, ...]]


def floor_hour(moment: datetime) -> datetime:
    return _EPOCH + (moment - _EPOCH) // HOUR * HOUR


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def _at(moment: datetime) -> ColumnElement[Any]:
    return literal(moment, UtcDateTime())


def _earlier(first: SQLColumnExpression[Any], second: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    # Neither LEAST (PostgreSQL) nor the two-argument min (SQLite) is spelled the same in both.
    return case((first < second, first), else_=second)


# ------------------------------------------------------------------------------------------ writing


def count_run(insert: Any, lab_id: int, started_at: datetime, verdict: Verdict) -> Insert:
    """The upsert that counts one more run in its lab's hour; `insert` is the dialect's INSERT."""
    hours = VerdictHourRow
    statement = insert(hours).values(
        lab_id=lab_id,
        hour=floor_hour(started_at),
        verdict=verdict,
        runs=1,
        first_at=started_at,
        last_at=started_at,
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[hours.lab_id, hours.hour, hours.verdict],
        set_={
            "runs": hours.runs + 1,
            "first_at": _earlier(excluded.first_at, hours.first_at),
            "last_at": case((excluded.last_at > hours.last_at, excluded.last_at), else_=hours.last_at),
        },
    )


def recount_hours_before(session: Session, lab_id: int, end: datetime) -> None:
    """Count the lab's hours before `end` (an hour boundary) again from its runs, after a prune."""
    hours = VerdictHourRow
    session.execute(delete(hours).where(hours.lab_id == lab_id, hours.hour < end))
    runs = AuditRunRow
    hour = truncate(runs.started_at, HOUR)
    counted = (
        select(
            runs.lab_id,
            hour,
            runs.verdict,
            func.count(),
            func.min(runs.started_at),
            func.max(runs.started_at),
        )
        .where(runs.lab_id == lab_id, runs.started_at < end)
        .group_by(runs.lab_id, hour, runs.verdict)
    )
    session.execute(
        insert(hours).from_select(["lab_id", "hour", "verdict", "runs", "first_at", "last_at"], counted)
    )


# ------------------------------------------------------------------------------------------- counts


def verdict_counts(lab_ids: list[int], start: datetime, width: timedelta, since: datetime | None) -> Rows:
    """(lab_id, bucket, verdict, runs, first_at, last_at) of the runs from `since` on, bucket i being
    [start + i * width, start + (i + 1) * width). Whole hours come from `verdict_hours` when a bucket
    is made of whole hours; the rest from the runs."""
    if width % HOUR or start != floor_hour(start):
        return _counted(_runs_by_bucket(lab_ids, start, width, since, None))
    whole_hours_from = None if since is None else ceil_hour(since)
    parts: list[Rows] = [_hours_by_bucket(lab_ids, start, width, whole_hours_from)]
    if since is not None and whole_hours_from != since:
        parts.append(_runs_by_bucket(lab_ids, start, width, since, whole_hours_from))
    return _counted(*parts)


def _bucket(moment: SQLColumnExpression[Any], start: datetime, width: timedelta) -> ColumnElement[Any]:
    # Integer division of non-negative microseconds: the same on both databases.
    return (epoch_us(moment) - whole(micros(start - _EPOCH))) // whole(micros(width))


def _runs_by_bucket(
    lab_ids: list[int], start: datetime, width: timedelta, since: datetime | None, until: datetime | None
) -> Rows:
    runs = AuditRunRow
    bucket = _bucket(runs.started_at, start, width)
    conditions = [runs.lab_id.in_(lab_ids), runs.started_at >= max(start, since or start)]
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


def _hours_by_bucket(lab_ids: list[int], start: datetime, width: timedelta, since: datetime | None) -> Rows:
    hours = VerdictHourRow
    bucket = _bucket(hours.hour, start, width)
    return (
        select(
            hours.lab_id.label("lab_id"),
            bucket.label("bucket"),
            hours.verdict.label("verdict"),
            func.sum(hours.runs).label("runs"),
            func.min(hours.first_at).label("first_at"),
            func.max(hours.last_at).label("last_at"),
        )
        .where(hours.lab_id.in_(lab_ids), hours.hour >= max(start, since or start))
        .group_by(hours.lab_id, bucket, hours.verdict)
    )


def _counted(*parts: Rows) -> Rows:
    """The parts added up per (lab, bucket, verdict) (a run is in exactly one part)."""
    if len(parts) == 1:
        return parts[0].order_by(None)
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


def time_at_verdicts(lab_ids: list[int], since: datetime | None, until: datetime) -> Rows:
    """(lab_id, verdict, microseconds): how long each lab stood at each verdict in [since, until), from
    its first run in the period on (the time before it is the caller's, see `standing_before`).

    A run stands from its start to the next run's start (or `until`). In an hour with one verdict that
    is the time from the hour's first run to the next hour's first run, read from `verdict_hours`;
    in an hour with several, or cut by the period's bounds, run by run.
    """
    hours = VerdictHourRow
    per_hour = (
        select(
            hours.lab_id.label("lab_id"),
            hours.hour.label("hour"),
            func.min(hours.first_at).label("first_at"),
            func.count().label("verdicts"),
            func.min(hours.verdict).label("verdict"),
        )
        .where(
            hours.lab_id.in_(lab_ids),
            hours.hour < until,
            *([] if since is None else [hours.hour >= floor_hour(since)]),
        )
        .group_by(hours.lab_id, hours.hour)
        .cte("per_hour")
    )
    paced = select(
        per_hour,
        func.lead(per_hour.c.first_at)
        .over(partition_by=per_hour.c.lab_id, order_by=per_hour.c.hour)
        .label("next_at"),
    ).cte("paced")
    end = _at(until)
    wholly_inside = and_(
        shift(paced.c.hour, HOUR) <= end,
        true() if since is None else paced.c.hour >= _at(since),
    )
    plain = select(
        paced.c.lab_id,
        paced.c.verdict,
        epoch_us(_earlier(func.coalesce(paced.c.next_at, end), end)) - epoch_us(paced.c.first_at),
    ).where(paced.c.verdicts == 1, wholly_inside)
    runs = AuditRunRow
    run_next = func.lead(runs.started_at).over(
        partition_by=(runs.lab_id, paced.c.hour), order_by=(runs.started_at, runs.id)
    )
    run_by_run = (
        select(
            runs.lab_id.label("lab_id"),
            runs.verdict.label("verdict"),
            runs.started_at.label("started_at"),
            func.coalesce(run_next, paced.c.next_at, end).label("next_at"),
        )
        .join(
            paced,
            and_(
                paced.c.lab_id == runs.lab_id,
                runs.started_at >= paced.c.hour,
                runs.started_at < shift(paced.c.hour, HOUR),
            ),
        )
        .where(
            or_(paced.c.verdicts > 1, ~wholly_inside),
            runs.started_at < end,
            *([] if since is None else [runs.started_at >= since]),
        )
        .subquery()
    )
    changing = select(
        run_by_run.c.lab_id,
        run_by_run.c.verdict,
        epoch_us(_earlier(run_by_run.c.next_at, end)) - epoch_us(run_by_run.c.started_at),
    )
    both = union_all(plain, changing).subquery()
    columns = list(both.c)
    return select(columns[0], columns[1], func.sum(columns[2])).group_by(columns[0], columns[1])


def standing_before(lab_ids: list[int], since: datetime, until: datetime) -> Rows:
    """(lab_id, verdict of its last run before `since`, its first run from `since` on): the lab stood at
    that verdict from `since` to that first run (or `until`). Two index look-ups a lab."""
    runs = AuditRunRow
    before = (
        select(runs.verdict)
        .where(runs.lab_id == LabRow.id, runs.started_at < since)
        .order_by(runs.started_at.desc(), runs.id.desc())
        .limit(1)
        .correlate(LabRow)
        .scalar_subquery()
    )
    after = (
        select(func.min(runs.started_at))
        .where(runs.lab_id == LabRow.id, runs.started_at >= since, runs.started_at < until)
        .correlate(LabRow)
        .scalar_subquery()
    )
    return select(LabRow.id, before, after).where(LabRow.id.in_(lab_ids))


def last_at_verdict_before(lab_ids: list[int], verdict: Verdict, before: datetime) -> Rows:
    """(lab_id, the start of its last run at that verdict before `before`), for the labs that have one."""
    hours, runs = VerdictHourRow, AuditRunRow
    whole_hours = select(hours.lab_id.label("lab_id"), func.max(hours.last_at).label("last_at")).where(
        hours.lab_id.in_(lab_ids), hours.verdict == verdict, hours.hour < floor_hour(before)
    )
    edge = select(runs.lab_id.label("lab_id"), func.max(runs.started_at).label("last_at")).where(
        runs.lab_id.in_(lab_ids),
        runs.verdict == verdict,
        runs.started_at >= floor_hour(before),
        runs.started_at < before,
    )
    both = union_all(whole_hours.group_by(hours.lab_id), edge.group_by(runs.lab_id)).subquery()
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
