"""build_report: everything a report shows, read from the store in a fixed number of queries.

Whatever the size of the class and its history: status, latest_runs, the life-cycle events of every
lab at once, the earliest run (without --since), the verdicts counted by lab, bucket and verdict
(Store.verdict_counts: aggregated in the database, a row per bucket rather than per run), the time
each lab stood at each verdict (Store.time_at_verdicts), and, with --since, the last conformant
audit before the period of the labs that have none in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from auditor.domain.model import Finding, Verdict
from auditor.report.diff import document_diff
from auditor.report.model import ClassReport, FindingReport, LabReport, SeverityCounts
from auditor.report.timeline import LabHistory, class_conformance, grid_for, summarise_counts
from auditor.store import LabStatus, LifecycleEntry, LifecycleEvent, RecordedRun, Store, TimeShare


def build_report(
    store: Store, labs: Sequence[str] | None, since: datetime | None, now: datetime
) -> ClassReport:
    """The report on those labs (None: every lab in the store) from `since` (None: all history) to now."""
    statuses = _selected(store.status(), labs)
    names = [status.name for status in statuses]
    latest = store.latest_runs(names)
    lifecycles = {name: tuple(entries) for name, entries in store.lifecycles(names, since).items()}
    period_start = since if since is not None else _first_activity(store, names, lifecycles)
    grid = grid_for(period_start or now, now)
    counts = store.verdict_counts(grid.start, grid.width, since, names)
    histories = {name: summarise_counts(counts[name], grid, _teardowns(lifecycles[name])) for name in names}
    times = store.time_at_verdicts(period_start, now, names)
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
                _not_after_teardown(
                    times[status.name], latest.get(status.name), lifecycles[status.name], period_start, now
                ),
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


def _teardowns(entries: Sequence[LifecycleEntry]) -> list[datetime]:
    return [entry.at for entry in entries if entry.event is LifecycleEvent.TORN_DOWN]


def _not_after_teardown(
    time: TimeShare,
    latest: RecordedRun | None,
    lifecycle: Sequence[LifecycleEntry],
    period_start: datetime | None,
    now: datetime,
) -> TimeShare:
    """The time after the lab's teardown is not its own (the database counts its last verdict until now)."""
    if latest is None:
        return time
    gone = [at for at in _teardowns(lifecycle) if latest.started_at < at < now]
    if not gone:
        return time
    gone_from = max(min(gone), period_start or min(gone))
    return time.less(latest.verdict, now - gone_from)


def _first_activity(
    store: Store, names: list[str], lifecycles: Mapping[str, Sequence[LifecycleEntry]]
) -> datetime | None:
    firsts = [entries[0].at for entries in lifecycles.values() if entries]
    first_run = store.first_run_at(names)
    if first_run is not None:
        firsts.append(first_run)
    return min(firsts, default=None)


def _last_conformant_before_period(
    store: Store, since: datetime | None, histories: Mapping[str, LabHistory]
) -> dict[str, datetime]:
    without = [name for name, history in histories.items() if history.last_conformant_at is None]
    if since is None or not without:
        return {}
    return store.last_at_verdict_before(Verdict.CONFORMANT, since, without)


def _lab_report(
    status: LabStatus,
    latest: RecordedRun | None,
    history: LabHistory,
    lifecycle: tuple[LifecycleEntry, ...],
    conformant_before_period: datetime | None,
    time: TimeShare,
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
        time_at_verdicts=time,
    )


def _finding_report(finding: Finding) -> FindingReport:
    return FindingReport(finding, document_diff(finding.expected, finding.actual))
