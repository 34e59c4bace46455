"""Verdict timelines cut into time buckets: one grid for the whole report (pure).

A class of 1,000 labs audited every five minutes for a month is 8.6 million runs; the store counts
them by lab, bucket and verdict in the database (Store.verdict_counts), and the work here is per
bucket, never per run.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auditor.domain.model import Verdict
from auditor.report.model import VERDICT_RANK, ConformanceBucket, TimelineCell
from auditor.store.records import RunPoint, VerdictCount

MAX_BUCKETS = 60
# Down to a second: `auditor demo` makes its whole history in a few seconds.
_NICE_WIDTHS = (
    *(timedelta(seconds=seconds) for seconds in (1, 2, 5, 10, 15, 30)),
    *(timedelta(minutes=minutes) for minutes in (1, 5, 10, 15, 30)),
    *(timedelta(hours=hours) for hours in (1, 2, 3, 6, 12)),
    *(timedelta(days=days) for days in (1, 2, 7)),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Grid:
    """`count` buckets of `width` from `start`, aligned on multiples of the width since the epoch."""

    start: datetime
    width: timedelta
    count: int

    def boundaries(self) -> list[datetime]:
        """count + 1 instants: bucket i is [boundaries[i], boundaries[i + 1])."""
        return [self.start + index * self.width for index in range(self.count + 1)]


def grid_for(start: datetime, end: datetime) -> Grid:
    """The finest round bucket width that covers [start, end] in at most MAX_BUCKETS buckets."""
    width = bucket_width(end - start)
    aligned = _EPOCH + (start - _EPOCH) // width * width
    return Grid(aligned, width, (end - aligned) // width + 1)


def bucket_width(span: timedelta) -> timedelta:
    for width in _NICE_WIDTHS:
        if span < width * MAX_BUCKETS:
            return width
    return timedelta(days=math.ceil(span / timedelta(days=1) / MAX_BUCKETS) + 1)


@dataclass(frozen=True)
class LabHistory:
    """A lab's runs in the period, summarised on the grid."""

    cells: tuple[TimelineCell, ...]
    audits: int
    conformant_audits: int
    first_conformant_at: datetime | None
    last_conformant_at: datetime | None


def summarise(runs: Sequence[RunPoint], grid: Grid, torn_down: Sequence[datetime] = ()) -> LabHistory:
    """`runs` as Store.runs_since returns them; `torn_down` the times of the lab's teardowns."""
    return summarise_counts(counts_of(runs, grid), grid, torn_down)


def counts_of(runs: Sequence[RunPoint], grid: Grid) -> list[VerdictCount]:
    """The runs counted as Store.verdict_counts counts them in the database, from the grid's start on."""
    groups: dict[tuple[int, Verdict], list[datetime]] = {}
    for run in runs:
        if run.started_at >= grid.start:
            bucket = (run.started_at - grid.start) // grid.width
            groups.setdefault((bucket, run.verdict), []).append(run.started_at)
    return sorted(
        VerdictCount(bucket, verdict, len(times), min(times), max(times))
        for (bucket, verdict), times in groups.items()
    )


def summarise_counts(
    counts: Sequence[VerdictCount], grid: Grid, torn_down: Sequence[datetime] = ()
) -> LabHistory:
    """A lab's counts (Store.verdict_counts on this grid) as its timeline and totals in the period.

    Plain loops: a class of 1,000 labs is 60,000 cells."""
    bounds = grid.boundaries()
    by_bucket: dict[int, list[VerdictCount]] = {}
    for count in counts:
        if 0 <= count.bucket < grid.count:
            by_bucket.setdefault(count.bucket, []).append(count)
    cells: list[TimelineCell] = []
    current: Verdict | None = None
    last_run_at: datetime | None = None
    audits = conformant_audits = 0
    first_conformant: datetime | None = None
    last_conformant: datetime | None = None
    for index in range(grid.count):
        in_bucket = by_bucket.get(index, ())
        worst: Verdict | None = None
        runs = 0
        for count in in_bucket:
            runs += count.runs
            if worst is None or VERDICT_RANK[count.verdict] > VERDICT_RANK[worst]:
                worst = count.verdict
            # The verdict of the bucket's last run; at the same instant, the worse one.
            if last_run_at is None or (count.last_at, VERDICT_RANK[count.verdict]) > (
                last_run_at,
                VERDICT_RANK[current] if current else -1,
            ):
                current, last_run_at = count.verdict, count.last_at
            if count.verdict is Verdict.CONFORMANT:
                conformant_audits += count.runs
                if first_conformant is None or count.first_at < first_conformant:
                    first_conformant = count.first_at
                if last_conformant is None or count.last_at > last_conformant:
                    last_conformant = count.last_at
        audits += runs
        if torn_down and current is not None and _retired(last_run_at, bounds[index + 1], torn_down):
            current = None
        cells.append(TimelineCell(bounds[index], worst, runs, current))
    return LabHistory(
        cells=tuple(cells),
        audits=audits,
        conformant_audits=conformant_audits,
        first_conformant_at=first_conformant,
        last_conformant_at=last_conformant,
    )


def _worst(counts: Counter[Verdict]) -> Verdict | None:
    return max(counts, key=VERDICT_RANK.__getitem__) if counts else None


def _retired(last_run_at: datetime | None, bucket_end: datetime, torn_down: Sequence[datetime]) -> bool:
    return last_run_at is not None and any(last_run_at < at < bucket_end for at in torn_down)


def class_conformance(grid: Grid, histories: Sequence[LabHistory]) -> tuple[ConformanceBucket, ...]:
    bounds = grid.boundaries()
    return tuple(
        ConformanceBucket(
            start=bounds[index],
            end=bounds[index + 1],
            verdicts=_in_order(Counter(history.cells[index].standing for history in histories)),
        )
        for index in range(grid.count)
    )


def _in_order(counts: Counter[Verdict | None]) -> dict[Verdict, int]:
    return {verdict: counts[verdict] for verdict in VERDICT_RANK if counts[verdict]}
