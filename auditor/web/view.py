"""What the live page shows, read from the store: the report's values, built per request.

Read-only: nothing here writes. The store comes from a callable so that the page can answer (503)
while the daemon is still waiting for its database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from auditor.common.clock import utc_now
from auditor.domain.model import AuditRun, LabAudit
from auditor.report import ClassReport, LabReport, build_report
from auditor.store import LabStatus, RecordedRun, RunPoint, Store

OVERVIEW_PERIOD = timedelta(days=1)
HISTORY_PERIOD = timedelta(days=7)
HISTORY_CHANGES = 100


@dataclass(frozen=True)
class LabPage:
    lab: LabReport
    changes: tuple[RunPoint, ...]  # the changes of verdict, latest first
    more_changes: bool


class ClassView:
    def __init__(self, store: Callable[[], Store], clock: Callable[[], datetime] = utc_now) -> None:
        self._store, self._clock = store, clock

    def now(self) -> datetime:
        return self._clock()

    def version(self, now: datetime) -> str:
        """Changes whenever something the page shows does: a write, or the minute ("3 min ago")."""
        marker = (*self._store().change_marker(), now.strftime("%Y%m%d%H%M"))
        return hashlib.sha256(repr(marker).encode()).hexdigest()[:20]

    def overview(self, now: datetime) -> ClassReport:
        return build_report(self._store(), None, now - OVERVIEW_PERIOD, now)

    def lab(self, name: str, now: datetime) -> LabPage | None:
        store = self._store()
        report = build_report(store, [name], now - HISTORY_PERIOD, now)
        if not report.labs:
            return None
        changes = store.verdict_changes(None, [name]).get(name, [])
        latest_first = tuple(reversed(changes))
        return LabPage(report.labs[0], latest_first[:HISTORY_CHANGES], len(changes) > HISTORY_CHANGES)

    def latest_audits(self) -> AuditRun:
        """Every lab's latest audit, as `auditor audit --format json` writes a run (interface.md)."""
        store = self._store()
        statuses = {status.name: status for status in store.status()}
        runs = store.latest_runs()
        labs = tuple(lab_audit(run, statuses[name]) for name, run in runs.items() if name in statuses)
        started = [lab.started_at for lab in labs if lab.started_at is not None]
        finished = [lab.finished_at for lab in labs if lab.finished_at is not None]
        now = utc_now()
        return AuditRun(
            started_at=min(started, default=now), finished_at=max(finished, default=now), labs=labs
        )


def lab_audit(run: RecordedRun, status: LabStatus) -> LabAudit:
    return LabAudit(
        lab=run.lab,
        origin_account=status.origin,
        destination_account=status.destination,
        verdict=run.verdict,
        findings=run.findings,
        invoke=run.invoke,
        error=run.error,
        started_at=run.started_at,
        finished_at=run.finished_at or run.started_at,
        requests=run.requests,
    )
