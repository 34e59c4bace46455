"""Verdict timelines cut into time buckets: one grid for the whole report (pure).

A class audited every five minutes for a month is 864,000 runs; each lab's runs are cut into buckets
with binary search and counted with Counter, so the Python-level work is per bucket, not per run.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from auditor.model import Verdict
from auditor.report.model import VERDICT_RANK, ConformanceBucket, TimelineCell
from auditor.store.records import RunPoint

MAX_BUCKETS = 60
# Down to a second: `auditor demo` makes its whole history in a few seconds.
_NICE_WIDTHS = (
    *(timedelta(seconds=seconds) for seconds in (1, 2, 5, 10, 15, 30)),
    *(timedelta(minutes=minutes) for minutes in (1, 5, 10, 15, 30)),
    *(timedelta(hours=hours) for hours in (1, 2, 3, 6, 12)),
    *(timedelta(days=days) for days in (1, 2, 7)),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_started_at = attrgetter("started_at")
_verdict = attrgetter("verdict")


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
    """`runs` oldest first, as Store.runs_since returns them; `torn_down` the times of its teardowns."""
    bounds = grid.boundaries()
    cells: list[TimelineCell] = []
    current: Verdict | None = None
    last_run_at: datetime | None = None
    low = bisect_left(runs, bounds[0], key=_started_at)
    totals: Counter[Verdict] = Counter()
    for index in range(grid.count):
        high = bisect_left(runs, bounds[index + 1], lo=low, key=_started_at)
        counts = Counter(map(_verdict, runs[low:high]))
        totals.update(counts)
        if high > low:
            current, last_run_at = runs[high - 1].verdict, runs[high - 1].started_at
        if current is not None and _retired(last_run_at, bounds[index + 1], torn_down):
            current = None
        cells.append(TimelineCell(bounds[index], _worst(counts), high - low, current))
        low = high
    return LabHistory(
        cells=tuple(cells),
        audits=sum(totals.values()),
        conformant_audits=totals[Verdict.CONFORMANT],
        first_conformant_at=_first_conformant(runs),
        last_conformant_at=_first_conformant(reversed(runs)),
    )


def _worst(counts: Counter[Verdict]) -> Verdict | None:
    return max(counts, key=VERDICT_RANK.__getitem__) if counts else None


def _retired(last_run_at: datetime | None, bucket_end: datetime, torn_down: Sequence[datetime]) -> bool:
    return last_run_at is not None and any(last_run_at < at < bucket_end for at in torn_down)


def _first_conformant(runs: Iterable[RunPoint]) -> datetime | None:
    return next((run.started_at for run in runs if run.verdict is Verdict.CONFORMANT), None)


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


def conformant_time_share(
    runs: Sequence[RunPoint], end: datetime, torn_down: Sequence[datetime] = ()
) -> float | None:
    """The share of the time from the first run to `end` that the lab stood conformant (pure).

    Each run's verdict stands until the next run, a teardown after it, or `end`; the time under an
    audit that could not finish (error) is counted neither way. None without any time judged.
    """
    conformant = judged = timedelta(0)
    for index, run in enumerate(runs):
        until = runs[index + 1].started_at if index + 1 < len(runs) else end
        until = min([until, *(at for at in torn_down if run.started_at < at < until)])
        if run.verdict is Verdict.ERROR or until <= run.started_at:
            continue
        judged += until - run.started_at
        if run.verdict is Verdict.CONFORMANT:
            conformant += until - run.started_at
    return conformant / judged if judged else None
