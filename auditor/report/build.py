"""build_report: everything a report shows, read from the store in one pass.

Queries: status, runs_since and latest_runs once each for the whole class, then each lab's life-cycle
events (the store has no bulk read for them; a lab has a handful), and, with --since, the last
conformant audit before the period of each lab that has none in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from auditor.model import Finding
from auditor.report.diff import document_diff
from auditor.report.model import ClassReport, FindingReport, LabReport, SeverityCounts
from auditor.report.timeline import LabHistory, class_conformance, conformant_time_share, grid_for, summarise
from auditor.store import LabStatus, LifecycleEntry, LifecycleEvent, RecordedRun, RunPoint, Store


def build_report(
    store: Store, labs: Sequence[str] | None, since: datetime | None, now: datetime
) -> ClassReport:
    """The report on those labs (None: every lab in the store) from `since` (None: all history) to now."""
    statuses = _selected(store.status(), labs)
    names = [status.name for status in statuses]
    timelines = store.runs_since(since, names)
    latest = store.latest_runs(names)
    lifecycles = {name: _in_period(store.lifecycle(name), since) for name in names}
    period_start = _period_start(since, timelines, lifecycles)
    grid = grid_for(period_start or now, now)
    histories = {name: summarise(timelines[name], grid, _teardowns(lifecycles[name])) for name in names}
    earlier = _last_conformant_before_period(store, since, histories)
    return ClassReport(
        generated_at=now,
        since=since,
        period_start=period_start,
        bucket_width=grid.width,
        labs=tuple(
            _lab_report(
                status,
                latest.get(status.name),
                histories[status.name],
                lifecycles[status.name],
                earlier.get(status.name),
                conformant_time_share(timelines[status.name], now, _teardowns(lifecycles[status.name])),
            )
            for status in statuses
        ),
        conformance=class_conformance(grid, list(histories.values())),
        unrecorded=tuple(sorted(set(labs or ()) - set(names))),
    )


def _selected(statuses: list[LabStatus], labs: Sequence[str] | None) -> list[LabStatus]:
    if labs is None:
        return statuses
    wanted = set(labs)
    return [status for status in statuses if status.name in wanted]


def _in_period(entries: list[LifecycleEntry], since: datetime | None) -> tuple[LifecycleEntry, ...]:
    return tuple(entry for entry in entries if since is None or entry.at >= since)


def _teardowns(entries: Sequence[LifecycleEntry]) -> list[datetime]:
    return [entry.at for entry in entries if entry.event is LifecycleEvent.TORN_DOWN]


def _period_start(
    since: datetime | None,
    timelines: Mapping[str, Sequence[RunPoint]],
    lifecycles: Mapping[str, Sequence[LifecycleEntry]],
) -> datetime | None:
    if since is not None:
        return since
    firsts = [runs[0].started_at for runs in timelines.values() if runs]
    firsts += [entries[0].at for entries in lifecycles.values() if entries]
    return min(firsts, default=None)


def _last_conformant_before_period(
    store: Store, since: datetime | None, histories: Mapping[str, LabHistory]
) -> dict[str, datetime | None]:
    if since is None:
        return {}
    return {
        name: store.last_conformant_at(name)
        for name, history in histories.items()
        if history.last_conformant_at is None
    }


def _lab_report(
    status: LabStatus,
    latest: RecordedRun | None,
    history: LabHistory,
    lifecycle: tuple[LifecycleEntry, ...],
    conformant_before_period: datetime | None,
    time_share: float | None = None,
) -> LabReport:
    findings = latest.findings if latest else ()
    return LabReport(
        name=status.name,
        origin_account=status.origin,
        destination_account=status.destination,
        state=status.state,
        expires_at=status.expires_at,
        latest=latest,
        findings=tuple(_finding_report(finding) for finding in findings),
        severity_counts=SeverityCounts.of(findings),
        audits=history.audits,
        conformant_audits=history.conformant_audits,
        first_conformant_at=history.first_conformant_at,
        last_conformant_at=history.last_conformant_at or conformant_before_period,
        timeline=history.cells,
        lifecycle=lifecycle,
        conformant_time_share=time_share,
    )


def _finding_report(finding: Finding) -> FindingReport:
    return FindingReport(finding, document_diff(finding.expected, finding.actual))
